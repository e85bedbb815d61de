// New job form: every parameter (the reference ones first, the rest under "Advanced"),
// typed inputs whose placeholders follow the chosen model's defaults, a live YAML preview,
// the compute estimate, and the SDK's field errors (only for fields touched, or after Create).
"use strict";
(async () => {
  const form = document.getElementById("job-form");
  const $ = (id) => document.getElementById(id);
  const info = await studio.api("GET", "/api/jobs-form/parameters");
  const { shown, parameters } = info;
  const touched = new Set();
  let submitted = false;

  const kind = (p) => (p.choices ? "choice" : /bool/.test(p.type) ? "bool" : /int/.test(p.type) ? "int" : /float/.test(p.type) ? "float" : "text");
  const show = (v) => (v == null ? "none" : typeof v === "object" ? JSON.stringify(v) : String(v));
  function input(key, p) {
    const k = kind(p);
    const name = `parameters.${key}`;
    const attrs = { name, id: `f-${key}`, "aria-describedby": `d-${key} err-${name}` };
    if (k === "choice" || k === "bool") {
      const choices = p.choices || [true, false];
      return studio.el("select", attrs, studio.el("option", { value: "" }, `(default ${show(p.default)})`),
        ...choices.map((c) => studio.el("option", { value: String(c) }, String(c))));
    }
    const typed = k === "int" ? { type: "number", step: "1" } : k === "float" ? { type: "number", step: "any" } : { type: "text" };
    return studio.el("input", { ...attrs, ...typed, placeholder: show(p.default) });
  }
  for (const key of [...shown, ...Object.keys(parameters).filter((k) => !shown.includes(k)).sort()]) {
    const p = parameters[key];
    const box = shown.includes(key) ? $("params") : $("params-advanced");
    box.append(studio.el("div", { class: "param" }, studio.el("label", { for: `f-${key}` }, key), input(key, p),
      studio.el("span", { class: "muted", id: `d-${key}` }, p.description || p.type)));
    box.append(studio.el("div", { class: "err", id: `err-parameters.${key}` }));
  }

  // Placeholders: the chosen model's own defaults, else chattune's.
  function placeholders() {
    const own = (info.model_defaults || {})[form.elements.model.value] || {};
    for (const [key, p] of Object.entries(parameters)) {
      const el = form.elements[`parameters.${key}`];
      const value = key in own ? own[key] : p.default;
      if (el.tagName === "INPUT") el.placeholder = show(value);
      else el.options[0].textContent = `(default ${show(value)})`;
    }
    const check = (info.checks || {})[form.elements.model.value];
    $("compute").textContent = !check ? "" : check.ok
      ? `fits this machine (${check.compute}): about ${check.estimated_memory_gb} GB of ${check.available_gb} GB`
      : `does not fit this machine: ${(check.reasons || []).join("; ")}`;
    $("compute").className = check && !check.ok ? "error" : "muted";
  }

  function value(key, text) {
    if (text === "") return "";
    const k = kind(parameters[key]);
    if (k === "bool") return text === "true";
    if ((k === "int" || k === "float") && !isNaN(Number(text))) return Number(text);
    if (k === "choice" && parameters[key].choices.some((c) => typeof c === "number")) return Number(text);
    return text;
  }
  function body() {
    const spec = { data: {}, parameters: {} };
    for (const el of form.elements) {
      if (!el.name) continue;
      const [group, key] = el.name.includes(".") ? el.name.split(".") : [null, el.name];
      if (group === "parameters") spec.parameters[key] = value(key, el.value.trim());
      else if (group) spec[group][key] = el.value.trim();
      else spec[key] = el.value.trim();
    }
    return spec;
  }
  function showError(e) {
    for (const el of form.querySelectorAll(".err")) el.textContent = "";
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    if (!e || !(e.error || e.message)) return;
    const field = e.field && form.elements[e.field];
    if (!submitted && !(e.field && touched.has(e.field))) return;  // nothing before input
    const target = (e.field && $(`err-${e.field}`)) || $("err-form");
    target.textContent = `${e.error || e.message}${e.hint ? ` (fix: ${e.hint})` : ""}`;
    if (field) field.setAttribute("aria-invalid", "true");
  }
  let timer = null;
  async function preview() {
    const out = await studio.api("POST", "/api/jobs-form/preview", body());
    $("yaml").textContent = out.yaml;
    showError(out.error ? out : null);
  }
  form.addEventListener("input", (ev) => {
    if (ev.target.name) touched.add(ev.target.name);
    if (ev.target.name === "model") placeholders();
    clearTimeout(timer); timer = setTimeout(preview, 300);
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submitted = true;
    const button = $("submit");
    button.disabled = true;
    try {
      const job = await studio.api("POST", "/api/jobs", body());
      location.href = `/jobs/${encodeURIComponent(job.name)}`;
    } catch (e) {
      showError(e);
      button.disabled = false;
    }
  });
  placeholders();
  preview();
})();
