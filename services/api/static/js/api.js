// Talking to the lookalike API, building DOM nodes, and telling the user what happened.
import { withKey } from "./auth.js";

export class ApiError extends Error {}

/** Fetch JSON from the API; a non-2xx answer becomes an ApiError carrying its detail. */
export async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: withKey(path, options.headers) });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      detail = body.detail || body.error || detail;
    } catch (_) { /* the body was not JSON: keep the status text */ }
    throw new ApiError(`${response.status}: ${detail}`);
  }
  return response.status === 204 ? null : response.json();
}

/** An element with attributes (on* keys become listeners) and children (strings or nodes). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

const statusLine = () => document.getElementById("status");

/** Show a short message in the live region (read out by screen readers). */
export function say(message) {
  statusLine().classList.remove("error");
  statusLine().textContent = message;
}

/** Show an error in the live region. */
export function complain(error) {
  statusLine().classList.add("error");
  statusLine().textContent = error instanceof Error ? error.message : String(error);
}

/** Run an async action, reporting its failure instead of losing it. */
export function guarded(action) {
  return (...args) => action(...args).catch(complain);
}
