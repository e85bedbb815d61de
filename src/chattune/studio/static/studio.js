// chattune studio: shared helpers (no framework, no network beyond this server).
"use strict";
const studio = {
  data() {
    const el = document.getElementById("page-data");
    return el ? JSON.parse(el.textContent) : {};
  },
  // The session's CSRF token, sent with every change (another origin cannot read it).
  _csrf: null,
  async headers(method) {
    if (method === "GET" || method === "HEAD") return {};
    if (!studio._csrf) studio._csrf = (await (await fetch("/api/session")).json()).csrf || "";
    return { "X-Chattune-CSRF": studio._csrf };
  },
  // fetch() with the CSRF header on changes (the playground streams the raw answer).
  async send(method, path, body, signal) {
    const init = { method, headers: await studio.headers(method), signal };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init);
  },
  // JSON call to the studio API; throws an Error carrying the SDK's error fields.
  async api(method, path, body) {
    const answer = await studio.send(method, path, body);
    const text = await answer.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: `${answer.status} ${answer.statusText}: ${text.slice(0, 200)}` }; }
    if (!answer.ok) {
      const err = new Error((data && data.error) || answer.statusText);
      Object.assign(err, data || {}, { status: answer.status });
      throw err;
    }
    return data;
  },
  el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
    return node;
  },
  table(headers, rows) {
    const t = studio.el("table", { tabindex: "0" });
    t.append(studio.el("thead", {}, studio.el("tr", {}, ...headers.map((h) => studio.el("th", {}, h)))));
    const body = studio.el("tbody", {});
    for (const r of rows) body.append(studio.el("tr", {}, ...r.map((c) => studio.el("td", {}, c))));
    t.append(body);
    return t;
  },
  // Ticks for [lo, hi]: integers only (steps, row counts) when asked, else 5 even ones.
  ticks(lo, hi, integer) {
    if (!integer) return [0, 1, 2, 3, 4].map((i) => lo + ((hi - lo) * i) / 4);
    const span = Math.max(1, Math.floor(hi) - Math.ceil(lo));
    const raw = span / 4, mag = 10 ** Math.floor(Math.log10(raw || 1));
    const step = Math.max(1, [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || mag * 10);
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) out.push(t);
    return out.length ? out : [Math.round(lo)];
  },
  // Line chart in inline SVG: series = [{label, color, points: [[x, y], ...], dashed}];
  // hover shows the values at the nearest x; opts: xLabel, integerX, integerY, title.
  chart(series, opts = {}) {
    const W = 640, H = 300, L = 64, R = 16, B = 40, T = 12 + 16 * series.length;
    const all = series.flatMap((s) => s.points);
    const ns = "http://www.w3.org/2000/svg";
    const box = studio.el("div", { class: "chart-box" });
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `${opts.title || "chart"}: ${series.map((s) => `${s.label}, ${s.points.length} points`).join("; ")}`);
    box.append(svg);
    if (!all.length) return box;
    let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
    let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
    if (x0 === x1) x1 = x0 + 1;
    if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
    if (opts.integerY) y0 = Math.min(0, y0);
    const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const py = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
    const add = (tag, attrs, text) => {
      const n = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      if (text !== undefined) n.textContent = text;
      svg.append(n);
      return n;
    };
    add("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "frame", fill: "#fff", stroke: "#d9dee7" });
    // Enough decimals that the ticks differ (a loss that moves in the third decimal).
    const digits = opts.integerY ? 0 : Math.max(0, Math.min(6, 2 - Math.floor(Math.log10(y1 - y0))));
    for (const y of studio.ticks(y0, y1, opts.integerY)) {
      add("line", { x1: L, x2: W - R, y1: py(y), y2: py(y), class: "gridline", stroke: "#eef1f6" });
      add("text", { x: L - 6, y: py(y) + 4, "text-anchor": "end", "font-size": 11, class: "axis" }, y.toFixed(digits));
    }
    for (const x of studio.ticks(x0, x1, opts.integerX)) {
      add("text", { x: px(x), y: H - B + 16, "text-anchor": "middle", "font-size": 11, class: "axis" }, opts.integerX ? String(x) : x.toPrecision(3));
    }
    add("text", { x: (W + L) / 2, y: H - 6, "text-anchor": "middle", "font-size": 12, class: "axis" }, opts.xLabel || "");
    series.forEach((s, i) => {
      if (!s.points.length) return;
      const d = s.points.map((p, j) => `${j ? "L" : "M"}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(" ");
      add("path", { d, fill: "none", stroke: s.color, "stroke-width": 2, "stroke-dasharray": s.dashed ? "5 4" : "" });
      if (!s.dashed && s.points.length <= 400) for (const p of s.points) add("circle", { cx: px(p[0]), cy: py(p[1]), r: 3, fill: s.color, class: "point" });
      add("text", { x: L, y: 14 + 16 * i, "font-size": 12, fill: s.color, class: "legend" }, `${s.dashed ? "- - " : "— "}${s.label}`);
    });
    const tip = studio.el("div", { class: "tip", hidden: "" });
    const cursor = add("line", { y1: T, y2: H - B, stroke: "#888", "stroke-dasharray": "2 3", visibility: "hidden" });
    box.append(tip);
    svg.addEventListener("mousemove", (ev) => {
      const r = svg.getBoundingClientRect();
      const x = x0 + (((ev.clientX - r.left) / r.width) * W - L) / (W - L - R) * (x1 - x0);
      const near = series.filter((s) => s.points.length && !s.dashed).map((s) => [s, s.points.reduce((a, b) => (Math.abs(b[0] - x) < Math.abs(a[0] - x) ? b : a))]);
      if (!near.length) return;
      const at = near[0][1][0];
      cursor.setAttribute("x1", px(at)); cursor.setAttribute("x2", px(at)); cursor.setAttribute("visibility", "visible");
      tip.textContent = `${opts.xLabel || "x"} ${at}\n` + near.map(([s, p]) => `${s.label}: ${Number(p[1]).toPrecision(5)}`).join("\n");
      tip.hidden = false;
      tip.style.left = `${Math.min(ev.clientX - r.left + 12, r.width - 160)}px`;
      tip.style.top = `${ev.clientY - r.top + 12}px`;
    });
    svg.addEventListener("mouseleave", () => { tip.hidden = true; cursor.setAttribute("visibility", "hidden"); });
    return box;
  },
  download(name, blob) {
    const a = studio.el("a", { href: URL.createObjectURL(blob), download: name });
    document.body.append(a); a.click(); a.remove();
  },
  // series → CSV with one row per (series, x, y).
  csv(series) {
    const q = (v) => `"${String(v).replaceAll('"', '""')}"`;
    return "series,step,value\n" + series.flatMap((s) => s.points.map((p) => `${q(s.label)},${p[0]},${p[1]}`)).join("\n") + "\n";
  },
  // The chart's SVG drawn on a canvas (white background) as a PNG blob.
  async png(svg) {
    const copy = svg.cloneNode(true);
    copy.setAttribute("width", 1280); copy.setAttribute("height", 600);
    for (const t of copy.querySelectorAll("text.axis")) t.setAttribute("fill", "#1d2330");
    const img = new Image();
    img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(new XMLSerializer().serializeToString(copy));
    await img.decode();
    const canvas = studio.el("canvas", { width: 1280, height: 600 });
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, 1280, 600); ctx.drawImage(img, 0, 0);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  },
  async copy(text) {
    try { await navigator.clipboard.writeText(text); return true; } catch (e) { return false; }
  },
};

// Buttons with data-action="METHOD /path" (html.action): confirm, call, then reload or go on.
for (const b of document.querySelectorAll("button[data-action]")) {
  b.addEventListener("click", async () => {
    if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
    const [method, path] = b.dataset.action.split(" ");
    const out = document.getElementById("page-result");
    b.disabled = true;
    out.className = "muted";
    out.textContent = `${b.textContent.toLowerCase()}…`;
    try {
      await studio.api(method, path, b.dataset.body ? JSON.parse(b.dataset.body) : undefined);
      if (b.dataset.then) location.href = b.dataset.then; else location.reload();
    } catch (e) {
      out.className = "error";
      out.textContent = `${e.message}${e.hint ? ` (fix: ${e.hint})` : ""}`;
      b.disabled = false;
    }
  });
}
