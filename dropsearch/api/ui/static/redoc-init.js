// ReDoc for /openapi.json, from the copy of redoc served by this app (no CDN, no web fonts, no search worker).
// Its styles carry the page's CSP nonce (given in the container's data-nonce).
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("redoc");
  window.Redoc.init("/openapi.json", { disableSearch: true, nonce: root.dataset.nonce }, root);
});
