// Models: every deployment's health from the router's live state, and its last hour.
import { api, el, table } from "./api.js";

const dash = (v, f = (x) => x) => (v === null || v === undefined ? "—" : f(v));
const limit = (used, max) => (max === null ? "no limit" : `${dash(used, (u) => Math.round(u))} / ${max}`);

export async function modelsPage(root) {
  const { data } = await api("GET", "/admin/models");
  const rows = data.flatMap((group) => group.deployments.map((d) => el("tr", { "data-deployment": d.id },
    el("td", {}, group.model), el("td", {}, el("code", {}, d.model)),
    el("td", { class: d.state === "cooldown" ? "bad" : null }, d.state,
      d.cooldown_until ? ` until ${d.cooldown_until.slice(11, 19)} (${d.cooldown_reason ?? ""})` : ""),
    el("td", { class: "num" }, d.in_flight), el("td", { class: "num" }, dash(d.latency_ewma_ms, (v) => `${v} ms`)),
    el("td", { class: "num" }, d.requests_1h), el("td", { class: "num" }, dash(d.error_rate_1h, (v) => `${(v * 100).toFixed(1)}%`)),
    el("td", {}, limit(d.rpm_used, d.rpm)), el("td", {}, limit(d.tpm_used, d.tpm)),
    el("td", {}, d.last_error ?? ""))));
  root.append(el("h1", {}, "Models"),
    table(["model", "deployment", "state", { label: "in flight", num: true }, { label: "latency (EWMA)", num: true },
      { label: "requests 1h", num: true }, { label: "errors 1h", num: true }, "RPM used", "TPM used", "last error"], rows));
}
