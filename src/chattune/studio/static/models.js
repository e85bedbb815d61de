// Model version page: add a label.
"use strict";
(() => {
  const button = document.getElementById("add-label");
  button.onclick = async () => {
    const { model, version } = button.dataset;
    try {
      await studio.api("POST", `/api/models/${model}/${version}/labels`, { label: document.getElementById("label-name").value });
      location.reload();
    } catch (e) {
      document.getElementById("label-result").textContent = `${e.message}${e.hint ? ` (fix: ${e.hint})` : ""}`;
    }
  };
})();
