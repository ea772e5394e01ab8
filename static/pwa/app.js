/**
 * The PWA's shared module: the live view of the station over `/ws/live` (reconnecting with
 * backoff), the service worker where the page is a secure context, and small helpers for the
 * page modules (API calls with the CSRF token, messages, escaping).
 *
 * Every page works without a service worker, Cache Storage or WebCrypto: most clients open
 * the station over plain HTTP on a LAN address, where browsers withhold them.
 */

const MODES = ["online", "offline", "degraded", "unknown"];
const listeners = new Set();
let current = null;

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** Run `fn(snapshot)` on every snapshot the station pushes (and now, if one arrived). */
export function onSnapshot(fn) {
  listeners.add(fn);
  if (current) fn(current);
  return () => listeners.delete(fn);
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const scripts = new Map();

/**
 * Load a vendored classic script (a UMD bundle that sets `window[globalName]`) once; resolves
 * with that global. Script tags from this station pass the page's CSP (`script-src 'self'`).
 */
export function loadScript(url, globalName) {
  if (window[globalName]) return Promise.resolve(window[globalName]);
  if (!scripts.has(url)) {
    scripts.set(url, new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
      script.onload = () => resolve(window[globalName]);
      script.onerror = () => {
        scripts.delete(url);
        reject(new Error(`${url} could not be loaded`));
      };
      document.head.append(script);
    }));
  }
  return scripts.get(url);
}

export function showMessage(node, text, kind = "error") {
  node.textContent = text;
  node.className = `message ${kind}`;
  node.hidden = !text;
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

/**
 * Call the station's API. Resolves with {ok, status, data}; `data.error` / `data.detail` carry
 * the API's error code and message. Network failures resolve with status 0.
 */
export async function api(path, { method = "GET", json, body, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
  if (method !== "GET") init.headers["X-CSRFToken"] = cookie("csrftoken");
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    return { ok: false, status: 0, data: { error: "unreachable", detail: "The station did not answer. Check your connection to it and try again." } };
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = { error: "bad_response", detail: `The station answered ${response.status} without JSON.` };
  }
  return { ok: response.ok, status: response.status, data };
}

function setMode(mode) {
  const value = MODES.includes(mode) ? mode : "unknown";
  for (const node of $$(".mode, .pill[data-live='networkMode'], .big-mode")) {
    for (const m of MODES) node.classList.remove(`mode-${m}`);
    node.classList.add(`mode-${value}`);
  }
  document.documentElement.dataset.mode = value;
}

function applySnapshot(snap) {
  const values = {
    owner: snap.owner || "Unclaimed station",
    networkMode: snap.networkMode,
    networkDetail: snap.networkDetail || "",
    state: snap.state,
    version: snap.version,
    signalingClients: snap.signalingClients ?? 0,
    contentCount: snap.content ? snap.content.entryCount : "",
  };
  for (const node of $$("[data-live]")) {
    const key = node.dataset.live;
    if (key in values && node.textContent !== String(values[key])) node.textContent = values[key];
  }
  for (const node of $$(".pill[data-live='state']")) {
    node.className = node.className.replace(/\bstate-\S+/g, "").trim() + ` state-${snap.state}`;
  }
  setMode(snap.networkMode);
  document.documentElement.dataset.state = snap.state;
}

/** How long to wait before reconnect number `attempt` (from 0): exponential backoff with full
 * jitter, 0.5 s doubling to 30 s. */
export const reconnectDelay = (attempt) => Math.random() * Math.min(30000, 500 * 2 ** attempt);

function connectLive() {
  const banner = $("#connection");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let attempt = 0;
  let timer = null;
  const open = () => {
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/ws/live`);
    } catch {
      schedule();
      return;
    }
    ws.onopen = () => {
      attempt = 0;
      if (banner) banner.hidden = true;
      document.documentElement.dataset.live = "connected";
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type !== "SNAPSHOT") return;
      current = message.station;
      applySnapshot(current);
      for (const fn of listeners) {
        try {
          fn(current);
        } catch (err) {
          console.error("live view:", err);
        }
      }
    };
    ws.onclose = () => {
      document.documentElement.dataset.live = "disconnected";
      if (banner) {
        banner.textContent = "Live updates paused: the station cannot be reached. Reconnecting…";
        banner.hidden = false;
      }
      schedule();
    };
    ws.onerror = () => {};
  };
  const schedule = () => {
    clearTimeout(timer);
    const delay = reconnectDelay(attempt);
    attempt += 1;
    timer = setTimeout(open, delay);
  };
  open();
}

async function registerServiceWorker() {
  // Service workers exist only in secure contexts (localhost, HTTPS): elsewhere the page simply
  // works online, as every page must.
  if (!window.isSecureContext || !("serviceWorker" in navigator)) {
    document.documentElement.dataset.offline = "unavailable";
    return;
  }
  try {
    await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    await navigator.serviceWorker.ready;
    document.documentElement.dataset.offline = "ready";
  } catch (err) {
    document.documentElement.dataset.offline = "failed";
    console.warn("service worker not registered:", err);
  }
}

connectLive();
registerServiceWorker();
