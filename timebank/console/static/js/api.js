// The console's client of /api/v1: the same tokens and problems as the mini-program.
//
// The session lives in sessionStorage: it ends with the tab, which suits shared phones and the
// community centre's PC. The access token is refreshed quietly shortly before it expires, and once
// more when a request meets a 401; concurrent callers share one refresh, because a refresh token
// is spent on use and presenting a spent one ends the whole login.

const API = "/api/v1";
const STORE = "timebank.console.session";

export class Problem extends Error {
  constructor(body, status) {
    super(body.title || `请求失败（${status}）`);
    this.status = status;
    this.body = body;
    this.slug = (body.type || "").split("/").pop();
  }
}

const NETWORK = { type: "/problems/network", title: "网络连接失败", detail: "" };

let state = read();
/** Why the session ended on its own (a refused refresh), shown on the sign-in page. */
export let endedBy = null;
let timer = null;
let refreshing = null;
const listeners = new Set();

function read() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE)) || null;
  } catch {
    return null;
  }
}

function write(next) {
  state = next;
  if (next) sessionStorage.setItem(STORE, JSON.stringify(next));
  else sessionStorage.removeItem(STORE);
  schedule();
  for (const listener of listeners) listener(state);
}

/** The signed-in session ({access, refresh, expiresAt, lifetime, acting}) or null. */
export const session = () => state;

/** Calls `listener(session)` whenever the session changes; returns the unsubscribe function. */
export function onSession(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function withTokens(base, pair) {
  const lifetime = pair.expires_in * 1000;
  return {
    ...base,
    access: pair.access_token,
    refresh: pair.refresh_token,
    lifetime,
    expiresAt: Date.now() + lifetime,
  };
}

function schedule() {
  clearTimeout(timer);
  if (!state) return;
  // Ahead of expiry by a quarter of the lifetime, at most a minute: no request meets an expired token.
  const lead = Math.min(60_000, state.lifetime / 4);
  const wait = Math.max(state.expiresAt - lead - Date.now(), 1_000);
  timer = setTimeout(() => refresh().catch(() => {}), wait);
}

/** Rotates the tokens once, whoever asks; a refused refresh token ends the session. */
export function refresh() {
  refreshing ??= rotate().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function rotate() {
  const current = state;
  if (!current) throw new Problem({ title: "未登录", detail: "请先登录。" }, 401);
  let resp;
  try {
    resp = await fetch(`${API}/auth/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: current.refresh }),
    });
  } catch {
    timer = setTimeout(() => refresh().catch(() => {}), 10_000);
    throw new Problem(NETWORK, 0);
  }
  if (!resp.ok) {
    const problem = await problemOf(resp);
    if (resp.status === 401) {
      endedBy = problem;
      write(null);
    }
    throw problem;
  }
  write(withTokens(state, await resp.json()));
}

async function problemOf(resp) {
  const type = resp.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      return new Problem(await resp.json(), resp.status);
    } catch {
      /* a body that is not JSON after all: fall through */
    }
  }
  return new Problem({ title: `请求失败（${resp.status}）`, detail: "" }, resp.status);
}

function url(path, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") params.set(key, value);
  }
  const search = params.toString();
  return `${API}${path}${search ? `?${search}` : ""}`;
}

/** A key for one value-moving action; a retry of the same action reuses it (and is replayed). */
export function idempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "console-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * One API call. Options: `query`, `body` (JSON), `asSubject` (send X-Act-For while acting for
 * someone), `idempotencyKey`, `anonymous` (no token, no refresh), `raw` (return the Response).
 * Throws a Problem for every refusal; a lost connection is retried once when the call carries an
 * idempotency key (the API replays it rather than doing it twice).
 */
export async function request(method, path, options = {}) {
  const send = async () => {
    const headers = {};
    if (options.body !== undefined) headers["content-type"] = "application/json";
    if (state && !options.anonymous) headers.authorization = `Bearer ${state.access}`;
    if (options.asSubject && state?.acting) headers["x-act-for"] = state.acting.id;
    if (options.idempotencyKey) headers["idempotency-key"] = options.idempotencyKey;
    const init = { method, headers };
    if (options.body !== undefined) init.body = JSON.stringify(options.body);
    try {
      return await fetch(url(path, options.query), init);
    } catch {
      return null;
    }
  };
  let resp = await send();
  if (resp === null && options.idempotencyKey) resp = await send();
  if (resp === null) throw new Problem(NETWORK, 0);
  if (resp.status === 401 && state && !options.anonymous) {
    await refresh();
    resp = await send();
    if (resp === null) throw new Problem(NETWORK, 0);
  }
  if (!resp.ok) throw await problemOf(resp);
  if (options.raw) return resp;
  if (resp.status === 204) return null;
  return resp.json();
}

export const get = (path, options) => request("GET", path, options);
export const post = (path, body, options = {}) => request("POST", path, { ...options, body });

/** Signs in and starts the session. */
export async function signIn(phone, password, kind) {
  const pair = await post("/auth/login", { phone, password, kind }, { anonymous: true });
  endedBy = null;
  write(withTokens({ kind, acting: null }, pair));
}

/** Ends the login on the server (its refresh token) and forgets everything in this tab. */
export async function signOut() {
  const current = state;
  write(null);
  if (!current) return;
  try {
    await fetch(`${API}/auth/logout`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${current.access}` },
      body: JSON.stringify({ refresh_token: current.refresh }),
    });
  } catch {
    /* the tab forgot the tokens already; the refresh token expires on its own */
  }
}

/** Acts for `person` ({id, name}) on the routes that allow it, or stops when null. */
export function actFor(person) {
  if (state) write({ ...state, acting: person });
}

/**
 * Downloads a file the API sends (an export, a certificate PDF) with the session's token,
 * reporting `progress(received, total|null)` while it arrives.
 */
export async function download(path, query, fallbackName, progress = () => {}) {
  const resp = await request("GET", path, { query, raw: true });
  const total = Number(resp.headers.get("content-length")) || null;
  const reader = resp.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    progress(received, total);
  }
  const blob = new Blob(chunks, { type: resp.headers.get("content-type") || "" });
  const name = fileName(resp.headers.get("content-disposition")) || fallbackName;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  return { name, size: received };
}

function fileName(disposition) {
  if (!disposition) return null;
  const star = /filename\*=UTF-8''([^;]+)/i.exec(disposition);
  if (star) return decodeURIComponent(star[1]);
  const plain = /filename="?([^";]+)"?/i.exec(disposition);
  return plain ? plain[1] : null;
}

schedule();
