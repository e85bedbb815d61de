// Playground: the studio server relays the chat to the endpoint (its key stays there); the
// answer arrives as SSE chunks and is appended token by token.
"use strict";
(() => {
  const form = document.getElementById("chat-form");
  const { deployments } = studio.data();
  const chat = document.getElementById("chat");
  const history = [];
  const $ = (id) => document.getElementById(id);

  function fillDeployments() {
    const list = deployments[form.elements.endpoint.value] || [];
    form.elements.deployment.replaceChildren(studio.el("option", { value: "" }, "(traffic decides)"),
      ...list.map((d) => studio.el("option", { value: d }, d)));
  }
  function request(messages) {
    const num = (k) => (form.elements[k].value === "" ? null : Number(form.elements[k].value));
    return { endpoint: form.elements.endpoint.value, deployment: form.elements.deployment.value || null,
      system: form.elements.system.value, messages, temperature: num("temperature"), top_p: num("top_p"), max_tokens: num("max_tokens") };
  }
  async function snippets() {
    if (!form.elements.endpoint.value) return;
    const pending = form.elements.message.value ? [{ role: "user", content: form.elements.message.value }] : [];
    const out = await studio.api("POST", "/api/playground/snippets", request([...history, ...pending]));
    $("curl").textContent = out.curl;
    $("python").textContent = out.python;
  }
  function bubble(role, text) {
    const span = studio.el("span", { class: "text" }, text);
    chat.append(studio.el("div", { class: `msg ${role}` }, studio.el("b", {}, role), span));
    return span;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = form.elements.message.value.trim();
    if (!text) return;
    history.push({ role: "user", content: text });
    bubble("user", text);
    form.elements.message.value = "";
    const out = bubble("assistant", "");
    out.id = "answer-" + history.length;
    $("send").disabled = true;
    snippets();
    try {
      const answer = await studio.send("POST", "/api/playground/chat", request(history));
      if (!answer.ok) { const e = await answer.json(); throw Object.assign(new Error(e.error), e); }
      const reader = answer.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "", chunks = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
          for (const line of event.split("\n")) {
            if (!line.startsWith("data:")) continue;
            const data = line.slice(5).trim();
            if (data === "[DONE]") continue;
            const parsed = JSON.parse(data);
            if (parsed.error) { out.append(studio.el("span", { class: "error" }, ` ${parsed.error.message || parsed.error}`)); continue; }
            const delta = (parsed.choices && parsed.choices[0].delta && parsed.choices[0].delta.content) || "";
            if (delta) { out.append(delta); chunks += 1; out.dataset.chunks = chunks; }
          }
        }
      }
      history.push({ role: "assistant", content: out.textContent });
      out.dataset.done = "true";
    } catch (e) {
      out.append(studio.el("span", { class: "error" }, `${e.message}${e.hint ? ` (fix: ${e.hint})` : ""}`));
      out.dataset.done = "true";
    }
    $("send").disabled = false;
  });
  form.elements.endpoint.addEventListener("change", () => { fillDeployments(); snippets(); });
  form.addEventListener("input", () => snippets());
  fillDeployments();
  snippets();
})();
