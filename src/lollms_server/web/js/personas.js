// Personalities as the chat and the browser show them: a radio choice with logo, name,
// category and description. Logos come from the keyed API (fetched with the key, shown
// through blob: URLs), only once each and only when they scroll into view.

import { blobUrl } from "./api.js";
import { h } from "./dom.js";

const logos = new Map(); // personality id -> Promise of a blob: URL (or null: no logo)

/** The path of a personality's route: each part of its id encoded. */
export function personalityPath(id) {
  return `/api/v1/personalities/${id.split("/").map(encodeURIComponent).join("/")}`;
}

/** A blob: URL of the personality's logo (null when it has none or it fails). */
export function personalityLogo(p) {
  if (!p.has_logo) return Promise.resolve(null);
  if (!logos.has(p.id)) logos.set(p.id, blobUrl(`${personalityPath(p.id)}/logo`).catch(() => null));
  return logos.get(p.id);
}

const observer =
  "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => {
        for (const entry of entries) {
          if (!entry.isIntersecting) continue;
          observer.unobserve(entry.target);
          fillLogo(entry.target);
        }
      })
    : null;

const pending = new WeakMap(); // <img> -> personality

async function fillLogo(img) {
  const url = await personalityLogo(pending.get(img));
  if (url) img.src = url;
  else img.classList.add("no-logo");
}

/** An <img> for the personality's logo, filled when it becomes visible. */
export function logoImage(p, size = 40) {
  if (!p || !p.has_logo) {
    return h("span", { class: "logo no-logo", "aria-hidden": "true" }, p ? (p.name || "?").slice(0, 1).toUpperCase() : "∅");
  }
  const img = h("img", { class: "logo", alt: "", width: size, height: size, decoding: "async" });
  pending.set(img, p);
  if (observer) observer.observe(img);
  else fillLogo(img);
  return img;
}

/** A radio choice for `p` (null: "no personality"), calling onChoose(id) when picked. */
export function personalityOption(p, checked, onChoose) {
  const id = p ? p.id : "";
  const input = h("input", {
    type: "radio",
    name: "chat-personality",
    value: id,
    checked,
    onchange: () => onChoose(id),
  });
  const tags = p ? [p.category, p.scripted ? "scripted" : null].filter(Boolean) : [];
  return h(
    "label",
    { class: "persona-item", dataset: { personality: id || "none" } },
    input,
    logoImage(p),
    h(
      "span",
      { class: "persona-text" },
      h(
        "span",
        { class: "persona-name" },
        h("strong", {}, p ? p.name : "No personality"),
        tags.length ? h("span", { class: "muted small" }, ` · ${tags.join(" · ")}`) : null,
      ),
      h("span", { class: "persona-desc small" }, p ? p.description || "" : "The model as it is, with your system prompt only."),
    ),
  );
}
