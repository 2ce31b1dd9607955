/* dropsearch dashboard: the API key (sessionStorage only), authenticated fetch, sign-in form, DOM helpers. */
"use strict";

const DS = (() => {
  const KEY = "dropsearch.apiKey";

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail || `HTTP ${status}`);
      this.status = status;
      this.detail = detail || `HTTP ${status}`;
    }
  }

  const getKey = () => sessionStorage.getItem(KEY);
  const setKey = (key) => sessionStorage.setItem(KEY, key);
  const clearKey = () => sessionStorage.removeItem(KEY);

  async function errorOf(response) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && typeof body.detail === "string") detail = body.detail;
    } catch (_) { /* not JSON */ }
    return new ApiError(response.status, detail);
  }

  /* fetch() an API route with the key as a Bearer token; a 401 forgets the key and shows the sign-in form. */
  async function request(path, options = {}) {
    const key = options.key || getKey();
    if (!key) {
      showSignIn();
      throw new ApiError(401, "no API key");
    }
    const headers = Object.assign({ Authorization: `Bearer ${key}` }, options.headers || {});
    const init = { method: options.method || "GET", headers, cache: "no-store", signal: options.signal };
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.json);
    }
    const response = await fetch(path, init);
    if (!response.ok) {
      const error = await errorOf(response);
      if (response.status === 401 && !options.key) {
        clearKey();
        showSignIn(`Signed out: ${error.detail}`);
      }
      throw error;
    }
    return response;
  }

  async function api(path, options = {}) {
    return (await request(path, options)).json();
  }

  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of [].concat(children)) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  const byId = (id) => document.getElementById(id);

  function fmt(value, digits = 4) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return String(value);
    return Number(value.toPrecision(digits)).toString();
  }

  function fmtDate(iso) {
    if (!iso) return "–";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  }

  let onSignedIn = null;

  function showSignIn(message) {
    byId("content").hidden = true;
    const notFound = byId("not-found");
    if (notFound) notFound.hidden = true;
    byId("sign-out").hidden = true;
    byId("signin").hidden = false;
    byId("signin-error").textContent = message || "";
    byId("api-key").focus();
  }

  /* Call ready() once a key is known: now, or after the sign-in form checked one against the API. */
  function start(ready) {
    onSignedIn = ready;
    byId("signin-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = byId("api-key");
      const key = input.value.trim();
      const error = byId("signin-error");
      if (!key) {
        error.textContent = "Enter an API key.";
        input.setAttribute("aria-invalid", "true");
        input.focus();
        return;
      }
      error.textContent = "";
      try {
        await request("/v1/searches?limit=1", { key });
      } catch (failure) {
        error.textContent = failure.status === 401 ? `Sign-in failed: ${failure.detail}` : failure.message;
        input.setAttribute("aria-invalid", "true");
        input.focus();
        return;
      }
      input.value = "";
      input.removeAttribute("aria-invalid");
      setKey(key);
      signedIn();
    });
    byId("sign-out").addEventListener("click", () => {
      clearKey();
      window.location.assign("/ui/");
    });
    if (getKey()) signedIn();
    else showSignIn();
  }

  function signedIn() {
    byId("signin").hidden = true;
    byId("sign-out").hidden = false;
    if (onSignedIn) onSignedIn();
  }

  return { ApiError, api, request, el, byId, fmt, fmtDate, getKey, clearKey, showSignIn, start };
})();
