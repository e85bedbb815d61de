// Endpoint page: deploy, traffic and mirror (must sum to 100), keys on demand, logs.
"use strict";
(() => {
  const { name } = studio.data();
  const base = `/api/endpoints/${encodeURIComponent(name)}`;
  const $ = (id) => document.getElementById(id);
  const say = (id, e) => { $(id).textContent = `${e.message}${e.hint ? ` (fix: ${e.hint})` : ""}`; };

  $("deployment-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    $("deployment-result").textContent = "loading the model…";
    try {
      await studio.api("POST", `${base}/deployments`, { name: f.elements.name.value.trim(), model: f.elements.model.value.trim() });
      location.reload();
    } catch (e) { say("deployment-result", e); }
  });

  const weights = (cls) => Object.fromEntries([...document.querySelectorAll(`input.${cls}`)].map((i) => [i.dataset.name, Number(i.value) || 0]));
  $("save-traffic").onclick = async () => {
    $("traffic-saved").textContent = "";
    const traffic = weights("weight");
    const sum = Object.values(traffic).reduce((a, b) => a + b, 0);
    if (Object.keys(traffic).length && sum !== 100) { $("traffic-result").textContent = `traffic sums to ${sum}, not 100`; return; }
    const mirror = Object.fromEntries(Object.entries(weights("mirror")).filter(([, v]) => v > 0));
    try {
      const saved = await studio.api("PUT", `${base}/traffic`, { traffic, mirror_traffic: mirror });
      $("traffic-result").textContent = "";
      $("traffic-saved").textContent = `saved: ${Object.entries(saved.traffic).map(([k, v]) => `${k}=${v}`).join(", ") || "no traffic"}`;
    } catch (e) { say("traffic-result", e); }
  };

  for (const b of document.querySelectorAll("button.copy")) b.onclick = async () => {
    const keys = await studio.api("GET", `${base}/keys`);  // fetched on demand, never in the page
    $("key-result").textContent = (await studio.copy(keys[b.dataset.key])) ? "copied" : "copy refused by the browser";
  };
  for (const b of document.querySelectorAll("button.regen")) b.onclick = async () => {
    if (!confirm(`Regenerate the ${b.dataset.key} key? The old one stops working.`)) return;
    try { await studio.api("POST", `${base}/keys`, { key_type: b.dataset.key }); location.reload(); } catch (e) { say("key-result", e); }
  };

  async function logs(deployment) {
    const q = deployment ? `?deployment=${encodeURIComponent(deployment)}` : "";
    const out = await studio.api("GET", `${base}/logs${q}`);
    $("log-name").textContent = deployment || "gateway";
    $("endpoint-log").textContent = out.text;
  }
  for (const b of document.querySelectorAll("button.logs")) b.onclick = () => logs(b.dataset.name);
  logs(null);
})();
