// Compare 2–5 jobs: overlaid curves (hover values, smoothing, CSV and PNG export, integer
// step axis), the parameters that differ, the evaluation metrics side by side.
"use strict";
(async () => {
  const { jobs } = studio.data();
  const $ = (id) => document.getElementById(id);
  const colors = ["#2f6fde", "#e07a1f", "#2e9d5b", "#b42fc2", "#c23a2f"];
  const titles = { loss: "train loss", eval_loss: "eval loss", learning_rate: "learning rate", grad_norm: "grad norm", tokens_per_second: "tokens/s" };
  let data;
  try {
    data = await studio.api("GET", `/api/jobs-compare?jobs=${jobs.map(encodeURIComponent).join(",")}`);
  } catch (e) { $("curves").replaceChildren(studio.el("p", { class: "error" }, e.message)); return; }

  // Exponential moving average (TensorBoard's smoothing): 0 = the raw points.
  const smooth = (points, a) => {
    let last = null;
    return points.map(([x, y]) => { last = last == null || !a ? y : last * a + y * (1 - a); return [x, last]; });
  };
  function curves() {
    const a = Number($("smoothing").value);
    $("smoothing-value").textContent = a.toFixed(2);
    const boxes = data.curves.map((key) => {
      const series = data.jobs.map((j, i) => ({ label: j.name, color: colors[i],
        points: smooth((j.history[key] || []).map(([s, v]) => [s, v]).sort((p, q) => p[0] - q[0]), a) }))
        .filter((s) => s.points.length);
      if (!series.length) return null;
      const chart = studio.chart(series, { xLabel: "step", integerX: true, title: titles[key] || key });
      const csv = studio.el("button", { type: "button", class: "secondary", "aria-label": `${titles[key] || key} as CSV` }, "CSV");
      csv.onclick = () => studio.download(`${key}.csv`, new Blob([studio.csv(series)], { type: "text/csv" }));
      const png = studio.el("button", { type: "button", class: "secondary", "aria-label": `${titles[key] || key} as PNG` }, "PNG");
      png.onclick = async () => studio.download(`${key}.png`, await studio.png(chart.querySelector("svg")));
      return studio.el("section", { class: "compare-curve", "data-metric": key },
        studio.el("h2", {}, titles[key] || key, " ", csv, " ", png), studio.el("div", { class: "curve" }, chart));
    }).filter(Boolean);
    $("curves").replaceChildren(...(boxes.length ? boxes : [studio.el("p", { class: "muted" }, "no curves yet: the jobs have no logged steps")]));
  }
  function params() {
    const keys = [...new Set(data.jobs.flatMap((j) => Object.keys(j.parameters)))].sort();
    const show = (v) => (v == null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
    const differ = (k) => new Set(data.jobs.map((j) => show(j.parameters[k]))).size > 1;
    const rows = keys.filter((k) => $("all-params").checked || differ(k))
      .map((k) => [k, ...data.jobs.map((j) => show(j.parameters[k]))]);
    const t = studio.table(["parameter", ...data.jobs.map((j) => j.name)], rows.length ? rows : [["(none differ)", ...data.jobs.map(() => "")]]);
    t.id = "param-table";
    $("param-diff").replaceChildren(t);
  }
  function evaluation() {
    const keys = [...new Set(data.jobs.flatMap((j) => [...Object.keys(j.evaluation), ...Object.keys(j.final).filter((k) => k.startsWith("test_") || k.startsWith("eval_"))]))].sort();
    const value = (j, k) => { const v = k in j.evaluation ? j.evaluation[k] : j.final[k]; return v == null ? "" : Number(v).toFixed(4); };
    const rows = keys.map((k) => [k, ...data.jobs.map((j) => value(j, k))]);
    const t = studio.table(["metric", ...data.jobs.map((j) => j.name)], rows.length ? rows : [["(no evaluation yet)", ...data.jobs.map(() => "")]]);
    t.id = "eval-table";
    $("eval").replaceChildren(t);
  }
  $("smoothing").addEventListener("input", curves);
  $("all-params").addEventListener("change", params);
  curves(); params(); evaluation();
})();
