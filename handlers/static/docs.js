// Starts Swagger UI on the broker's own OpenAPI document. A file, not an inline script, so the page's
// Content-Security-Policy can allow scripts from the app alone.
window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
