// Chat playground: model, personality, system prompt and sampling; answers streamed from
// POST /api/v1/generate (SSE) with a Stop button that closes the connection (the server then
// cancels the generation); thoughts folded, steps and tool calls shown as they arrive;
// conversations kept in local storage.

import { api, explain, stream, streamError } from "./api.js";
import { byId, download, h, replace, toast } from "./dom.js";
import { render as markdown } from "./markdown.js";
import { personalityOption } from "./personas.js";
import * as store from "./store.js";

let wired = false;
let conv = null;
let controller = null;
let personalities = [];
let live = null; // {message, element} of the answer streaming in
let streaming = null; // the conversation whose answer streams in (the live object)
let frame = 0;

/** The view is shown. */
export function show() {
  if (!wired) wire();
  if (!conv) conv = settle(store.list()[0]) || store.create();
  loadChoices();
  renderAll();
  byId("chat-input").focus();
}

/** The view is hidden: a running answer goes on streaming into its conversation. */
export function hide() {}

function wire() {
  wired = true;
  byId("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  byId("chat-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    } else if (e.key === "Escape" && controller) {
      stop();
    }
  });
  byId("chat-stop").addEventListener("click", stop);
  byId("chat-new").addEventListener("click", () =>
    switchTo(conv.messages.length ? store.create({ ...conv.settings }) : conv),
  );
  byId("chat-rename").addEventListener("click", rename);
  byId("chat-delete").addEventListener("click", removeConversation);
  byId("chat-export-json").addEventListener("click", () =>
    download(new Blob([JSON.stringify(conv, null, 2)], { type: "application/json" }), store.fileName(conv, "json")),
  );
  byId("chat-export-md").addEventListener("click", () =>
    download(new Blob([store.toMarkdown(conv)], { type: "text/markdown" }), store.fileName(conv, "md")),
  );
  for (const id of ["chat-model", "chat-temperature", "chat-max-tokens", "chat-system", "chat-language"]) {
    byId(id).addEventListener("change", readSettings);
  }
  byId("chat-persona-search").addEventListener("input", renderPersonalities);
  byId("chat-persona-category").addEventListener("change", renderPersonalities);
  byId("chat-functions").addEventListener("change", readSettings);
}

// -- settings ------------------------------------------------------------------------------
function readSettings() {
  const s = conv.settings;
  s.model = byId("chat-model").value;
  s.temperature = byId("chat-temperature").value;
  s.max_tokens = byId("chat-max-tokens").value;
  s.system = byId("chat-system").value;
  s.language = byId("chat-language").value;
  s.functions = [...byId("chat-functions").querySelectorAll("input:checked")].map((i) => i.value);
  store.save(conv);
  renderSummary();
}

function writeSettings() {
  const s = conv.settings;
  setIfPresent(byId("chat-model"), s.model || "");
  byId("chat-temperature").value = s.temperature ?? "";
  byId("chat-max-tokens").value = s.max_tokens ?? "";
  byId("chat-system").value = s.system || "";
  for (const box of byId("chat-functions").querySelectorAll("input")) {
    box.checked = (s.functions || []).includes(box.value);
  }
  renderPersonalities();
  renderSummary();
}

function setIfPresent(select, value) {
  if ([...select.options].some((o) => o.value === value)) select.value = value;
}

function renderSummary() {
  const s = conv.settings;
  const parts = [s.model || "default model", s.personality ? `personality ${s.personality}` : "no personality"];
  byId("chat-summary").textContent = `(${parts.join(", ")})`;
}

async function loadChoices() {
  const [models, people, functions] = await Promise.allSettled([
    api("/api/v1/list_models"),
    api("/api/v1/list_personalities"),
    api("/api/v1/list_functions"),
  ]);
  const select = byId("chat-model");
  const options = [h("option", { value: "" }, "Server default")];
  if (models.status === "fulfilled") {
    for (const [instance, list] of Object.entries(models.value.models)) {
      for (const m of list.filter((x) => x.modalities.includes("ttt"))) {
        const id = `${instance}/${m.name}`;
        options.push(h("option", { value: id }, m.loaded ? `${id} (loaded)` : id));
      }
    }
  }
  replace(select, options);
  personalities = people.status === "fulfilled" ? people.value.personalities : [];
  const categories = [...new Set(personalities.map((p) => p.category).filter(Boolean))].sort();
  replace(
    byId("chat-persona-category"),
    h("option", { value: "" }, "All categories"),
    categories.map((c) => h("option", { value: c }, c)),
  );
  const list = functions.status === "fulfilled" ? functions.value.functions : [];
  replace(
    byId("chat-functions"),
    list.length
      ? list.map((f) =>
          h("label", { class: "check", title: f.description || "" }, h("input", { type: "checkbox", value: f.name }), ` ${f.name}`),
        )
      : h("span", { class: "muted small" }, "No functions are configured ([paths] functions)."),
  );
  const failed = [models, people, functions].find((r) => r.status === "rejected");
  if (failed) byId("chat-error").textContent = explain(failed.reason);
  writeSettings();
}

const SHOWN = 40;

function renderPersonalities() {
  const query = byId("chat-persona-search").value.trim().toLowerCase();
  const category = byId("chat-persona-category").value;
  const chosen = conv.settings.personality || "";
  const matches = personalities.filter(
    (p) =>
      (!category || p.category === category) &&
      (!query || `${p.name} ${p.id} ${p.category} ${p.description}`.toLowerCase().includes(query)),
  );
  const items = [personalityOption(null, chosen === "", choosePersonality)];
  for (const p of matches.slice(0, SHOWN)) items.push(personalityOption(p, p.id === chosen, choosePersonality));
  const more = matches.length - SHOWN;
  if (more > 0) items.push(h("p", { class: "muted small" }, `${more} more: refine the search.`));
  if (!personalities.length) items.push(h("p", { class: "muted small" }, "No personalities are configured ([paths] personalities)."));
  replace(byId("chat-persona-list"), items);
  renderLanguages();
}

function renderLanguages() {
  const p = personalities.find((x) => x.id === conv.settings.personality);
  const select = byId("chat-language");
  const languages = p ? p.languages || [] : [];
  replace(
    select,
    h("option", { value: "" }, p && p.language ? `Language: ${p.language}` : "Default language"),
    languages.map((l) => h("option", { value: l }, l)),
  );
  select.disabled = languages.length === 0;
  setIfPresent(select, conv.settings.language || "");
}

function choosePersonality(id) {
  conv.settings.personality = id || null;
  conv.settings.language = "";
  store.save(conv);
  renderLanguages();
  renderSummary();
  renderLog();
}

// -- conversations -------------------------------------------------------------------------
/** The conversation to show for `stored`: the live object while its answer streams in; an
 * answer left pending by a closed tab is marked stopped. */
function settle(stored) {
  if (!stored) return null;
  if (streaming && streaming.id === stored.id) return streaming;
  for (const m of stored.messages) {
    if (m.pending) {
      m.pending = false;
      m.stopped = true;
    }
  }
  return stored;
}

function switchTo(conversation) {
  conv = settle(conversation);
  renderAll();
  byId("chat-input").focus();
}

function rename() {
  const title = window.prompt("New name of this conversation", conv.title);
  if (title && title.trim()) {
    conv.title = title.trim().slice(0, 120);
    store.save(conv);
    renderAll();
  }
}

function removeConversation() {
  if (controller) stop();
  if (!window.confirm(`Delete "${conv.title}" from this browser?`)) return;
  store.remove(conv.id);
  conv = settle(store.list()[0]) || store.create({ ...conv.settings });
  renderAll();
}

function renderAll() {
  byId("chat-title").textContent = conv.title;
  const items = store.list().map((c) =>
    h(
      "li",
      {},
      h(
        "button",
        {
          type: "button",
          class: "conv",
          "aria-current": c.id === conv.id ? "true" : null,
          onclick: () => switchTo(store.get(c.id) || c),
        },
        h("span", { class: "conv-title" }, c.title),
        h("span", { class: "muted small" }, `${c.messages.length} messages`),
      ),
    ),
  );
  replace(byId("chat-list"), items);
  writeSettings();
  renderLog();
}

// -- messages ------------------------------------------------------------------------------
function stepItem(step) {
  const mark = step.kind === "step_start" ? (step.ok === undefined ? "…" : step.ok ? "✓" : "✗") : "•";
  return h("li", { class: `step step-${step.kind}` }, h("span", { class: "step-mark", "aria-hidden": "true" }, mark), ` ${step.text}`);
}

function toolBlock(tool) {
  const result = tool.result;
  return h(
    "details",
    { class: "tool" },
    h(
      "summary",
      {},
      `Called ${tool.name}`,
      result ? (result.ok ? " ✓" : " ✗ (failed)") : " …",
    ),
    h("div", { class: "small" }, "Arguments"),
    h("pre", {}, typeof tool.arguments === "string" ? tool.arguments : JSON.stringify(tool.arguments, null, 2)),
    result ? h("div", { class: "small" }, "Result") : null,
    result ? h("pre", {}, typeof result.content === "string" ? result.content : JSON.stringify(result.content, null, 2)) : null,
  );
}

function messageElement(m) {
  const user = m.role === "user";
  const thoughts = m.thoughts
    ? h("details", { class: "thoughts", open: Boolean(m.thoughtsOpen), ontoggle: (e) => { m.thoughtsOpen = e.target.open; } },
        h("summary", {}, m.pending && !m.content ? "Thinking…" : "Thoughts"),
        h("div", { class: "thoughts-body" }, m.thoughts))
    : null;
  const steps = m.steps && m.steps.length ? h("ul", { class: "steps", "aria-label": "Steps" }, m.steps.map(stepItem)) : null;
  const tools = m.tools && m.tools.length ? h("div", { class: "tools" }, m.tools.map(toolBlock)) : null;
  const content = h("div", { class: "content markdown" }, user ? h("p", { class: "pre-wrap" }, m.content) : markdown(m.content || ""));
  const notes = [];
  if (m.pending) notes.push(h("span", { class: "typing", "aria-label": "Answer streaming in" }, "●●●"));
  if (m.stopped) notes.push(h("span", { class: "note" }, "Stopped."));
  if (m.error) notes.push(h("span", { class: "note error" }, m.error));
  if (m.usage && !m.pending) notes.push(h("span", { class: "muted small" }, usageText(m)));
  return h(
    "article",
    { class: `msg ${user ? "msg-user" : "msg-assistant"}`, "aria-busy": m.pending ? "true" : null },
    h("header", { class: "msg-head small" }, user ? "You" : m.personality ? `${m.personality} · ${m.model}` : m.model || "Assistant"),
    thoughts,
    steps,
    tools,
    content,
    notes.length ? h("div", { class: "msg-foot" }, notes) : null,
  );
}

function usageText(m) {
  const parts = [];
  if (m.usage && m.usage.completion_tokens !== undefined) parts.push(`${m.usage.completion_tokens} tokens`);
  const t = m.timings || {};
  const tokens = m.usage && m.usage.completion_tokens;
  if (typeof t.total_ms === "number") parts.push(`${(t.total_ms / 1000).toFixed(2)} s`);
  const streaming = t.total_ms - (t.first_token_ms ?? t.total_ms); // after the first token
  if (tokens > 1 && streaming > 0) parts.push(`${((tokens - 1) / (streaming / 1000)).toFixed(1)} tokens/s`);
  if (m.finish && m.finish !== "stop") parts.push(`finish: ${m.finish}`);
  return parts.join(" · ");
}

function welcome() {
  const p = personalities.find((x) => x.id === conv.settings.personality);
  if (!p) return h("p", { class: "muted empty" }, "Start the conversation below. Answers stream in; Stop ends the generation on the server.");
  return h(
    "div",
    { class: "welcome card" },
    h("strong", {}, p.name),
    p.description ? h("p", {}, p.description) : null,
    p.welcome_message ? h("div", { class: "markdown" }, markdown(p.welcome_message)) : null,
    p.disclaimer ? h("p", { class: "muted small" }, p.disclaimer) : null,
  );
}

function nearBottom(log) {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
}

function renderLog() {
  const log = byId("chat-log");
  const stick = nearBottom(log);
  live = null;
  const items = conv.messages.map((m) => {
    const el = messageElement(m);
    if (m.pending) live = { message: m, element: el };
    return el;
  });
  replace(log, conv.messages.length ? items : welcome());
  if (stick) log.scrollTop = log.scrollHeight;
}

function repaintLive() {
  frame = 0;
  if (!live || live.message.conversation !== conv.id) return;
  const log = byId("chat-log");
  const stick = nearBottom(log);
  const el = messageElement(live.message);
  live.element.replaceWith(el);
  live.element = el;
  if (stick) log.scrollTop = log.scrollHeight;
}

function schedule() {
  if (!frame) frame = requestAnimationFrame(repaintLive);
}

// -- sending -------------------------------------------------------------------------------
function requestBody(text) {
  const s = conv.settings;
  const history = conv.messages
    .filter((m) => m.content && !m.error && !m.pending)
    .map((m) => ({ type: "text", role: m.role, data: m.content }));
  const inputs = s.system ? [{ type: "text", role: "system", data: s.system }, ...history] : history;
  const parameters = {};
  if (s.temperature !== "" && s.temperature !== undefined) parameters.temperature = Number(s.temperature);
  if (s.max_tokens) parameters.max_tokens = Number(s.max_tokens);
  const body = { prompt: text, parameters };
  if (inputs.length) body.input_data = inputs;
  if (s.model) {
    const cut = s.model.indexOf("/");
    body.binding_name = s.model.slice(0, cut);
    body.model_name = s.model.slice(cut + 1);
  }
  if (s.personality) body.personality = s.personality;
  if (s.language) body.language = s.language;
  if (s.functions && s.functions.length) body.functions = s.functions;
  return body;
}

function onEvent(answer, event) {
  switch (event.type) {
    case "chunk":
      answer.content += event.content;
      break;
    case "thoughts":
      answer.thoughts += event.content;
      break;
    case "set_content":
      answer.content = event.content;
      break;
    case "step":
      addStep(answer, event);
      break;
    case "tool_call":
      answer.tools.push({ id: event.id, name: event.name, arguments: event.arguments, result: null });
      break;
    case "tool_result": {
      const tool = answer.tools.find((t) => t.id === event.id);
      const result = { content: event.content, ok: event.ok };
      if (tool) tool.result = result;
      else answer.tools.push({ id: event.id, name: event.name, arguments: "", result });
      break;
    }
    case "final":
      answer.usage = event.usage;
      answer.timings = event.timings;
      answer.model = `${event.binding_name}/${event.model_name}`;
      answer.finish = ((event.output || [])[0]?.metadata || {}).finish_reason;
      break;
    case "error":
      throw streamError(event);
    default:
      break;
  }
  schedule();
}

function addStep(answer, event) {
  const steps = answer.steps;
  if (event.kind === "step_end") {
    const open = [...steps].reverse().find((s) => s.kind === "step_start" && s.ok === undefined && s.text === event.text)
      || [...steps].reverse().find((s) => s.kind === "step_start" && s.ok === undefined);
    if (open) {
      open.ok = event.ok !== false;
      return;
    }
  }
  if (event.kind === "step_progress" && steps.length && steps[steps.length - 1].kind === "step_progress") {
    steps[steps.length - 1].text = event.text;
    return;
  }
  steps.push({ kind: event.kind, text: event.text, ...(event.kind === "step_start" ? {} : { ok: event.ok }) });
}

function setBusy(busy) {
  byId("chat-send").disabled = busy;
  byId("chat-stop").disabled = !busy;
}

async function send() {
  const input = byId("chat-input");
  const text = input.value.trim();
  if (!text || controller) return;
  byId("chat-error").textContent = "";
  const here = conv;
  const body = requestBody(text);
  here.messages.push({ role: "user", content: text, time: Date.now() });
  if (here.title === "New chat") here.title = text.replace(/\s+/g, " ").slice(0, 48);
  const answer = {
    role: "assistant", content: "", thoughts: "", steps: [], tools: [], pending: true,
    model: here.settings.model || "default", personality: here.settings.personality || null,
  };
  Object.defineProperty(answer, "conversation", { value: here.id, enumerable: false });
  here.messages.push(answer);
  input.value = "";
  store.save(here);
  renderAll();
  controller = new AbortController();
  streaming = here;
  setBusy(true);
  try {
    await stream("/api/v1/generate", body, (event) => onEvent(answer, event), controller.signal);
  } catch (err) {
    if (err && err.name === "AbortError") answer.stopped = true;
    else answer.error = explain(err);
  } finally {
    answer.pending = false;
    controller = null;
    streaming = null;
    setBusy(false);
    store.save(here);
    if (conv.id === here.id) {
      conv = here;
      renderAll();
    }
  }
}

function stop() {
  if (controller) controller.abort();
  toast("Stopped: the server cancels the generation.");
}
