// Each person's colour. The server sends it as data-hue (presence lists, on every page
// that has one) because the Content-Security-Policy blocks style="" attributes; setting
// the custom property through the CSSOM is allowed. Runs for the page and for every
// fragment htmx swaps in (WebSocket and Server-Sent Events alike fire htmx:load).
(function () {
  "use strict";
  function paint(root) {
    if (!root || !root.querySelectorAll) return;
    const found = Array.from(root.querySelectorAll("[data-hue]"));
    if (root.matches && root.matches("[data-hue]")) found.push(root);
    for (const el of found) {
      const hue = Number(el.dataset.hue);
      if (Number.isFinite(hue)) el.style.setProperty("--hue", String(hue));
    }
  }
  document.addEventListener("htmx:load", (e) => paint(e.detail && e.detail.elt ? e.detail.elt : e.target));
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => paint(document));
  } else {
    paint(document);
  }
})();
