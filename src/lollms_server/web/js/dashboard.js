// Dashboard: GET /api/v1/status every 2 s (memory per device, loaded models, queue, active
// generations), tokens per second from /metrics, load / unload / pin buttons, and what
// discovery could not load.

import { api, explain } from "./api.js";
import { byId, formatBytes, formatSeconds, h, meter, replace, toast } from "./dom.js";

const POLL_MS = 2000;
let timer = 0;
let visible = false;
let wired = false;
let lastTokens = null;

/** The view is shown: poll while it stays visible. */
export function show() {
  visible = true;
  if (!wired) wire();
  loadModelChoices();
  loadProblems();
  poll();
}

/** The view is hidden: stop polling. */
export function hide() {
  visible = false;
  clearTimeout(timer);
}

function wire() {
  wired = true;
  byId("dash-load-form").addEventListener("submit", onLoad);
  document.addEventListener("visibilitychange", () => {
    if (visible && !document.hidden) poll();
  });
}

async function poll() {
  clearTimeout(timer);
  if (!visible) return;
  if (!document.hidden) await refresh();
  if (visible) timer = setTimeout(poll, POLL_MS);
}

/** Fetch the status (and the token counter) and redraw. */
export async function refresh() {
  try {
    const [status, metrics] = await Promise.all([
      api("/api/v1/status"),
      api("/metrics").catch(() => null),
    ]);
    byId("dash-error").textContent = "";
    renderStats(status, tokensPerSecond(metrics));
    renderDevices(status.devices);
    renderModels(status.models);
    byId("dash-updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    byId("dash-error").textContent = `Cannot read the server's status: ${explain(err)}`;
  }
}

function tokensPerSecond(metrics) {
  if (typeof metrics !== "string") return null;
  let total = 0;
  for (const line of metrics.split("\n")) {
    const m = /^lollms_tokens_generated_total(?:\{[^}]*\})?\s+([0-9.eE+-]+)/.exec(line);
    if (m) total += Number(m[1]);
  }
  const now = performance.now();
  const previous = lastTokens;
  lastTokens = { total, now };
  if (!previous || now <= previous.now) return null;
  return Math.max(0, (total - previous.total) / ((now - previous.now) / 1000));
}

function stat(label, value, note = "") {
  return h(
    "div",
    { class: "stat card" },
    h("div", { class: "stat-value" }, value),
    h("div", { class: "stat-label" }, label),
    note ? h("div", { class: "muted small" }, note) : null,
  );
}

function renderStats(status, rate) {
  const waits = status.models.map((m) => m.oldest_wait_seconds).filter((w) => w !== null);
  const loaded = status.models.filter((m) => m.status === "loaded").length;
  replace(
    byId("dash-stats"),
    stat("Active generations", String(status.active_generations)),
    stat(
      "Queued requests",
      String(status.queue.depth),
      `of ${status.queue.max_queue}; oldest wait ${waits.length ? formatSeconds(Math.max(...waits)) : "—"}`,
    ),
    stat("Tokens per second", rate === null ? "—" : rate.toFixed(1), "all bindings, last 2 s"),
    stat("Loaded models", String(loaded)),
  );
}

function renderDevices(devices) {
  const cards = Object.entries(devices).map(([name, d]) => {
    const usable = d.budget_bytes > 0;
    return h(
      "div",
      { class: "device card", dataset: { device: name } },
      h("div", { class: "device-head" }, h("strong", {}, name), h("span", { class: "muted small" }, d.source)),
      usable ? meter(d.used_bytes, d.budget_bytes, `${name} memory in use`) : null,
      h(
        "div",
        { class: "small" },
        usable
          ? `${formatBytes(d.used_bytes)} used of a ${formatBytes(d.budget_bytes)} budget ` +
              `(${formatBytes(d.free_bytes)} free, ${formatBytes(d.total_bytes)} in all)`
          : "No memory budget: nothing is loaded here.",
      ),
    );
  });
  replace(byId("dash-devices"), cards);
}

function modelButtons(m) {
  const id = `${m.binding_name}/${m.model_name}`;
  const busy = m.status !== "loaded";
  return h(
    "div",
    { class: "row-actions" },
    h(
      "button",
      {
        type: "button",
        class: "small",
        disabled: busy,
        dataset: { action: "pin", model: id },
        "aria-label": `${m.pinned ? "Unpin" : "Pin"} ${id}`,
        onclick: () => act("pin", { model: id, pinned: !m.pinned }),
      },
      m.pinned ? "Unpin" : "Pin",
    ),
    h(
      "button",
      {
        type: "button",
        class: "small danger",
        disabled: busy || m.active_generations > 0,
        title: m.active_generations > 0 ? "Busy: generations are running" : null,
        dataset: { action: "unload", model: id },
        "aria-label": `Unload ${id}`,
        onclick: () => act("unload", { model: id }),
      },
      "Unload",
    ),
  );
}

function renderModels(models) {
  const box = byId("dash-models");
  if (!models.length) {
    replace(box, h("p", { class: "muted" }, "No model is loaded. A request, or the Load button, loads one."));
    return;
  }
  const focused = document.activeElement && document.activeElement.dataset;
  const keep = focused && focused.action ? `${focused.action}|${focused.model}` : null;
  const rows = models.map((m) =>
    h(
      "tr",
      { dataset: { model: `${m.binding_name}/${m.model_name}` } },
      h("th", { scope: "row" }, `${m.binding_name}/${m.model_name}`),
      h("td", {}, h("span", { class: `badge ${m.status}` }, m.status)),
      h("td", {}, m.device),
      h("td", {}, formatBytes(m.memory_bytes)),
      h("td", {}, `${m.active_generations} / ${m.max_concurrency}`),
      h("td", {}, m.queued ? `${m.queued} (oldest ${formatSeconds(m.oldest_wait_seconds)})` : "0"),
      h("td", {}, m.pinned ? "pinned" : formatSeconds(m.keep_alive)),
      h("td", {}, formatSeconds(m.idle_seconds)),
      h("td", {}, modelButtons(m)),
    ),
  );
  const head = ["Model", "Status", "Device", "Memory", "Running", "Queued", "Keep alive", "Idle", "Actions"];
  replace(
    box,
    h(
      "table",
      { class: "table" },
      h("caption", { class: "visually-hidden" }, "Models the scheduler knows"),
      h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows),
    ),
  );
  if (keep) {
    const [action, model] = keep.split("|");
    const again = box.querySelector(`button[data-action="${action}"][data-model="${CSS.escape(model)}"]`);
    if (again && !again.disabled) again.focus();
  }
}

async function act(action, body) {
  try {
    await api(`/api/v1/models/${action}`, { body });
    const verb = action === "unload" ? "Unloaded" : body.pinned ? "Pinned" : "Unpinned";
    toast(`${verb} ${body.model}.`);
  } catch (err) {
    toast(explain(err), "error");
  }
  refresh();
}

async function onLoad(event) {
  event.preventDefault();
  const model = byId("dash-load-model").value;
  if (!model) return;
  const button = byId("dash-load");
  button.disabled = true;
  toast(`Loading ${model}…`);
  refresh();
  try {
    await api("/api/v1/models/load", { body: { model, pin: byId("dash-load-pin").checked } });
    toast(`Loaded ${model}.`);
  } catch (err) {
    toast(explain(err), "error");
  } finally {
    button.disabled = false;
  }
  refresh();
}

async function loadModelChoices() {
  const select = byId("dash-load-model");
  try {
    const { models } = await api("/api/v1/list_models");
    const options = [];
    for (const [instance, list] of Object.entries(models)) {
      for (const m of list) {
        const id = `${instance}/${m.name}`;
        options.push(h("option", { value: id }, `${id} (${m.modalities.join(", ")})`));
      }
    }
    const chosen = select.value;
    replace(select, options.length ? options : h("option", { value: "" }, "No models found"));
    if (chosen) select.value = chosen;
  } catch (err) {
    replace(select, h("option", { value: "" }, `Cannot list models: ${explain(err)}`));
  }
}

function problem(kind, name, message) {
  return h("li", {}, h("strong", {}, `${kind} ${name}`), ": ", h("span", { class: "problem-text" }, message));
}

async function loadProblems() {
  const box = byId("dash-problems");
  const calls = await Promise.allSettled([
    api("/api/v1/list_bindings"),
    api("/api/v1/list_personalities"),
    api("/api/v1/list_functions"),
    api("/api/v1/list_models"),
  ]);
  const items = [];
  const [bindings, personalities, functions, models] = calls;
  if (bindings.status === "fulfilled") {
    for (const b of bindings.value.bindings.filter((x) => x.status === "error")) {
      items.push(problem("Binding type", `'${b.type}' (${b.source})`, `failed to import: ${b.error}`));
    }
  }
  if (personalities.status === "fulfilled") {
    for (const p of personalities.value.errors || []) items.push(problem("Personality", `'${p.folder}'`, p.reason));
  }
  if (functions.status === "fulfilled") {
    for (const f of functions.value.errors || []) items.push(problem("Functions module", `'${f.module}'`, f.reason));
  }
  if (models.status === "fulfilled") {
    for (const [instance, message] of Object.entries(models.value.errors || {})) {
      items.push(problem("Binding instance", `'${instance}'`, `cannot list its models: ${message}`));
    }
  }
  for (const failed of calls.filter((c) => c.status === "rejected")) {
    items.push(problem("Request", "", explain(failed.reason)));
  }
  replace(
    box,
    items.length
      ? h("ul", { class: "problems" }, items)
      : h("p", { class: "muted" }, "None: every binding type, personality and function module loaded."),
  );
}
