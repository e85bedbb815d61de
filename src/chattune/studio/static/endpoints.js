// Endpoints page: create an endpoint (the SDK waits until its gateway listens).
"use strict";
(() => {
  const form = document.getElementById("endpoint-form");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const result = document.getElementById("endpoint-result");
    result.textContent = "starting its gateway…";
    try {
      const ep = await studio.api("POST", "/api/endpoints", { name: form.elements.name.value.trim() });
      location.href = `/endpoints/${encodeURIComponent(ep.name)}`;
    } catch (e) { result.textContent = `${e.message}${e.hint ? ` (fix: ${e.hint})` : ""}`; }
  });
})();
