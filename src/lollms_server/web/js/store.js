// Conversations, kept in this browser's local storage only (the server keeps none).
// A conversation: {id, title, created, updated, settings, messages: [{role, content, ...}]}.

const KEY = "lollms_server.conversations";

function readAll() {
  try {
    const data = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(data) ? data : [];
  } catch {
    return [];
  }
}

function writeAll(conversations) {
  try {
    localStorage.setItem(KEY, JSON.stringify(conversations));
    return true;
  } catch {
    return false; // storage full or disabled: the conversation lives on in this tab
  }
}

/** Every conversation, most recently updated first. */
export function list() {
  return readAll().sort((a, b) => (b.updated || 0) - (a.updated || 0));
}

export function get(id) {
  return readAll().find((c) => c.id === id) || null;
}

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A new, empty conversation (saved). */
export function create(settings = {}) {
  const now = Date.now();
  const conversation = { id: newId(), title: "New chat", created: now, updated: now, settings, messages: [] };
  save(conversation);
  return conversation;
}

/** Store `conversation` (replacing the one with its id). False when storage refused it. */
export function save(conversation) {
  conversation.updated = Date.now();
  const all = readAll().filter((c) => c.id !== conversation.id);
  all.push(conversation);
  return writeAll(all);
}

export function remove(id) {
  writeAll(readAll().filter((c) => c.id !== id));
}

/** The conversation as Markdown: a title, then one section per message. */
export function toMarkdown(conversation) {
  const parts = [`# ${conversation.title}`, ""];
  const settings = conversation.settings || {};
  if (settings.model) parts.push(`Model: ${settings.model}  `);
  if (settings.personality) parts.push(`Personality: ${settings.personality}  `);
  if (settings.system) parts.push("", "**System prompt**", "", settings.system);
  for (const message of conversation.messages) {
    parts.push("", `## ${message.role === "user" ? "User" : "Assistant"}`, "");
    if (message.thoughts) parts.push("<details><summary>Thoughts</summary>", "", message.thoughts, "", "</details>", "");
    parts.push(message.content || "");
  }
  return `${parts.join("\n")}\n`;
}

/** A file name made from the conversation's title. */
export function fileName(conversation, extension) {
  const base = conversation.title.replace(/[^\w .-]+/g, "").trim().replace(/\s+/g, "_") || "chat";
  return `${base.slice(0, 60)}.${extension}`;
}
