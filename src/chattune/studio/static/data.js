// Data page: validate a file (problems with line numbers), stats, token-length histogram with
// the max_seq_length line, and a conversation viewer (assistant turns are what trains).
"use strict";
(() => {
  const form = document.getElementById("data-form");
  const out = document.getElementById("data-result");
  const path = () => form.elements.other.value.trim() || form.elements.path.value;
  const fail = (e) => out.replaceChildren(studio.el("p", { class: "error" }, `${e.message}${e.hint ? ` (fix: ${e.hint})` : ""}`));

  document.getElementById("validate").onclick = async (ev) => {
    ev.preventDefault();
    try {
      const r = await studio.api("POST", "/api/data/validate", { path: path() });
      const rows = r.problems.map((p) => [p.line ?? "", p.field ?? "", p.severity, p.message]);
      out.replaceChildren(
        studio.el("p", { id: "validate-summary" }, `${r.path}: ${r.ok ? "valid" : "has errors"}, ${r.rows} rows, format ${r.format}, ${r.problems.length} problem(s)`),
        Object.assign(studio.table(["line", "field", "severity", "problem"], rows), { id: "problems" }));
    } catch (e) { fail(e); }
  };

  function histogram(h, limit) {
    const points = [];
    h.counts.forEach((c, i) => { points.push([h.edges[i], c]); points.push([h.edges[i + 1], c]); });
    const top = Math.max(...h.counts, 1);
    const series = [{ label: `rows per token length (${h.rows} rows, max ${h.max})`, color: "#2f6fde", points }];
    if (limit) series.push({ label: `max_seq_length ${limit}`, color: "#b42318", dashed: true, points: [[limit, 0], [limit, top]] });
    return studio.chart(series, { xLabel: "tokens", integerX: true, integerY: true, title: "token lengths" });
  }

  document.getElementById("stats").onclick = async (ev) => {
    ev.preventDefault();
    out.replaceChildren(studio.el("p", { class: "muted" }, "reading…"));
    try {
      const r = await studio.api("POST", "/api/data/show", { path: path(), model: form.elements.model.value || null });
      const s = r.stats;
      const rows = [["rows", s.rows], ["turns (min/mean/max)", `${s.turns.min}/${s.turns.mean}/${s.turns.max}`],
        ["chars (total)", s.chars.total], ["roles", JSON.stringify(s.roles)], ["duplicate prompts", s.duplicate_prompt_ids]];
      out.replaceChildren(Object.assign(studio.table(["stat", "value"], rows), { id: "stats-table" }));
      const limit = Number(form.elements.max_seq_length.value) || null;
      const over = r.histogram ? r.histogram.counts.reduce((n, c, i) => n + (limit && r.histogram.edges[i] >= limit ? c : 0), 0) : 0;
      document.getElementById("histogram").replaceChildren(...(r.histogram ? [histogram(r.histogram, limit),
        studio.el("p", { class: "muted" }, `about ${over} row(s) reach past max_seq_length ${limit} and are truncated`)] : []));
      const convs = r.conversations.map((msgs, i) => studio.el("div", { class: "conv" }, studio.el("b", {}, `conversation ${i + 1}`),
        ...msgs.map((m) => studio.el("div", { class: `msg ${m.role}` }, studio.el("b", {}, m.role),
          studio.el("span", { class: m.role === "assistant" ? "text trained" : "text", title: m.role === "assistant" ? "trained on" : "context only" }, m.content)))));
      document.getElementById("conversations").replaceChildren(studio.el("h2", {}, "Conversations (highlighted: the tokens trained on)"), ...convs);
    } catch (e) { fail(e); }
  };
})();
