// Overview: spend over time stacked by a dimension, traffic, latency, cache, retries and
// fallbacks, and what each lever saved.
import { api, el, money } from "./api.js";
import { legend, lines, stackedBars } from "./chart.js";

const usd = (v) => (v === 0 ? "$0" : `$${v < 0.01 ? v.toPrecision(2) : v.toFixed(2)}`);
const count = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
const ms = (v) => `${Math.round(v)} ms`;

const levers = [["tier", "tiering"], ["cache", "cache hits"], ["prompt", "prompt caching"], ["batch", "batch"]];

function card(label, value, id) {
  return el("div", { class: "card" }, el("b", { id }, value), label);
}

export async function overviewPage(root) {
  const bucket = el("select", { name: "bucket" }, ["hour", "day", "month"].map((b) => el("option", { value: b, selected: b === "day" }, b)));
  const by = el("select", { name: "by" }, ["model", "key", "team", "user", "tag"].map((b) => el("option", { value: b }, b)));
  const controls = el("form", { class: "row", id: "overview-controls" },
    el("label", {}, "bucket", bucket), el("label", {}, "stacked by", by));
  const body = el("div", { id: "overview" });
  root.append(el("h1", {}, "Overview"), controls, body);

  let latest = 0;  // a slower answer to an earlier choice must not replace a newer one
  async function render() {
    const asked = ++latest;
    const data = await api("GET", `/admin/overview?bucket=${bucket.value}&by=${by.value}`);
    if (asked !== latest) return;
    const t = data.traffic, totals = data.totals;
    const errorRate = totals.requests ? `${((100 * totals.errors) / totals.requests).toFixed(1)}%` : "—";
    const hitRate = totals.cache_hit_rate === null ? "—" : `${(100 * totals.cache_hit_rate).toFixed(1)}%`;
    const global = data.budgets.find((b) => b.scope === "global");
    const spendChart = stackedBars(data.buckets, data.spend, usd, null);
    const savedTotal = Object.values(totals.saved).reduce((a, b) => a + b, 0);
    const savedChart = stackedBars(data.buckets, levers.map(([key, label]) => ({ name: label, values: data.saved[key] })), usd, null);
    savedChart.id = "saved-chart";
    spendChart.id = "spend-chart";
    const pending = data.pending_days.length
      ? el("p", { class: "muted", id: "pending" }, `Computing ${data.pending_days.length} earlier days; they fill in shortly.`)
      : null;
    if (pending) setTimeout(() => { if (body.isConnected) render().catch(() => {}); }, 1500);
    body.replaceChildren(...[pending].filter(Boolean),
      el("div", { class: "cards" },
        card("spend in window", money(totals.cost), "total-cost"), card("requests", totals.requests, "total-requests"),
        card("error rate", errorRate), card("cache hit rate", hitRate),
        card("saved", usd(savedTotal), "total-saved"), card("retried requests", totals.retried, "total-retried"),
        card("answered by a fallback", totals.fallbacks, "total-fallbacks")),
      el("h2", { id: "spend-title" }, `Spend per ${data.bucket}, by ${data.by}`), legend(data.spend.map((s) => s.name)), spendChart,
      el("p", { class: "muted", id: "tag-note", hidden: data.by !== "tag" }, "A request with several tags counts in each of their stacks, so the stacks can add up to more than the spend; untagged requests are \"(none)\"."),
      el("p", { class: "muted" }, global ? `Global budget: $${global.limit} ${global.window}.` : "No global budget is configured."),
      el("h2", {}, "Requests and errors"), legend(["requests", "errors", "cache hits", "retried", "fallbacks"]),
      lines(data.buckets, [{ values: t.requests }, { values: t.errors }, { values: t.cache_hits }, { values: t.retried }, { values: t.fallbacks }], count),
      el("h2", { id: "saved-title" }, `Saved per ${data.bucket}, by lever`), legend(levers.map(([key, label]) => `${label} ${usd(totals.saved[key])}`)), savedChart,
      el("p", { class: "muted" }, "Recorded with each request: tiering against the premium tier, response-cache hits at what the call would cost, prompt-cache reads against the input price, batch jobs against the live price."),
      el("h2", {}, "Latency and time to first token"), legend(["latency p50", "latency p95", "TTFT p50", "TTFT p95"]),
      lines(data.buckets, [{ values: t.latency_p50_ms }, { values: t.latency_p95_ms }, { values: t.ttft_p50_ms }, { values: t.ttft_p95_ms }], ms));
  }
  bucket.addEventListener("change", () => render());
  by.addEventListener("change", () => render());
  await render();
}
