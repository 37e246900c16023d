// The one way the page talks to the server: the keyed API, with the key from session storage.
// The key is sent as "Authorization: Bearer" and nowhere else (never in a URL, never a cookie).

const KEY_NAME = "lollms_server.api_key";

/** An API failure, in plain words (`message`), with the server's error type and status. */
export class ApiError extends Error {
  constructor(status, type, message, param = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
    this.param = param;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY_NAME);
}

export function setKey(key) {
  sessionStorage.setItem(KEY_NAME, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY_NAME);
}

const listeners = new Set();

/** Called with the ApiError whenever the server refuses the key (401). */
export function onUnauthorized(callback) {
  listeners.add(callback);
}

function headers(extra = {}, key = getKey()) {
  const out = { ...extra };
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

const PLAIN = {
  401: "The server refused the API key. Check it and sign in again.",
  404: "The server does not know this item.",
  413: "The request is too large for the server's limit.",
  429: "Too many requests; wait a moment and retry.",
  503: "The server is busy or the backend is unavailable; retry in a moment.",
};

/** Turn a failed response into an ApiError carrying the server's own message. */
async function failure(response) {
  let type = "http_error";
  let message = "";
  let param = null;
  try {
    const body = await response.json();
    const error = body && body.error;
    if (error && typeof error === "object") {
      type = error.type || type;
      message = error.message || "";
      param = error.param || null;
    } else if (typeof error === "string") {
      message = error;
    }
  } catch {
    // not JSON: keep the plain-words message below
  }
  const plain = PLAIN[response.status] || `The server answered ${response.status}.`;
  const text = response.status === 401 ? plain : message || plain;
  const err = new ApiError(response.status, type, text, param);
  if (response.status === 401) for (const callback of listeners) callback(err);
  return err;
}

function networkError(error) {
  if (error && error.name === "AbortError") return error;
  return new ApiError(0, "network_error", "Cannot reach the server. Is it running?");
}

/**
 * Call the API and return its JSON. `options.body` (an object) is sent as JSON;
 * `options.key` checks a key that is not stored yet (sign-in).
 */
export async function api(path, options = {}) {
  const init = {
    method: options.method || (options.body === undefined ? "GET" : "POST"),
    headers: headers(
      options.body === undefined ? {} : { "Content-Type": "application/json" },
      options.key,
    ),
    signal: options.signal,
    cache: "no-store",
  };
  if (options.body !== undefined) init.body = JSON.stringify(options.body);
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw networkError(error);
  }
  if (!response.ok) throw await failure(response);
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** Fetch an image (or any file) with the key, as a blob: URL the page may show. */
export async function blobUrl(path, signal) {
  let response;
  try {
    response = await fetch(path, { headers: headers(), signal });
  } catch (error) {
    throw networkError(error);
  }
  if (!response.ok) throw await failure(response);
  return URL.createObjectURL(await response.blob());
}

/**
 * POST `body` with "stream": true and call `onEvent` with each Server-Sent Event's JSON.
 * fetch + ReadableStream rather than EventSource, which cannot send the key header.
 * Aborting `signal` closes the connection: the server then cancels the generation.
 */
export async function stream(path, body, onEvent, signal) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify({ ...body, stream: true }),
      signal,
      cache: "no-store",
    });
  } catch (error) {
    throw networkError(error);
  }
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      dispatch(buffer.slice(0, end), onEvent);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf("\n\n");
    }
  }
  if (buffer.trim()) dispatch(buffer, onEvent);
}

function dispatch(block, onEvent) {
  const data = block
    .split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).replace(/^ /, ""))
    .join("\n");
  if (!data || data === "[DONE]") return; // ": ping" comments carry no data
  onEvent(JSON.parse(data));
}

/** An error event of a stream, as an ApiError. */
export function streamError(event) {
  const error = event.error || {};
  return new ApiError(200, error.type || "error", error.message || "The generation failed.");
}

/** Describe any error for a person. */
export function explain(error) {
  if (error instanceof ApiError) return error.message;
  if (error && error.name === "AbortError") return "Stopped.";
  return `Unexpected error: ${error && error.message ? error.message : error}`;
}
