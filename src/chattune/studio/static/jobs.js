// Jobs page: the list follows the jobs live (polled every 2 s: status, stage, progress,
// ETA); tick 2–5 jobs and Compare opens their curves, parameters and metrics side by side.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const secs = (v) => (v == null ? "" : v < 120 ? `${v.toFixed(1)}s` : `${(v / 60).toFixed(1)}min`);
  const when = (t) => (t ? new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") : "");
  const picked = () => [...document.querySelectorAll("input.pick:checked")].map((b) => b.value);

  function stage(j) {
    const p = j.progress || {};
    if (p.fraction == null) return j.stage;
    const eta = p.eta_s != null ? `, about ${secs(p.eta_s)} left` : "";
    return studio.el("span", {}, `${j.stage} ${p.step}/${p.total}${eta} `,
      studio.el("span", { class: "meter", role: "progressbar", "aria-label": `${j.name} progress`, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(p.fraction * 100)) },
        studio.el("span", { style: `width:${(p.fraction * 100).toFixed(1)}%` })));
  }
  function render(jobs) {
    const keep = new Set(picked());
    const rows = jobs.map((j) => {
      const box = studio.el("input", { type: "checkbox", class: "pick", value: j.name, "aria-label": `compare ${j.name}` });
      box.checked = keep.has(j.name);
      const status = studio.el("span", {}, studio.el("span", { class: `badge ${j.status}` }, j.status), j.queue_position ? ` #${j.queue_position}` : "");
      return [box, studio.el("a", { href: `/jobs/${encodeURIComponent(j.name)}` }, j.name), status, j.model, j.data,
        when(j.created_at), secs(j.duration), stage(j)];
    });
    if (!rows.length) return;
    const table = studio.table(["compare", "name", "status", "model", "data", "created", "duration", "stage"], rows);
    table.id = "jobs";
    $("jobs").replaceWith(table);
    wire();
  }
  function wire() {
    for (const b of document.querySelectorAll("input.pick")) b.onchange = () => {
      const n = picked().length;
      $("compare").disabled = n < 2 || n > 5;
    };
    const n = picked().length;
    $("compare").disabled = n < 2 || n > 5;
  }
  $("compare").onclick = () => { location.href = `/compare?jobs=${picked().map(encodeURIComponent).join(",")}`; };
  async function tick() {
    try {
      const jobs = await studio.api("GET", "/api/jobs");
      if (!document.activeElement || !document.activeElement.classList.contains("pick")) render(jobs);
      const running = jobs.filter((j) => !["completed", "failed", "canceled"].includes(j.status)).length;
      $("jobs-live").textContent = running ? `${running} job(s) running or queued: updating live` : "";
      $("jobs").dataset.updated = String(Date.now());
    } catch (e) { $("jobs-live").textContent = `not updating: ${e.message}`; }
    setTimeout(tick, 2000);
  }
  wire();
  tick();
})();
