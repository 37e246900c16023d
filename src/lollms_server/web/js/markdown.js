// A small, safe Markdown renderer. It never parses HTML: the model's text becomes DOM text
// nodes, so "<script>" in an answer shows as those characters. Supported: fenced code blocks
// (highlighted), inline code, headings, bold, italic, strike, lists, quotes, rules, links
// (http, https and mailto only; opened with rel="noopener noreferrer").

import { h } from "./dom.js";

const INLINE =
  /(`+)([\s\S]*?[^`])\1(?!`)|\*\*(\S(?:[\s\S]*?\S)?)\*\*|__(\S(?:[\s\S]*?\S)?)__|~~(\S(?:[\s\S]*?\S)?)~~|\*(\S(?:[\s\S]*?\S)?)\*|\b_(\S(?:[\s\S]*?\S)?)_\b|\[([^\]\n]+)\]\(([^)\s]+)\)|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/g;

/** A link's address when it is safe to follow (http, https, mailto), else null. */
export function safeHref(raw) {
  try {
    const url = new URL(raw, window.location.href);
    return ["http:", "https:", "mailto:"].includes(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

function link(text, href) {
  const safe = safeHref(href);
  if (!safe) return document.createTextNode(text);
  return h("a", { href: safe, target: "_blank", rel: "noopener noreferrer" }, text);
}

/** Inline Markdown of one block of text, as an array of nodes. */
export function inline(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
    if (m[1]) out.push(h("code", {}, m[2].replace(/^ (.*) $/, "$1")));
    else if (m[3] || m[4]) out.push(h("strong", {}, inline(m[3] || m[4])));
    else if (m[5]) out.push(h("del", {}, inline(m[5])));
    else if (m[6] || m[7]) out.push(h("em", {}, inline(m[6] || m[7])));
    else if (m[8]) out.push(link(m[8], m[9]));
    else if (m[10]) out.push(link(m[10], m[10]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

function withBreaks(lines) {
  const out = [];
  lines.forEach((line, i) => {
    if (i) out.push(h("br"));
    out.push(...inline(line));
  });
  return out;
}

// -- code highlighting: comments, strings, numbers and keywords, for any common language --
const KEYWORDS = new Set(
  (
    "and as assert async await break case catch class const continue def default del do elif " +
    "else enum export extends false final finally fn for from func function go if impl import " +
    "in interface is lambda let loop match mod mut new nil none not null or package pass " +
    "private pub public raise return self static struct super switch this throw true try type " +
    "typeof use var void while with yield True False None"
  ).split(" "),
);
const HASH_COMMENTS = new Set([
  "python", "py", "sh", "bash", "shell", "zsh", "yaml", "yml", "toml", "ruby", "rb", "perl",
  "r", "make", "makefile", "dockerfile", "ini", "conf", "",
]);

function tokenizer(lang) {
  const comment = HASH_COMMENTS.has(lang) ? "#[^\\n]*|\\/\\/[^\\n]*" : "\\/\\/[^\\n]*";
  return new RegExp(
    `(${comment}|\\/\\*[\\s\\S]*?\\*\\/)|("""[\\s\\S]*?"""|"(?:\\\\.|[^"\\\\\\n])*"|` +
      `'(?:\\\\.|[^'\\\\\\n])*'|\`(?:\\\\.|[^\`\\\\])*\`)|(\\b\\d[\\d_]*(?:\\.\\d+)?(?:e[+-]?\\d+)?\\b)|` +
      "([A-Za-z_][A-Za-z0-9_]*)",
    "g",
  );
}

/** Highlighted code, as nodes (spans with tok-* classes around text nodes). */
export function highlight(code, lang = "") {
  const out = [];
  let last = 0;
  for (const m of code.matchAll(tokenizer(lang.toLowerCase()))) {
    let cls = null;
    if (m[1]) cls = "tok-com";
    else if (m[2]) cls = "tok-str";
    else if (m[3]) cls = "tok-num";
    else if (m[4] && KEYWORDS.has(m[4])) cls = "tok-kw";
    if (!cls) continue;
    if (m.index > last) out.push(document.createTextNode(code.slice(last, m.index)));
    out.push(h("span", { class: cls }, m[0]));
    last = m.index + m[0].length;
  }
  if (last < code.length) out.push(document.createTextNode(code.slice(last)));
  return out;
}

function codeBlock(code, lang) {
  const copy = h("button", { type: "button", class: "copy small" }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(code);
      copy.textContent = "Copied";
    } catch {
      copy.textContent = "Copy failed";
    }
    setTimeout(() => {
      copy.textContent = "Copy";
    }, 1500);
  });
  const label = lang ? h("span", { class: "code-lang" }, lang) : null;
  return h(
    "div",
    { class: "code-block" },
    h("div", { class: "code-head" }, label, copy),
    h("pre", {}, h("code", { class: lang ? `lang-${lang}` : null }, highlight(code, lang))),
  );
}

const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;

function list(lines, start) {
  const ordered = /\d/.test(LIST_ITEM.exec(lines[start])[2]);
  const el = h(ordered ? "ol" : "ul");
  let i = start;
  while (i < lines.length) {
    const m = LIST_ITEM.exec(lines[i]);
    if (!m || /\d/.test(m[2]) !== ordered) break;
    if (ordered && el.children.length === 0) el.start = parseInt(m[2], 10);
    const item = [m[3]];
    i += 1;
    while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !LIST_ITEM.test(lines[i])) {
      item.push(lines[i].trim());
      i += 1;
    }
    el.append(h("li", {}, withBreaks(item)));
  }
  return [el, i];
}

function isBlockStart(line) {
  return /^(```|~~~|#{1,6}\s|>|\s*([-*_])(\s*\2){2,}\s*$)/.test(line) || LIST_ITEM.test(line);
}

/** Render Markdown text into a DocumentFragment. */
export function render(text) {
  const frag = document.createDocumentFragment();
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = /^\s*(```+|~~~+)\s*([\w+#.-]*)/.exec(line);
    if (fence) {
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i += 1; // the closing fence (absent while an answer still streams in)
      frag.append(codeBlock(body.join("\n"), fence[2]));
      continue;
    }
    const heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      frag.append(h(`h${Math.min(6, heading[1].length + 2)}`, {}, inline(heading[2])));
      i += 1;
      continue;
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      frag.append(h("hr"));
      i += 1;
      continue;
    }
    if (line.startsWith(">")) {
      const quoted = [];
      while (i < lines.length && lines[i].startsWith(">")) quoted.push(lines[i++].replace(/^> ?/, ""));
      frag.append(h("blockquote", {}, render(quoted.join("\n"))));
      continue;
    }
    if (LIST_ITEM.test(line)) {
      const [el, next] = list(lines, i);
      frag.append(el);
      i = next;
      continue;
    }
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && (para.length === 0 || !isBlockStart(lines[i]))) {
      para.push(lines[i++]);
    }
    frag.append(h("p", {}, withBreaks(para)));
  }
  return frag;
}
