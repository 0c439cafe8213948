// Playground: chat with a model the signed-in key may use, streamed, with each answer's
// time to first token, latency and cost (from the spend log once it is written).
import { api, csrfHeader, el, money, showError } from "./api.js";

async function costOf(requestId) {
  for (let i = 0; i < 20; i++) {
    try { return (await api("GET", `/admin/logs/${encodeURIComponent(requestId)}`)).records[0]; }
    catch (err) { if (err.status !== 404) throw err; }
    await new Promise((r) => setTimeout(r, 250));
  }
  return null;
}

// The text deltas of an OpenAI-style SSE stream, as they come.
async function* deltas(resp) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const events = buffer.split("\n\n");
    buffer = events.pop();
    for (const event of events) {
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
      if (!data || data === "[DONE]") continue;
      const text = JSON.parse(data).choices?.[0]?.delta?.content;
      if (text) yield text;
    }
  }
}

export async function playgroundPage(root) {
  const models = (await api("GET", "/v1/models")).data.map((m) => m.id);
  const model = el("select", { name: "model" }, models.map((m) => el("option", { value: m }, m)));
  const prompt = el("textarea", { name: "prompt", rows: 3, cols: 80, required: true });
  const transcript = el("div", { id: "transcript" });
  const form = el("form", { id: "playground" }, el("label", {}, "model", model), el("label", {}, "message", prompt), el("button", {}, "Send"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const started = performance.now();
    const answer = el("p", { class: "answer" });
    const stats = el("p", { class: "muted stats" }, "…");
    transcript.append(el("p", {}, el("strong", {}, "you: "), prompt.value), answer, stats);
    try {
      const resp = await fetch("/v1/chat/completions", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", ...csrfHeader() },
        body: JSON.stringify({ model: model.value, stream: true, messages: [{ role: "user", content: prompt.value }] }),
      });
      if (!resp.ok) throw new Error((await resp.json()).error?.message ?? `HTTP ${resp.status}`);
      let ttft = null;
      for await (const text of deltas(resp)) {
        ttft ??= performance.now() - started;
        answer.append(text);
      }
      const total = performance.now() - started;
      const requestId = resp.headers.get("x-chatgate-request-id");
      stats.textContent = `${model.value} · first token ${Math.round(ttft ?? total)} ms · ${Math.round(total)} ms`;
      const record = await costOf(requestId);
      if (record) stats.textContent += ` · ${record.prompt_tokens} in / ${record.completion_tokens} out · ${money(record.cost)}`;
      prompt.value = "";
    } catch (err) { showError(err); stats.textContent = "failed"; }
  });
  root.append(el("h1", {}, "Playground"), form, transcript);
}
