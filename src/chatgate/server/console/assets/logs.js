// The spend log: filters, keyset pages (next_cursor), and one request's detail.
import { api, el, money, showError, table } from "./api.js";

const FILTERS = [
  ["since", "since (24h, 7d, ISO)", "7d"], ["until", "until", ""], ["key", "key id", ""],
  ["team", "team", ""], ["model", "model", ""], ["error", "error class", ""],
  ["min_cost", "min cost USD", ""], ["request_id", "request id", ""],
];

function filterForm(onSubmit) {
  const status = el("select", { name: "status" }, ["", "ok", "error"].map((s) => el("option", { value: s }, s || "any")));
  const yesNo = (name) => el("select", { name }, [["", "any"], ["true", "yes"], ["false", "no"]].map(([v, t]) => el("option", { value: v }, t)));
  const form = el("form", { class: "row", id: "log-filters" },
    FILTERS.map(([name, label, value]) => el("label", {}, label, el("input", { name, value, size: name === "request_id" ? 20 : 9 }))),
    el("label", {}, "status", status), el("label", {}, "fallback taken", yesNo("fallback")),
    el("label", {}, "retried", yesNo("retried")), el("button", {}, "Filter"));
  form.addEventListener("submit", (event) => { event.preventDefault(); onSubmit(form); });
  return form;
}

function queryOf(form) {
  const params = new URLSearchParams();
  for (const input of form.elements) {
    if (input.name && input.value.trim()) params.set(input.name, input.value.trim());
  }
  return params;
}

function savedOf(r) {
  const parts = Object.entries(r.saved).filter(([, v]) => v !== null && Number(v) !== 0);
  return parts.length ? parts.map(([k, v]) => `${k} $${v}`).join(", ") : "—";
}

function routeOf(r) {
  const tries = r.attempts > 1 ? `${r.attempts} tries` : "";
  return [r.fallback ? "fallback" : "", tries].filter(Boolean).join(", ");
}

function tokensOf(r) {
  return `${r.prompt_tokens} in / ${r.completion_tokens} out`;
}

function fixed(value, digits) {
  return value === null || value === undefined ? "—" : `${Number(value).toFixed(digits)}`;
}

// Every attempt of a retried or failed request: where it went, how it ended, the wait after.
function attemptsView(r) {
  if (!r.attempt_log.length) return el("p", { class: "muted" }, "Answered at the first attempt.");
  return el("div", { class: "attempts" }, table(["#", "deployment", "model", "outcome", "message", "latency ms", "wait after s"],
    r.attempt_log.map((a, i) => el("tr", {},
      el("td", {}, String(i + 1)), el("td", {}, a.deployment ?? "—"), el("td", {}, a.model ?? "—"),
      el("td", {}, a.skipped ? `skipped: ${a.skipped}` : a.error ? `${a.error}${a.status_code ? ` (${a.status_code})` : ""}` : "ok"),
      el("td", {}, a.message ?? ""), el("td", {}, fixed(a.latency_ms, 1)), el("td", {}, fixed(a.wait_s, 3))))));
}

function detailView(detail) {
  const parts = detail.records.map((r) => el("div", {},
    el("h2", {}, `${r.model} → ${r.deployment ?? "—"} (${r.provider ?? "?"} ${r.served_model ?? ""})`),
    table(["what", "value"], [
      ["time", r.time], ["key", r.key_id ?? "—"], ["team / user", `${r.team ?? "—"} / ${r.user ?? "—"}`],
      ["status", r.error ? `error: ${r.error}` : `ok (${r.finish_reason ?? "—"})`],
      ["tokens: input", r.prompt_tokens], ["tokens: cache read", r.cached_tokens],
      ["tokens: cache write (of which 1h)", `${r.cache_write_tokens} (${r.cache_write_1h_tokens})`],
      ["tokens: output", r.completion_tokens], ["tokens: reasoning (in output)", r.reasoning_tokens],
      ["cost", money(r.cost)],
      ["cost by kind (list price)", r.cost_breakdown ? Object.entries(r.cost_breakdown).map(([k, v]) => `${k} $${v}`).join(", ") : "—"],
      ["latency", r.latency_ms === null ? "—" : `${r.latency_ms.toFixed(1)} ms`],
      ["time to first token", r.ttft_ms === null ? "—" : `${r.ttft_ms.toFixed(1)} ms`],
      ["attempts", r.attempts],
      ["fallback", r.fallback === null ? "—" : r.fallback ? "yes: a fallback group answered" : "no"],
      ["saved", savedOf(r)], ["cache", r.cache_hit ? "hit" : "miss"], ["stream", r.stream ? "yes" : "no"],
    ].map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v)))),
    el("h3", {}, "Attempts"), attemptsView(r)));
  const content = detail.content_logged
    ? "log_content is on: the messages are in the access log under this request id."
    : "Message content is not logged (general_settings.log_content is off).";
  return el("div", { class: "detail", id: "log-detail" },
    el("strong", {}, `Request ${detail.request_id}`), parts, el("p", { class: "muted" }, content));
}

export async function logsPage(root) {
  const body = el("div");
  const detail = el("div");
  const more = el("button", { type: "button", id: "more", hidden: true }, "Older →");
  let query = new URLSearchParams({ since: "7d" });
  let cursor = null;

  async function load(append) {
    const params = new URLSearchParams(query);
    if (append && cursor) params.set("cursor", cursor);
    const page = await api("GET", `/admin/logs?${params}`);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    const rows = page.data.map((r) => {
      const row = el("tr", { class: "click", "data-request": r.request_id },
        el("td", {}, r.time.slice(0, 19).replace("T", " ")), el("td", {}, r.request_id ?? "—"),
        el("td", {}, r.key_id ?? "—"), el("td", {}, r.team ?? "—"), el("td", {}, r.model),
        el("td", {}, r.error ?? "ok"), el("td", { class: "num" }, tokensOf(r)),
        el("td", { class: "num" }, money(r.cost)),
        el("td", { class: "num" }, r.latency_ms === null ? "—" : r.latency_ms.toFixed(0)),
        el("td", {}, r.cache_hit ? "hit" : ""), el("td", { class: "route" }, routeOf(r)));
      row.addEventListener("click", async () => {
        if (!r.request_id) return;
        try { detail.replaceChildren(detailView(await api("GET", `/admin/logs/${encodeURIComponent(r.request_id)}`))); }
        catch (err) { showError(err); }
      });
      return row;
    });
    const head = ["time (UTC)", "request", "key", "team", "model", "status",
      { label: "tokens", num: true }, { label: "cost", num: true }, { label: "ms", num: true }, "cache", "routing"];
    if (append && body.querySelector("tbody")) body.querySelector("tbody").append(...rows);
    else body.replaceChildren(rows.length ? table(head, rows) : el("p", { class: "muted" }, "No requests match."));
  }

  const form = filterForm(async (f) => {
    query = queryOf(f);
    try { showError(null); await load(false); } catch (err) { showError(err); }
  });
  more.addEventListener("click", () => load(true).catch(showError));
  root.append(el("h1", {}, "Logs"), form, body, more, detail);
  await load(false);
}
