// The console's shell: sign-in, sign-out and a page per hash route.
import { api, setCsrf, showError } from "./api.js";
import { budgetsPage } from "./budgets.js";
import { keysPage } from "./keys.js";
import { logsPage } from "./logs.js";
import { modelsPage } from "./models.js";
import { overviewPage } from "./overview.js";
import { playgroundPage } from "./playground.js";

const pages = {
  "#/overview": overviewPage, "#/logs": logsPage, "#/keys": keysPage,
  "#/budgets": budgetsPage, "#/models": modelsPage, "#/playground": playgroundPage,
};
const $ = (id) => document.getElementById(id);

function signedIn(who) {
  setCsrf(who.csrf);
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("signout").hidden = false;
  $("who").textContent = `signed in: ${who.name}`;
  route();
}

function signedOut() {
  setCsrf("");
  $("signin").hidden = false;
  $("nav").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  $("page").replaceChildren();
}

async function route() {
  if ($("nav").hidden) return;
  const hash = pages[location.hash] ? location.hash : "#/overview";
  for (const a of $("nav").querySelectorAll("a")) a.classList.toggle("active", a.getAttribute("href") === hash);
  showError(null);
  const page = $("page");
  page.replaceChildren();
  try {
    await pages[hash](page);
  } catch (err) {
    if (err.status === 401) signedOut();
    showError(err);
  }
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const who = await api("POST", "/ui/session", { key: $("signin-key").value });
    $("signin-key").value = "";
    showError(null);
    signedIn(who);
  } catch (err) { showError(err); }
});

$("signout").addEventListener("click", async () => {
  try { await api("DELETE", "/ui/session"); } catch (err) { showError(err); }
  signedOut();
});

window.addEventListener("hashchange", route);
api("GET", "/ui/session").then(signedIn, signedOut);
