// Browsers: models (type, context, size, loaded), personalities (with their details),
// functions (their JSON schemas) and binding types (settings with defaults).

import { api, explain } from "./api.js";
import { byId, formatBytes, h, replace } from "./dom.js";
import { render as markdown } from "./markdown.js";
import { logoImage, personalityPath } from "./personas.js";

const TABS = { models: showModels, personalities: showPersonalities, functions: showFunctions, bindings: showBindings };
let wired = false;
let tab = "models";

/** The view is shown. */
export function show() {
  if (!wired) wire();
  select(tab);
}

export function hide() {}

function wire() {
  wired = true;
  const tabs = [...document.querySelectorAll("#view-browse [role=tab]")];
  for (const button of tabs) {
    button.addEventListener("click", () => select(button.dataset.tab));
    button.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      const next = tabs[(tabs.indexOf(button) + step + tabs.length) % tabs.length];
      next.focus();
      select(next.dataset.tab);
    });
  }
}

async function select(name) {
  tab = name;
  for (const button of document.querySelectorAll("#view-browse [role=tab]")) {
    const on = button.dataset.tab === name;
    button.setAttribute("aria-selected", String(on));
    button.tabIndex = on ? 0 : -1;
  }
  const panel = byId("browse-panel");
  panel.setAttribute("aria-labelledby", `tab-${name}`);
  replace(panel, h("p", { class: "muted" }, "Loading…"));
  try {
    const content = await TABS[name]();
    if (tab === name) replace(panel, content);
  } catch (err) {
    if (tab === name) replace(panel, h("p", { class: "error" }, explain(err)));
  }
}

function table(head, rows, caption) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table" },
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows),
    ),
  );
}

function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

async function showModels() {
  const { models, errors } = await api("/api/v1/list_models");
  const rows = [];
  for (const [instance, list] of Object.entries(models)) {
    for (const m of list) {
      rows.push(
        h(
          "tr",
          {},
          h("th", { scope: "row" }, `${instance}/${m.name}`),
          h("td", {}, m.modalities.join(", ")),
          h("td", {}, m.context_size ? m.context_size.toLocaleString() : "—"),
          h("td", {}, formatBytes(m.size_bytes)),
          h("td", {}, m.loaded ? h("span", { class: "badge loaded" }, "loaded") : "no"),
        ),
      );
    }
  }
  const problems = Object.entries(errors || {}).map(([i, msg]) => h("li", {}, h("strong", {}, i), `: ${msg}`));
  return [
    rows.length ? table(["Model", "Types", "Context", "Size", "Loaded"], rows, "Models") : h("p", { class: "muted" }, "No models found."),
    problems.length ? [h("h2", {}, "Instances that failed"), h("ul", { class: "problems" }, problems)] : null,
  ];
}

async function showPersonalities() {
  const { personalities, errors } = await api("/api/v1/list_personalities");
  const detail = h("div", { class: "persona-detail card", "aria-live": "polite" }, h("p", { class: "muted" }, "Pick a personality to see its details."));
  const items = personalities.map((p) =>
    h(
      "li",
      {},
      h(
        "button",
        { type: "button", class: "persona-row", onclick: () => showPersonality(p, detail) },
        logoImage(p, 32),
        h("span", {}, h("strong", {}, p.name), h("span", { class: "muted small" }, p.id)),
      ),
    ),
  );
  return [
    h("div", { class: "split" }, h("ul", { class: "persona-index" }, items), detail),
    errors.length ? [h("h2", {}, "Folders that failed to load"), h("ul", { class: "problems" }, errors.map((e) => h("li", {}, h("strong", {}, e.folder), `: ${e.reason}`)))] : null,
  ];
}

async function showPersonality(p, box) {
  replace(box, h("p", { class: "muted" }, "Loading…"));
  try {
    const d = await api(personalityPath(p.id));
    const facts = [
      ["Id", d.id], ["Category", d.category], ["Author", d.author], ["Version", d.version],
      ["Format", d.format], ["Language", d.language], ["Languages", (d.languages || []).join(", ")],
      ["Script", d.scripted ? `${d.script_kind || "yes"}${d.script_available ? "" : " (not available)"}` : "no"],
      ["Stops", (d.anti_prompts || []).join(" | ")],
      ["Recommended", [d.recommended_binding, d.recommended_model].filter(Boolean).join(" / ")],
    ].filter(([, v]) => v);
    replace(
      box,
      h("div", { class: "persona-head" }, logoImage(p, 56), h("h2", {}, d.name)),
      d.description ? h("p", {}, d.description) : null,
      h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])),
      d.conditioning ? [h("h3", {}, "Conditioning"), h("pre", { class: "pre-wrap" }, d.conditioning)] : null,
      d.welcome_message ? [h("h3", {}, "Welcome message"), h("div", { class: "markdown" }, markdown(d.welcome_message))] : null,
      Object.keys(d.sampling || {}).length ? [h("h3", {}, "Sampling defaults"), json(d.sampling)] : null,
      (d.warnings || []).length ? [h("h3", {}, "Warnings"), h("ul", {}, d.warnings.map((w) => h("li", {}, w)))] : null,
      Object.keys(d.extra || {}).length ? [h("h3", {}, "Other settings"), json(d.extra)] : null,
    );
  } catch (err) {
    replace(box, h("p", { class: "error" }, explain(err)));
  }
}

async function showFunctions() {
  const { functions, errors } = await api("/api/v1/list_functions");
  const cards = functions.map((f) =>
    h(
      "details",
      { class: "card fn" },
      h("summary", {}, h("strong", {}, f.name), f.description ? h("span", { class: "muted small" }, ` — ${f.description.split("\n")[0]}`) : null),
      f.description ? h("p", { class: "pre-wrap" }, f.description) : null,
      h("h3", {}, "JSON schema"),
      json(f.parameters || f.schema || f),
    ),
  );
  return [
    cards.length ? cards : h("p", { class: "muted" }, "No functions are configured ([paths] functions)."),
    errors.length ? [h("h2", {}, "Modules that failed"), h("ul", { class: "problems" }, errors.map((e) => h("li", {}, h("strong", {}, e.module), `: ${e.reason}`)))] : null,
  ];
}

function settingsTable(schema) {
  const props = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const rows = Object.entries(props).map(([name, s]) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, h("code", {}, name), required.has(name) ? " (required)" : ""),
      h("td", {}, schemaType(s)),
      h("td", {}, s.default === undefined ? "—" : h("code", {}, JSON.stringify(s.default))),
      h("td", {}, s.description || ""),
    ),
  );
  return rows.length ? table(["Setting", "Type", "Default", "Meaning"], rows, "Settings") : h("p", { class: "muted" }, "No settings.");
}

function schemaType(s) {
  if (s.type) return Array.isArray(s.type) ? s.type.join(" | ") : s.type;
  const options = s.anyOf || s.oneOf;
  if (options) return options.map((o) => o.type || (o.$ref ? o.$ref.split("/").pop() : "?")).join(" | ");
  if (s.enum) return s.enum.join(" | ");
  return s.$ref ? s.$ref.split("/").pop() : "any";
}

async function showBindings() {
  const { bindings } = await api("/api/v1/list_bindings");
  return bindings.map((b) =>
    h(
      "details",
      { class: "card binding" },
      h(
        "summary",
        {},
        h("strong", {}, b.type),
        " ",
        h("span", { class: `badge ${b.status === "ok" ? "loaded" : "error"}` }, b.status === "ok" ? (b.modalities || []).join(", ") : "import failed"),
        h("span", { class: "muted small" }, ` ${b.description || b.error || ""}`),
      ),
      h("p", { class: "muted small" }, `Source: ${b.source}`),
      b.status === "ok"
        ? [
            h("p", { class: "small" }, "Capabilities: ", Object.entries(b.capabilities).filter(([, v]) => v).map(([k]) => k).join(", ") || "none"),
            settingsTable(b.config_schema),
          ]
        : h("p", { class: "error" }, b.error),
    ),
  );
}
