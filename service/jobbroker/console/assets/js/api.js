// The broker's JSON API, called with the key the operator entered for this browser session.
// The key lives in sessionStorage (gone when the tab closes), goes only in the Authorization
// header, never in a URL or a cookie: with no ambient credential there is nothing to forge (CSRF).

const STORAGE = "jobbroker.apiKey";

export const session = {
  key: () => sessionStorage.getItem(STORAGE),
  remember: (key) => sessionStorage.setItem(STORAGE, key),
  forget: () => sessionStorage.removeItem(STORAGE),
};

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code;
  }

  // A 404 from a route this broker does not have (an older version), not a missing resource.
  get unavailable() {
    return this.status === 404 && (!this.code || this.code === "not_found");
  }
}

// Parse JSON keeping numbers exactly as sent: a payload's 123456789012345678901234567890 is shown
// as that, not as 1.2345678901234568e+29 (JSON.rawJSON where the browser has it).
function parseExact(text) {
  if (typeof JSON.rawJSON !== "function") return JSON.parse(text);
  // Only numbers a double cannot hold (a huge integer, 1e400) stay raw; they are for display.
  return JSON.parse(text, (key, value, context) => {
    if (typeof value !== "number" || !context) return value;
    const integer = /^-?\d+$/.test(context.source);
    if (!Number.isFinite(value) || (integer && !Number.isSafeInteger(value))) return JSON.rawJSON(context.source);
    return value;
  });
}

export async function api(method, path, { query, body } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json" };
  const key = session.key();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = parseExact(text);
    } catch {
      data = { detail: text.slice(0, 200) };
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    // The first call (whoami) handles its own 401; a later one means the key was revoked meanwhile.
    if (response.status === 401 && path !== "/v1/whoami") document.dispatchEvent(new CustomEvent("jobbroker:unauthorized"));
    throw error;
  }
  return data;
}

export const get = (path, query) => api("GET", path, { query });
export const post = (path, body) => api("POST", path, { body });
export const patch = (path, body) => api("PATCH", path, { body });

// What the key may do, asked once per page: GET /v1/whoami.
let identity = null;
export async function whoami() {
  if (identity === null) identity = await get("/v1/whoami");
  return identity;
}
export const isAdmin = (me) => me.scopes.includes("admin");

export const enc = encodeURIComponent;

// Which query parameters this broker's routes take, from its OpenAPI document: an older broker
// ignores an unknown parameter, and a filter it ignored would show unfiltered results as filtered.
let spec = null;
export async function parameters(path, method = "get") {
  if (spec === null) spec = fetch("/openapi.json", { credentials: "omit" }).then((r) => (r.ok ? r.json() : {}));
  const operation = (((await spec).paths || {})[path] || {})[method] || {};
  return new Set((operation.parameters || []).map((p) => p.name));
}
