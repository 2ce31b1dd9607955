// Swagger UI for /openapi.json, from the copy of swagger-ui-dist served by this app (no CDN, no inline script).
// "Authorize" takes an API key (the HTTPBearer scheme); "Try it out" then sends it as Authorization: Bearer.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.ui = window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null, // never ask validator.swagger.io
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
