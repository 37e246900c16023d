// Media studio: images, video, music and speech through POST /api/v1/generate, streamed so
// that the binding's step events show progress; results play in the page and download.

import { api, explain, stream, streamError } from "./api.js";
import { base64Blob, byId, h, replace } from "./dom.js";

const KINDS = {
  tti: { label: "image", prompt: "Prompt" },
  ttv: { label: "video", prompt: "Prompt" },
  ttm: { label: "music", prompt: "Prompt (style, instruments, mood)" },
  tts: { label: "speech", prompt: "Text to speak" },
};
const EXTENSIONS = { "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "audio/wav": "wav", "audio/x-wav": "wav", "video/mp4": "mp4" };

let wired = false;
let controller = null;
let models = {}; // generation type -> ["instance/model", ...]

/** The view is shown. */
export function show() {
  if (!wired) wire();
  loadModels();
}

/** The view is hidden (a running generation goes on; its result appears when back). */
export function hide() {}

function kind() {
  return byId("media-form").querySelector("input[name=media-kind]:checked").value;
}

function wire() {
  wired = true;
  const form = byId("media-form");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    generate();
  });
  for (const radio of form.querySelectorAll("input[name=media-kind]")) radio.addEventListener("change", onKind);
  byId("media-stop").addEventListener("click", () => controller && controller.abort());
  onKind();
}

function onKind() {
  const k = kind();
  for (const field of byId("media-form").querySelectorAll("[data-kinds]")) {
    field.hidden = !field.dataset.kinds.split(" ").includes(k);
  }
  byId("media-prompt-label").textContent = KINDS[k].prompt;
  fillModels();
}

async function loadModels() {
  try {
    const listing = await api("/api/v1/list_models");
    models = {};
    for (const [instance, list] of Object.entries(listing.models)) {
      for (const m of list) for (const t of m.modalities) (models[t] ||= []).push(`${instance}/${m.name}`);
    }
  } catch (err) {
    byId("media-error").textContent = explain(err);
  }
  fillModels();
}

function fillModels() {
  const select = byId("media-model");
  const chosen = select.value;
  const list = models[kind()] || [];
  replace(select, h("option", { value: "" }, "Server default"), list.map((id) => h("option", { value: id }, id)));
  if (list.includes(chosen)) select.value = chosen;
}

function number(id) {
  const field = byId(id);
  return field.closest("[data-kinds]").hidden || field.value === "" ? undefined : Number(field.value);
}

function text(id) {
  const field = byId(id);
  return field.closest("[data-kinds]").hidden ? "" : field.value.trim();
}

async function imageInput() {
  const field = byId("media-image");
  const file = field.closest("[data-kinds]").hidden ? null : field.files[0];
  if (!file) return null;
  const data = await new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
  return { type: "image", role: "user", data, mime_type: file.type || null };
}

async function requestBody() {
  const k = kind();
  const p = {
    width: number("media-width"),
    height: number("media-height"),
    steps: number("media-steps"),
    guidance: number("media-guidance"),
    seed: number("media-seed"),
    num_frames: number("media-frames"),
    fps: number("media-fps"),
    duration: number("media-duration"),
    speed: number("media-speed"),
    strength: number("media-strength"),
    negative_prompt: text("media-negative") || undefined,
  };
  const voice = text("media-voice");
  if (voice) {
    if (/^\d+$/.test(voice)) p.speaker = Number(voice);
    else p.voice = voice;
  }
  const parameters = Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined));
  const body = { prompt: byId("media-prompt").value, generation_type: k, parameters };
  const image = await imageInput();
  if (image) body.input_data = [image];
  const model = byId("media-model").value;
  if (model) {
    const cut = model.indexOf("/");
    body.binding_name = model.slice(0, cut);
    body.model_name = model.slice(cut + 1);
  }
  return body;
}

function progress(event) {
  const bar = byId("media-progress");
  const data = event.data || {};
  if (data.total) {
    bar.hidden = false;
    bar.max = data.total;
    bar.value = data.step || 0;
  }
  byId("media-status").textContent = event.text || "";
}

function setBusy(busy) {
  byId("media-generate").disabled = busy;
  byId("media-stop").disabled = !busy;
  const bar = byId("media-progress");
  bar.hidden = !busy;
  if (busy) bar.removeAttribute("value"); // indeterminate until the first step
}

function showResult(event, prompt) {
  const type = event.mime_type || "application/octet-stream";
  const blob = base64Blob(event.data, type);
  const url = URL.createObjectURL(blob);
  const media = event.kind || event.type;
  const name = `${media}-${Date.now()}.${EXTENSIONS[type] || "bin"}`;
  let player;
  if (type.startsWith("image/")) player = h("img", { src: url, alt: `Generated image: ${prompt}`, class: "result-media" });
  else if (type.startsWith("video/")) player = h("video", { src: url, controls: true, class: "result-media", "aria-label": `Generated video: ${prompt}` });
  else player = h("audio", { src: url, controls: true, "aria-label": `Generated audio: ${prompt}` });
  const meta = event.metadata || {};
  const details = [meta.width && meta.height ? `${meta.width}×${meta.height}` : null, meta.seed !== undefined ? `seed ${meta.seed}` : null, meta.duration_s ? `${Number(meta.duration_s).toFixed(1)} s` : null].filter(Boolean);
  const card = h(
    "figure",
    { class: "result card", dataset: { kind: media } },
    player,
    h(
      "figcaption",
      {},
      h("span", { class: "caption-text small" }, prompt.length > 80 ? `${prompt.slice(0, 80)}…` : prompt),
      details.length ? h("span", { class: "muted small" }, details.join(" · ")) : null,
      h("a", { href: url, download: name, class: "button small" }, `Download ${EXTENSIONS[type] || "file"}`),
    ),
  );
  byId("media-results").prepend(card);
}

async function generate() {
  if (controller) return;
  byId("media-error").textContent = "";
  const prompt = byId("media-prompt").value.trim();
  if (!prompt) {
    byId("media-error").textContent = "Write a prompt first.";
    return;
  }
  controller = new AbortController();
  setBusy(true);
  byId("media-status").textContent = `Generating ${KINDS[kind()].label}…`;
  let count = 0;
  try {
    const body = await requestBody();
    await stream("/api/v1/generate", body, (event) => {
      if (event.type === "step") progress(event);
      else if (event.type === "media") {
        count += 1;
        showResult(event, prompt);
      } else if (event.type === "error") throw streamError(event);
    }, controller.signal);
    byId("media-status").textContent = count ? `Done: ${count} result${count > 1 ? "s" : ""}.` : "Done, but the model returned nothing.";
  } catch (err) {
    byId("media-status").textContent = "";
    byId("media-error").textContent = explain(err);
  } finally {
    controller = null;
    setBusy(false);
  }
}
