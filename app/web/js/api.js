// One place that talks to the server: the licence key (sessionStorage only, never
// localStorage), JSON calls with X-License-Key, and the Socket.IO connection for task rooms.

const KEY = "sightline.key";
const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export async function call(method, path, body, { query, base = API } = {}) {
  const url = new URL(base + path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null) url.searchParams.set(name, value);
  }
  const headers = { "X-License-Key": key.get() || "" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, `The server cannot be reached (${err.message})`);
  }
  let data = null;
  try { data = await response.json(); } catch { /* not JSON: described below */ }
  if (!response.ok) {
    const message = (data && data.error) || `${response.status} ${response.statusText}`;
    if (response.status === 401) window.dispatchEvent(new CustomEvent("sightline:unauthorised", { detail: message }));
    throw new ApiError(response.status, message);
  }
  return data;
}

export const get = (path, query) => call("GET", path, undefined, { query });
export const post = (path, body) => call("POST", path, body);
export const put = (path, body) => call("PUT", path, body);
export const del = (path) => call("DELETE", path);
// The reframe pipeline's API (v2), same key.
export const v2 = {
  get: (path) => call("GET", path, undefined, { base: "/api/v2" }),
  post: (path, body) => call("POST", path, body, { base: "/api/v2" }),
};

// A URL a <video> or <img> element can load: it cannot send headers, so the key rides along
// as ?license_key= (the server accepts it there; it is never logged).
export function mediaUrl(path) {
  const url = new URL(`${API}/media/stream`, location.origin);
  url.searchParams.set("path", path);
  url.searchParams.set("license_key", key.get() || "");
  return url.pathname + url.search;
}

// Socket.IO: one connection; follow(taskId, onEvent) joins the task's room (again after every
// reconnect: the server then replays what was missed) and calls onEvent per progress event.
let socket = null;
const followers = new Map();

function connect() {
  if (socket) return socket;
  socket = window.io({ transports: ["websocket"] });
  socket.on("connect", () => { for (const taskId of followers.keys()) socket.emit("join", taskId); });
  socket.on("progress", (event) => {
    const handler = followers.get(event.task_id);
    if (handler) handler(event);
  });
  return socket;
}

// untilDone: false keeps following after a done event (a reframe room sees one per step).
export function follow(taskId, onEvent, { untilDone = true } = {}) {
  const sock = connect();
  followers.set(taskId, (event) => {
    onEvent(event);
    if (event.done && untilDone) unfollow(taskId);
  });
  if (sock.connected) sock.emit("join", taskId);
}

export function unfollow(taskId) {
  if (followers.delete(taskId) && socket && socket.connected) socket.emit("leave", taskId);
}

// Small DOM helpers shared by the sections.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function say(node, text, kind = "") {
  node.textContent = text;
  node.className = kind;
}

export function cacheDir() {
  const value = document.getElementById("cache-dir").value.trim();
  if (!value) throw new ApiError(0, "Set the Cache folder first");
  return value;
}

export function baseName(path) {
  return String(path).split(/[\\/]/).pop();
}

export function seconds(timestamp) {
  if (typeof timestamp === "number") return timestamp;
  return String(timestamp).split(":").reduce((total, part) => total * 60 + Number(part), 0);
}

export function clock(value) {
  const s = Math.max(0, Math.round(Number(value)));
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
}

// Analysis data must be loaded before searching; done once per cache folder until it changes.
const loaded = new Set();
export async function ensureLoaded(dir) {
  if (loaded.has(dir)) return;
  await post("/analysis-data/load", { cache_dir: dir });
  loaded.add(dir);
}
export function forgetLoaded() { loaded.clear(); }
