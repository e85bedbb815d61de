// Job page: stages, log tail and loss curves follow the job by polling until it is done.
"use strict";
(() => {
  const { name } = studio.data();
  const base = `/api/jobs/${encodeURIComponent(name)}`;
  let offset = 0, lastMetrics = 0, done = false, reportShown = false;
  const $ = (id) => document.getElementById(id);
  const badge = (s) => studio.el("span", { class: `badge ${s}` }, s);
  const secs = (v) => (v == null ? "" : v < 120 ? `${v.toFixed(1)}s` : `${(v / 60).toFixed(1)}min`);

  function showStages(job) {
    const rows = job.stages.map((s) => [s.name, badge(s.status), secs(s.duration),
      s.reused ? "reused" : s.started_at ? "run" : "", s.error || s.note || ""]);
    $("stages").replaceWith(Object.assign(studio.table(["stage", "status", "time", "reused or run", "note"], rows), { id: "stages" }));
    const p = job.progress || {};
    const eta = p.eta_s != null ? `, about ${secs(p.eta_s)} left` : "";
    const pct = p.fraction != null ? ` (${(p.fraction * 100).toFixed(0)}%)` : "";
    $("progress").textContent = p.step != null ? `${p.stage || ""} step ${p.step}/${p.total ?? "?"}${pct}${eta}${p.loss != null ? `, loss ${Number(p.loss).toFixed(4)}` : ""}` : "";
    const meter = $("progress-meter");
    meter.hidden = p.fraction == null;
    if (p.fraction != null) { meter.setAttribute("aria-valuenow", String(Math.round(p.fraction * 100))); meter.firstChild.style.width = `${(p.fraction * 100).toFixed(1)}%`; }
    const r = job.resources;
    $("resources").textContent = r ? `CPU ${r.cpu_percent == null ? "…" : `${r.cpu_percent}%`} of ${r.cores * 100}% (${r.cores} cores) · memory ${r.rss_mb} MB in ${r.processes} process(es) · machine RAM ${r.ram_used_percent}% used` : "";
    $("job-status").replaceChildren(badge(job.status));
    $("job-status-text").textContent = job.done ? "" : "(updating live)";
    $("job-status-text").dataset.status = job.status;
    $("job-error").textContent = job.error || "";
    $("cancel").disabled = job.done;
    $("resume").disabled = !job.done || job.status === "completed";
    $("register").disabled = job.status !== "completed";
  }

  function showCurve(m) {
    const h = m.history || {};
    const pts = (k) => (h[k] || []).map(([s, v]) => [s, v]).sort((a, b) => a[0] - b[0]);
    const series = [
      { label: "train loss", color: "#2f6fde", points: pts("loss") },
      { label: "eval loss", color: "#e07a1f", points: pts("eval_loss") },
    ];
    const baseLoss = (m.final || {}).base_test_loss;
    const steps = series.flatMap((s) => s.points.map((p) => p[0]));
    if (baseLoss != null && steps.length) {
      series.push({ label: `base model test loss ${baseLoss.toFixed(4)}`, color: "#888", dashed: true,
        points: [[Math.min(...steps), baseLoss], [Math.max(...steps), baseLoss]] });
    }
    showRewards(pts);
    if (!series[0].points.length && !series[1].points.length) return;
    $("curve").replaceChildren(studio.chart(series, { xLabel: "step", integerX: true }));
  }

  function showRewards(pts) {  // method: dpo logs TRL's reward metrics
    const rewards = [
      { label: "rewards/chosen", color: "#2a9d4b", points: pts("rewards/chosen") },
      { label: "rewards/rejected", color: "#c8403a", points: pts("rewards/rejected") },
      { label: "rewards/margins", color: "#2f6fde", points: pts("rewards/margins") },
      { label: "rewards/accuracies", color: "#888", points: pts("rewards/accuracies") },
    ];
    if (!rewards[2].points.length) return;
    $("rewards").replaceChildren(studio.chart(rewards, { xLabel: "step", integerX: true }));
  }

  function showReport(report) {
    if (!report || reportShown) return;
    reportShown = true;
    const rows = Object.entries(report.metrics).map(([k, r]) => [k, r.base.toFixed(4), r.fine_tuned.toFixed(4),
      (r.fine_tuned - r.base >= 0 ? "+" : "") + (r.fine_tuned - r.base).toFixed(4)]);
    const box = studio.el("div", { id: "report" }, studio.table(["metric", "base", "fine-tuned", "change"], rows));
    (report.samples || []).forEach((s, i) => {
      box.append(studio.el("h3", {}, `sample ${i + 1}: ${s.prompt.slice(0, 200)}`));
      box.append(studio.el("div", { class: "sample" },
        studio.el("div", {}, studio.el("b", {}, "reference"), "\n", s.reference),
        studio.el("div", {}, studio.el("b", {}, "base"), "\n", s.base),
        studio.el("div", {}, studio.el("b", {}, "fine-tuned"), "\n", s.fine_tuned)));
    });
    $("report").replaceWith(box);
  }

  async function tick() {
    try {
      const job = await studio.api("GET", base);
      showStages(job);
      const log = await studio.api("GET", `${base}/log?offset=${offset}`);
      if (log.offset < offset) $("log").textContent = "";
      offset = log.offset;
      if (log.text) { $("log").textContent += log.text; $("log").scrollTop = $("log").scrollHeight; }
      if (job.done || Date.now() - lastMetrics > 2500) {
        lastMetrics = Date.now();
        const m = await studio.api("GET", `${base}/metrics`);
        showCurve(m);
        showReport(m.report);
      }
      done = job.done;
    } catch (e) {
      $("action-result").textContent = e.message;
    }
    if (!done) setTimeout(tick, 1000);
  }

  async function act(button, method, path, body, after) {
    button.disabled = true;
    $("action-result").textContent = "working…";
    try {
      const out = await studio.api(method, path, body);
      $("action-result").textContent = "";
      if (after) after(out);
      if (done) { done = false; setTimeout(tick, 300); }
    } catch (e) {
      $("action-result").textContent = `${e.message}${e.hint ? ` (fix: ${e.hint})` : ""}`;
      button.disabled = false;
    }
  }
  $("cancel").onclick = () => {
    if (!confirm(`Cancel job ${name}? It stops at its next step; Resume continues it.`)) return;
    act($("cancel"), "POST", `${base}/cancel`);
    $("action-result").textContent = "canceling: the job stops at its next step…";
  };
  $("resume").onclick = () => act($("resume"), "POST", `${base}/resume`);
  $("register").onclick = () => act($("register"), "POST", "/api/models", { job: name, name: $("register-name").value },
    (m) => { $("action-result").replaceChildren("registered ", studio.el("a", { href: `/models/${m.name}/${m.version}`, id: "registered-link" }, m.ref)); });
  tick();
})();
