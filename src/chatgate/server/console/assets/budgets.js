// Budgets: every budget in force with its use this period, its reset time and its alerts.
import { api, el, money, table } from "./api.js";

function useBar(share) {
  const bar = el("span", { class: share >= 1 ? "bar over" : "bar" }, el("span"));
  bar.firstChild.style.width = `${Math.min(100, share * 100)}%`;
  return bar;
}

export async function budgetsPage(root) {
  const { data } = await api("GET", "/admin/budgets");
  const rows = data.map((b) => el("tr", { "data-budget": b.budget_id },
    el("td", {}, b.source), el("td", {}, b.scope), el("td", {}, el("code", {}, b.subject)),
    el("td", {}, `${b.window} (${b.period})`),
    el("td", {}, useBar(b.used), ` ${money(b.spent)} of $${b.limit}`),
    el("td", { class: "num" }, money(b.reserved)),
    el("td", {}, b.resets_at ? b.resets_at.slice(0, 16).replace("T", " ") : "never"),
    el("td", {}, b.alerts.map((a) => `${Math.round(a.at * 100)}%${a.crossed ? " ✔" : ""}`).join(", "))));
  root.append(el("h1", {}, "Budgets"),
    el("p", { class: "muted" }, "Configured budgets (general_settings.budgets) and the most spent key budgets; ✔ marks an alert threshold crossed this period."),
    rows.length ? table(["source", "scope", "subject", "window", "use", { label: "held", num: true }, "resets (UTC)", "alerts"], rows)
      : el("p", { class: "muted" }, "No budgets are in force."));
}
