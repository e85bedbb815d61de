// New job form: parameters with their defaults, a live YAML preview, the SDK's field errors.
"use strict";
(async () => {
  const form = document.getElementById("job-form");
  const { shown, parameters } = await studio.api("GET", "/api/jobs-form/parameters");
  const box = document.getElementById("params");
  for (const key of shown) {
    const p = parameters[key];
    let input;
    if (p.choices || p.type === "bool") {
      const choices = p.choices || [true, false];
      input = studio.el("select", { name: `parameters.${key}` }, studio.el("option", { value: "" }, `(default ${p.default})`),
        ...choices.map((c) => studio.el("option", { value: String(c) }, String(c))));
    } else {
      input = studio.el("input", { name: `parameters.${key}`, placeholder: String(p.default), type: "text" });
    }
    box.append(studio.el("label", { class: "param", title: p.description }, key, input, studio.el("span", { class: "muted" }, p.description || p.type)));
    box.append(studio.el("div", { class: "err", id: `err-parameters.${key}` }));
  }

  function value(key, text) {
    if (text === "") return "";
    const p = parameters[key];
    if (p && (p.type === "bool")) return text === "true";
    if (p && (p.type === "int" || p.type === "float" || typeof p.default === "number") && !isNaN(Number(text))) return Number(text);
    if (p && p.choices && p.choices.some((c) => typeof c === "number")) return Number(text);
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
    if (!e) return;
    const target = document.getElementById(`err-${e.field}`) || document.getElementById("err-form");
    target.textContent = `${e.error || e.message}${e.hint ? ` (fix: ${e.hint})` : ""}`;
  }
  let timer = null;
  async function preview() {
    const out = await studio.api("POST", "/api/jobs-form/preview", body());
    document.getElementById("yaml").textContent = out.yaml;
    showError(out.error ? out : null);
  }
  form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(preview, 300); });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = document.getElementById("submit");
    button.disabled = true;
    try {
      const job = await studio.api("POST", "/api/jobs", body());
      location.href = `/jobs/${encodeURIComponent(job.name)}`;
    } catch (e) {
      showError(e);
      button.disabled = false;
    }
  });
  preview();
})();
