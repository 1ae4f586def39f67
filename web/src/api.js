// The REST client: JSON in and out, the session's bearer token, and
// problem+json errors turned into ApiError with their fields.

const TOKEN = "lastmile.token";
const USER = "lastmile.user";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || "Something went wrong");
    this.status = status;
    this.problem = problem;
    this.fields = {};
    for (const e of problem.errors || []) this.fields[e.field] = e.message;
    this.retryAfter = problem.retryAfter;
  }
}

let onUnauthorized = () => {};

// session is the signed-in user and token kept in this browser, or null.
export function session() {
  const token = localStorage.getItem(TOKEN);
  const user = localStorage.getItem(USER);
  if (!token || !user) return null;
  try {
    return { token, user: JSON.parse(user) };
  } catch {
    return null;
  }
}

export function saveSession(token, user) {
  localStorage.setItem(TOKEN, token);
  localStorage.setItem(USER, JSON.stringify(user));
}

export function clearSession() {
  localStorage.removeItem(TOKEN);
  localStorage.removeItem(USER);
}

// whenUnauthorized sets what happens when the server no longer accepts
// the token (signed out elsewhere, expired).
export function whenUnauthorized(f) {
  onUnauthorized = f;
}

// uuid is a random v4 UUID (crypto.randomUUID needs a secure context).
export function uuid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

// api calls /api/v1 + path. Options: idempotencyKey (for creating POSTs),
// raw (a Blob body sent as is), quiet401 (a 401 is the caller's business).
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: "application/json" };
  const s = session();
  if (s) headers.Authorization = "Bearer " + s.token;
  let payload;
  if (opts.raw) {
    payload = body;
    headers["Content-Type"] = "application/octet-stream";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  if (opts.idempotencyKey) headers["Idempotency-Key"] = opts.idempotencyKey;
  let res;
  try {
    res = await fetch("/api/v1" + path, { method, headers, body: payload, cache: "no-store" });
  } catch {
    throw new ApiError(0, { title: "Cannot reach LastMile", detail: "Cannot reach LastMile. Check your connection and try again." });
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    if (res.status === 401 && !opts.quiet401) onUnauthorized();
    const p = data && typeof data === "object" ? data : {};
    if (!p.detail && !p.title) p.title = res.statusText || "HTTP " + res.status;
    p.retryAfter = res.headers.get("Retry-After");
    throw new ApiError(res.status, p);
  }
  return data;
}

// all pages through a list endpoint and returns every item under key.
export async function all(path, key) {
  const out = [];
  let cursor = "";
  for (let i = 0; i < 50; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", `${path}${sep}limit=100${cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`);
    out.push(...(page[key] || []));
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return out;
}
