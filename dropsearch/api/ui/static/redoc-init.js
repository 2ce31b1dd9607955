// ReDoc for /openapi.json, from the copy of redoc served by this app (no CDN, no web fonts, no search worker).
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.Redoc.init("/openapi.json", { disableSearch: true, hideDownloadButton: false }, document.getElementById("redoc"));
});
