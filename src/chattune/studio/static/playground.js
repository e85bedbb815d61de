// Playground: the studio server relays the chat to the endpoint (its key stays there); the
// answer arrives as SSE chunks and is appended token by token. One or two panes (side by
// side: the same messages to two deployments). A failed answer is shown as an error and is
// never part of the history sent to the model.
"use strict";
(() => {
  const form = document.getElementById("chat-form");
  const { deployments } = studio.data();
  const $ = (id) => document.getElementById(id);
  const status = $("chat-status");
  let exchanges = 0;

  const pane = (suffix, box) => ({
    suffix, box, history: [], failed: null, controller: null, last: null,
    endpoint: form.elements[`endpoint${suffix}`], deployment: form.elements[`deployment${suffix}`],
    chat: box.querySelector(".chat"), stats: box.querySelector(".stats"),
  });
  const panes = [pane("", $("pane_a")), pane("_b", $("pane_b"))];
  const active = () => panes.filter((p) => !p.box.hidden);
  const say = (text, isError) => { status.textContent = text; status.className = isError ? "error" : "muted"; };

  function fillDeployments(p) {
    const list = deployments[p.endpoint.value] || [];
    p.deployment.replaceChildren(studio.el("option", { value: "" }, "(traffic decides)"),
      ...list.map((d) => studio.el("option", { value: d }, d)));
  }
  function request(p, messages) {
    const num = (k) => (form.elements[k].value === "" ? null : Number(form.elements[k].value));
    return { endpoint: p.endpoint.value, deployment: p.deployment.value || null,
      system: form.elements.system.value, messages, temperature: num("temperature"), top_p: num("top_p"), max_tokens: num("max_tokens") };
  }
  async function snippets() {
    const p = panes[0];
    if (!p.endpoint.value) return;
    const pending = form.elements.message.value ? [{ role: "user", content: form.elements.message.value }] : [];
    try {
      const out = await studio.api("POST", "/api/playground/snippets", request(p, [...p.history, ...pending]));
      $("curl").textContent = out.curl;
      $("python").textContent = out.python;
    } catch (e) { /* the snippets are a convenience: the chat says what is wrong */ }
  }
  function bubble(p, role, text) {
    const span = studio.el("span", { class: "text" }, text);
    const box = studio.el("div", { class: `msg ${role}` }, studio.el("b", {}, role), span);
    p.chat.append(box);
    p.chat.scrollTop = p.chat.scrollHeight;
    return span;
  }
  // "no_traffic: endpoint ep routes no traffic …", never raw JSON.
  const readable = (err) => (typeof err === "string" ? err : `${err.code ? `${err.code}: ` : ""}${err.message || JSON.stringify(err)}`);

  async function* events(answer) {
    const reader = answer.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        for (const line of event.split("\n")) {
          const data = line.startsWith("data:") ? line.slice(5).trim() : "";
          if (data && data !== "[DONE]") yield JSON.parse(data);
        }
      }
    }
  }

  function showStats(p, chunks, usage, started, first) {
    const end = performance.now();
    const tokens = usage && usage.completion_tokens != null ? usage.completion_tokens : chunks;
    const span = first ? (end - first) / 1000 : 0;
    const rate = span > 0 && tokens > 1 ? ` · ${((tokens - 1) / span).toFixed(1)} tokens/s` : "";
    const prompt = usage && usage.prompt_tokens != null ? ` · prompt ${usage.prompt_tokens} tokens` : "";
    const ttft = first ? ` · first token after ${((first - started) / 1000).toFixed(2)} s` : "";
    p.stats.textContent = `${tokens} tokens${rate}${prompt}${ttft}`;
    p.stats.dataset.tokens = tokens;
  }

  async function answer(p, id) {
    const out = bubble(p, "assistant", "");
    out.id = id;
    const started = performance.now();
    let chunks = 0, first = null, usage = null;
    p.controller = new AbortController();
    try {
      const res = await studio.send("POST", "/api/playground/chat", request(p, p.history), p.controller.signal);
      if (!res.ok) { const e = await res.json(); throw Object.assign(new Error(e.error), e); }
      for await (const parsed of events(res)) {
        if (parsed.error) throw Object.assign(new Error(readable(parsed.error)), { hint: "" });
        if (parsed.usage) usage = parsed.usage;
        const delta = (parsed.choices && parsed.choices[0] && parsed.choices[0].delta && parsed.choices[0].delta.content) || "";
        if (delta) { first = first || performance.now(); out.append(delta); chunks += 1; out.dataset.chunks = chunks; }
      }
      p.history.push({ role: "assistant", content: out.textContent });
      p.last = out;
      showStats(p, chunks, usage, started, first);
    } catch (e) {
      if (e.name === "AbortError") {
        if (out.textContent) { p.history.push({ role: "assistant", content: out.textContent }); p.last = out; }
        else { p.failed = p.history.pop(); out.parentNode.remove(); }
        out.append(studio.el("span", { class: "muted" }, " (stopped)"));
      } else {
        // Shown as an error; the exchange leaves the history (Regenerate sends it again).
        p.failed = p.history.pop();
        out.replaceChildren(studio.el("span", { class: "error", role: "alert" }, `${e.message}${e.hint ? ` (fix: ${e.hint})` : ""}`));
        out.parentNode.classList.add("failed");
        out.dataset.error = "true";
        p.last = null;
      }
    }
    p.controller = null;
    out.dataset.done = "true";
  }

  async function run(work) {
    $("send").disabled = true; $("regenerate").disabled = true; $("stop").disabled = false;
    say("answering…");
    await Promise.all(work);
    $("send").disabled = false; $("regenerate").disabled = false; $("stop").disabled = true;
    say(active().some((p) => p.failed) ? "an answer failed: it is not sent back to the model; Regenerate retries it" : "", false);
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = form.elements.message.value.trim();
    if (!active().every((p) => p.endpoint.value)) {
      say("no endpoint to chat with: create an endpoint and deploy a model on the Endpoints page, then pick it here", true);
      return;
    }
    if (!text) { say("type a message first", true); return; }
    exchanges += 1;
    form.elements.message.value = "";
    const work = active().map((p) => {
      p.failed = null;
      p.history.push({ role: "user", content: text });
      bubble(p, "user", text);
      return answer(p, `answer${p.suffix ? "-b" : ""}-${exchanges}`);
    });
    snippets();
    await run(work);
  });

  $("regenerate").onclick = async () => {
    const work = active().map((p) => {
      if (p.failed) { p.history.push(p.failed); p.failed = null; }
      else if (p.last && p.history.length && p.history[p.history.length - 1].role === "assistant") {
        p.history.pop(); p.last.parentNode.remove(); p.last = null;
      } else return null;
      exchanges += 1;
      return answer(p, `answer${p.suffix ? "-b" : ""}-${exchanges}`);
    }).filter(Boolean);
    if (work.length) await run(work); else say("nothing to regenerate yet", true);
  };
  $("stop").onclick = () => { for (const p of panes) if (p.controller) p.controller.abort(); };
  $("stop").disabled = true;
  $("new-chat").onclick = () => {
    for (const p of panes) { if (p.controller) p.controller.abort(); p.history = []; p.failed = null; p.last = null; p.chat.replaceChildren(); p.stats.textContent = ""; }
    say("new chat", false);
    snippets();
  };
  $("export").onclick = () => {
    const system = form.elements.system.value.trim() ? [{ role: "system", content: form.elements.system.value.trim() }] : [];
    const lines = active().filter((p) => p.history.length).map((p) => JSON.stringify({ messages: [...system, ...p.history] }));
    if (!lines.length) { say("nothing to export yet", true); return; }
    const link = studio.el("a", { href: URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "application/jsonl" })), download: "playground.jsonl" });
    document.body.append(link); link.click(); link.remove();
    say(`exported ${lines.length} conversation(s) as JSON lines (check them with \`chattune data validate\`)`, false);
  };
  $("compare").addEventListener("change", (ev) => { panes[1].box.hidden = !ev.target.checked; });
  form.elements.message.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); form.requestSubmit(); }
  });
  for (const p of panes) p.endpoint.addEventListener("change", () => { fillDeployments(p); snippets(); });
  form.addEventListener("input", (ev) => { if (ev.target.name !== "message" || ev.target.value.length % 8 === 0) snippets(); });
  panes.forEach(fillDeployments);
  if (!Object.keys(deployments).length) say("no endpoint yet: create one and deploy a model on the Endpoints page to chat here", true);
  snippets();
})();
