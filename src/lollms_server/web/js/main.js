// Start-up: theme, sign-in and the hash router (#/dashboard, #/chat, #/media, #/browse).

import { api, clearKey, explain, getKey, onUnauthorized, setKey } from "./api.js";
import { byId } from "./dom.js";
import * as dashboard from "./dashboard.js";
import * as chat from "./chat.js";
import * as media from "./media.js";
import * as browse from "./browse.js";

const VIEWS = { dashboard, chat, media, browse };
const THEME_KEY = "lollms_server.theme";
let current = null;

// -- theme: the system's (prefers-color-scheme) unless the toggle chose one --------------------
function applyTheme(theme) {
  const root = document.documentElement;
  if (theme === "light" || theme === "dark") root.dataset.theme = theme;
  else delete root.dataset.theme;
  const button = byId("theme-toggle");
  const chosen = theme === "light" || theme === "dark";
  const label = chosen ? `Theme: ${theme} (switch)` : "Theme: follows the system (switch)";
  button.setAttribute("aria-label", label);
  button.title = label;
  button.textContent = theme === "dark" ? "☾" : theme === "light" ? "☀" : "◐";
}

function cycleTheme() {
  const order = [null, "light", "dark"];
  const now = localStorage.getItem(THEME_KEY);
  const next = order[(order.indexOf(now) + 1) % order.length];
  if (next) localStorage.setItem(THEME_KEY, next);
  else localStorage.removeItem(THEME_KEY);
  applyTheme(next);
}

// -- sign-in -------------------------------------------------------------------------------
function showSignIn(message = "") {
  if (current) current.hide();
  current = null;
  for (const name of Object.keys(VIEWS)) byId(`view-${name}`).hidden = true;
  byId("nav").hidden = true;
  byId("sign-out").hidden = true;
  byId("signin").hidden = false;
  byId("signin-error").textContent = message;
  byId("signin-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = byId("signin-key");
  const key = input.value.trim();
  const error = byId("signin-error");
  const submit = byId("signin-submit");
  if (!key) {
    error.textContent = "Type or paste the API key first.";
    return;
  }
  submit.disabled = true;
  error.textContent = "Checking the key…";
  try {
    await api("/api/v1/status", { key });
  } catch (err) {
    error.textContent =
      err.status === 401
        ? "This API key was refused by the server (401). Check for a typo or a missing part; " +
          "keys are listed with 'lollms-server keys list'."
        : explain(err);
    submit.disabled = false;
    input.select();
    return;
  }
  submit.disabled = false;
  setKey(key);
  input.value = "";
  error.textContent = "";
  enterApp();
}

function signOut() {
  clearKey();
  showSignIn("Signed out. The key was removed from this tab.");
}

function enterApp() {
  byId("signin").hidden = true;
  byId("nav").hidden = false;
  byId("sign-out").hidden = false;
  route();
}

// -- router --------------------------------------------------------------------------------
function route() {
  if (!getKey()) {
    showSignIn();
    return;
  }
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1];
  const view = VIEWS[name] ? name : "dashboard";
  if (!VIEWS[name]) history.replaceState(null, "", "#/dashboard");
  for (const link of byId("nav").querySelectorAll("a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (current && current !== VIEWS[view]) current.hide();
  for (const other of Object.keys(VIEWS)) byId(`view-${other}`).hidden = other !== view;
  current = VIEWS[view];
  current.show();
}

function start() {
  applyTheme(localStorage.getItem(THEME_KEY));
  byId("theme-toggle").addEventListener("click", cycleTheme);
  byId("signin-form").addEventListener("submit", signIn);
  byId("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  onUnauthorized(() => {
    if (!getKey()) return;
    clearKey();
    showSignIn("The server no longer accepts this key (401). Sign in again.");
  });
  if (getKey()) enterApp();
  else showSignIn();
}

start();
