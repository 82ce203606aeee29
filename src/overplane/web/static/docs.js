// Starts Swagger UI on /docs. It lives in a file of its own, not inline in the page, so that
// the page's Content-Security-Policy can refuse every inline script.
"use strict";

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  // Keep the secret key in memory only: persisting it would leave it in localStorage, readable
  // by any script of this origin long after the tab is closed.
  persistAuthorization: false,
  // Never send the document to an outside validator (the default would), nor show its badge.
  validatorUrl: null,
  deepLinking: true,
});
