// The API client: every call carries the signed-in key as a bearer token, and every refusal becomes an
// ApiError holding the API's own answer ({"error": {"code", "message", "details"}}), so that pages can
// show it in the API's words.

import { currentKey } from "./session.js";

// Everything before "/console/": the API's root, wherever a Serve route_prefix put the application.
const apiBase = location.pathname.slice(0, location.pathname.indexOf("/console/"));
export const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + apiBase;

class ApiError extends Error {
  constructor(status, error, retryAfter) {
    super(error.message);
    this.status = status;
    this.code = error.code;
    this.details = error.details;
    this.retryAfter = retryAfter;
  }

  // Validation errors list one entry per bad field ({field, message, type}); other codes hold an object.
  get fieldErrors() {
    return Array.isArray(this.details) ? this.details.filter((d) => d && d.field !== undefined) : [];
  }
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? "?" + text : "";
}

export async function request(method, path, { params, body, key = currentKey() } = {}) {
  const headers = { Authorization: "Bearer " + key, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(apiBase + path + query(params), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
    });
  } catch (cause) {
    // No answer at all: there are no API words to show, only where it was asked.
    throw new ApiError(0, { code: "unreachable", message: `the API at ${apiBase || "/"} did not answer (${cause.message})` });
  }
  const text = await response.text();
  let payload = null;
  try { payload = text ? JSON.parse(text) : null; } catch { payload = null; }
  if (!response.ok) {
    const error = payload && payload.error && typeof payload.error.message === "string"
      ? payload.error
      : { code: `http_${response.status}`, message: text.trim() || response.statusText || `HTTP ${response.status}` };
    const refusal = new ApiError(response.status, error, response.headers.get("Retry-After"));
    // The session's key stopped working (revoked, or the system was reset): the console signs out.
    if (response.status === 401 && key === currentKey()) window.dispatchEvent(new CustomEvent("mas:unauthenticated", { detail: refusal }));
    throw refusal;
  }
  return payload;
}

export const get = (path, params) => request("GET", path, { params });
export const post = (path, body, params) => request("POST", path, { body, params });
export const del = (path) => request("DELETE", path);
