// Small DOM helpers. Text always goes in as text nodes: nothing here parses HTML.

/**
 * Create an element: h("a", {href: "#", class: "x", onclick: fn}, "text", child).
 * Attributes starting with "on" become listeners; null/false ones are left out;
 * `true` gives an empty attribute. Children may be strings, nodes, arrays or null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name in el && typeof value !== "string") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append strings (as text), nodes and nested arrays to `el`. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** The element with this id (throws when missing: a broken page should say so). */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el;
}

/** Bytes in words: 1.5 GiB. */
export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(bytes);
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** Seconds in words: 4.2 s, 3 min, 1.5 h. */
export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 0) return "forever";
  if (seconds < 60) return `${Number(seconds).toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(0)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** A memory bar: a <div role="meter"> whose fill width is set through the CSSOM (CSP-safe). */
export function meter(used, total, label) {
  const ratio = total > 0 ? Math.min(1, Math.max(0, used / total)) : 0;
  const fill = h("div", { class: "meter-fill" });
  fill.style.width = `${(ratio * 100).toFixed(1)}%`;
  if (ratio > 0.9) fill.classList.add("high");
  return h(
    "div",
    {
      class: "meter",
      role: "meter",
      "aria-label": label,
      "aria-valuemin": "0",
      "aria-valuemax": String(total),
      "aria-valuenow": String(used),
      "aria-valuetext": `${formatBytes(used)} of ${formatBytes(total)}`,
    },
    fill,
  );
}

let toastTimer = 0;

/** A short message in the polite live region at the bottom of the page. */
export function toast(message, kind = "info") {
  const box = byId("toast");
  replace(box, h("div", { class: `toast-body ${kind}` }, message));
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    box.hidden = true;
  }, kind === "error" ? 8000 : 3500);
}

/** Save a Blob under `name` through a temporary link. */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A Blob from base64 data. */
export function base64Blob(data, type) {
  const raw = atob(data);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i);
  return new Blob([bytes], { type });
}
