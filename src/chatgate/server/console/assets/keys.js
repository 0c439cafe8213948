// Virtual keys, 50 a page: create (the secret shown once), edit, revoke; each key's spend
// against its budget this period (lifetime spend for a key with no budget), and its tags.
import { api, el, money, showError, table } from "./api.js";

const FIELDS = ["name", "models", "tags", "budget", "budget_period", "rpm", "tpm", "expires"];
const LISTS = new Set(["models", "tags"]);  // comma-separated in the form, lists in the API

// The form's fields as the admin API takes them; an empty field is left out (or cleared).
function fieldsOf(form, clearEmpty) {
  const out = {};
  for (const name of FIELDS) {
    const input = form.elements[name];
    if (!input) continue;
    const text = input.value.trim();
    if (!text) { if (clearEmpty && name !== "name") out[name] = null; continue; }
    if (LISTS.has(name)) out[name] = text.split(",").map((m) => m.trim()).filter(Boolean);
    else if (name === "rpm" || name === "tpm") out[name] = Number(text);
    else out[name] = text;
  }
  return out;
}

function inputs(key = {}) {
  const period = el("select", { name: "budget_period" },
    ["", "daily", "monthly", "lifetime"].map((p) => el("option", { value: p, selected: key.budget_period === p }, p || "—")));
  return [
    el("label", {}, "name", el("input", { name: "name", value: key.name ?? "", size: 14 })),
    el("label", {}, "models (comma-separated; empty: all)", el("input", { name: "models", value: (key.models ?? []).join(", "), size: 22 })),
    el("label", {}, "tags (comma-separated)", el("input", { name: "tags", value: (key.tags ?? []).join(", "), size: 18 })),
    el("label", {}, "budget USD", el("input", { name: "budget", value: key.budget ?? "", size: 7 })),
    el("label", {}, "period", period),
    el("label", {}, "rpm", el("input", { name: "rpm", value: key.rpm ?? "", size: 5 })),
    el("label", {}, "tpm", el("input", { name: "tpm", value: key.tpm ?? "", size: 7 })),
    el("label", {}, "expires (e.g. 30d)", el("input", { name: "expires", size: 7 })),
  ];
}

function budgetCell(key) {
  const used = Number(key.spent);
  if (key.budget === null) return el("td", {}, money(used), el("span", { class: "muted" }, " no budget"));
  const share = Number(key.budget) > 0 ? used / Number(key.budget) : 1;
  const bar = el("span", { class: share >= 1 ? "bar over" : "bar" }, el("span"));
  bar.firstChild.style.width = `${Math.min(100, share * 100)}%`;
  return el("td", {}, bar, ` ${money(used)} of $${key.budget} ${key.budget_period}`);
}

export async function keysPage(root) {
  const secretBox = el("div");
  const form = el("form", { class: "row", id: "create-key" }, inputs(), el("button", {}, "Create key"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await api("POST", "/admin/keys", fieldsOf(form, false));
      form.reset();
      const copy = el("button", { type: "button", onclick: () => navigator.clipboard?.writeText(made.key) }, "Copy");
      secretBox.replaceChildren(el("p", { class: "secret" },
        "New key (shown this once): ", el("code", { id: "new-secret" }, made.key), " ", copy));
      await render();
    } catch (err) { showError(err); }
  });
  const list = el("div");
  const more = el("button", { type: "button", id: "more-keys", hidden: true }, "More keys →");
  root.append(el("h1", {}, "Keys"), form, secretBox, list, more);
  let after = null;

  // A page of keys (oldest first), each with its spend in its budget's current period.
  async function load(append) {
    const params = new URLSearchParams({ limit: "50", usage: "true" });
    if (append && after) params.set("after", after);
    const page = await api("GET", `/admin/keys?${params}`);
    after = page.next_after;
    more.hidden = !after;
    const rows = page.data.map((key) => keyRow(key, render));
    if (append) list.querySelector("tbody").append(...rows);
    else list.replaceChildren(table(["name", "key", "models", "tags", "spend / budget", "rpm", "tpm", "expires", ""], rows));
  }
  const render = () => load(false);
  more.addEventListener("click", () => load(true).catch(showError));
  await render();
}

function keyRow(key, render) {
  const revoke = el("button", { type: "button", class: "revoke" }, "Revoke");
  revoke.addEventListener("click", async () => {
    if (revoke.textContent !== "Confirm revoke") { revoke.textContent = "Confirm revoke"; return; }
    try { await api("DELETE", `/admin/keys/${key.key_id}`); await render(); } catch (err) { showError(err); }
  });
  const edit = el("button", { type: "button", class: "edit" }, "Edit");
  const row = el("tr", { "data-key": key.key_id },
    el("td", {}, key.name ?? ""), el("td", {}, el("code", {}, key.key)),
    el("td", {}, key.models.length ? key.models.join(", ") : el("span", { class: "muted" }, "all")),
    el("td", { class: "tags" }, (key.tags ?? []).join(", ")),
    budgetCell(key), el("td", { class: "num" }, key.rpm ?? "—"), el("td", { class: "num" }, key.tpm ?? "—"),
    el("td", {}, key.expires_at ? key.expires_at.slice(0, 16).replace("T", " ") : "never"),
    el("td", {}, edit, " ", revoke));
  edit.addEventListener("click", () => {
    const form = el("form", { class: "row" }, inputs(key), el("button", {}, "Save"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const changes = fieldsOf(form, true);
      if (!form.elements.expires.value.trim()) delete changes.expires;  // keep the expiry
      try { await api("PATCH", `/admin/keys/${key.key_id}`, changes); await render(); } catch (err) { showError(err); }
    });
    row.after(el("tr", {}, el("td", { colspan: 9 }, form)));
    edit.disabled = true;
  });
  return row;
}
