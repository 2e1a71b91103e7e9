/* Shows any script error on the page itself (and marks <html data-errors=N> for tests). */
window.gpubenchErrors = [];
window.gpubenchReport = function (msg) {
  window.gpubenchErrors.push(String(msg));
  if (window.console) { console.error("gpubench report: " + msg); }
  var el = document.getElementById("gpubench-errors");
  if (el) { el.textContent = "Report error: " + window.gpubenchErrors.join("\n"); }
  document.documentElement.setAttribute("data-errors", String(window.gpubenchErrors.length));
};
window.addEventListener("error", function (e) { window.gpubenchReport(e.message || e); });
window.addEventListener("unhandledrejection", function (e) { window.gpubenchReport("unhandled rejection: " + e.reason); });
document.addEventListener("securitypolicyviolation", function (e) {
  window.gpubenchReport("blocked by the page's security policy: " + e.blockedURI + " (" + e.violatedDirective + ")");
});
