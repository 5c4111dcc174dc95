// The console's only way to the API: same origin, the bearer token from sessionStorage, and
// every error turned into an ApiError whose messages name their field, as the server wrote them.

const TOKEN_KEY = "triggerline.console.token";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** A refused or failed call. `messages` are `{field, text}`; `field` is null when none is named. */
export class ApiError extends Error {
  constructor(status, messages, trackingId = null) {
    super(messages.map((m) => m.text).join("; "));
    this.status = status;
    this.messages = messages;
    this.trackingId = trackingId;
  }

  /** The messages naming `field` or a field below it (`httpConfig` takes `httpConfig.url`). */
  forField(field) {
    return this.messages.filter((m) => m.field === field || m.field?.startsWith(`${field}.`));
  }
}

// "httpConfig.url: `ftp://x` must be ..." names `httpConfig.url`; "filters: ..." names `filters`.
const FIELD = /^([A-Za-z_][A-Za-z0-9_]*(?:(?:\.[A-Za-z_][A-Za-z0-9_]*)|\[\d+\])*): (.+)$/s;

export function splitField(text) {
  const match = FIELD.exec(text ?? "");
  return match ? { field: match[1], text: match[2] } : { field: null, text: text ?? "" };
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // A body that is not JSON still gets a message below.
  }
  if (body && Array.isArray(body.messages)) {
    const messages = body.messages.map((m) => {
      const { field, text } = splitField(m.text);
      return { field, text, full: m.text };
    });
    return new ApiError(response.status, messages, body.trackingId ?? null);
  }
  const text = body?.error ?? body?.message ?? `${response.status} ${response.statusText}`;
  return new ApiError(response.status, [{ field: null, text, full: text }]);
}

/** Listeners told when the token is refused (the app shows the sign-in again). */
const refused = new Set();
export function onUnauthorized(listener) {
  refused.add(listener);
}

/**
 * Calls the API. `query` values that are null or empty are left out. Answers
 * `{status, data, headers}`; throws ApiError for every non-2xx and for a server that did not answer.
 */
export async function call(method, path, { query, body, contentType, signal, tokenOverride } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, String(value));
  }
  const headers = { Accept: "application/json" };
  const bearer = tokenOverride ?? token.get();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = contentType ?? "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, [{ field: null, text: "Triggerline did not answer. Is the server still running?", full: "" }]);
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401 && !tokenOverride) refused.forEach((listener) => listener(error));
    throw error;
  }
  const data = response.status === 204 ? null : await response.json();
  return { status: response.status, data, headers: response.headers };
}

/** A SailPoint filter expression: `name eq "value"`, quotes in the value escaped. */
export function eq(name, value) {
  return `${name} eq "${String(value).replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

let catalog = null;
/** The trigger catalog, fetched once per page load (it is fixed for a running server). */
export async function triggers() {
  if (!catalog) {
    catalog = call("GET", "/triggers/v1", { query: { sorters: "name" } })
      .then((r) => r.data)
      .catch((error) => {
        catalog = null;
        throw error;
      });
  }
  return catalog;
}

export async function trigger(id) {
  return (await triggers()).find((t) => t.id === id) ?? null;
}

export const OPEN_STATES = new Set(["PENDING", "ACKNOWLEDGED"]);
