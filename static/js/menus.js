// Menus made of <details class="doc-actions"> (the editor's Download menu, each row's
// actions in the list) close as menus do: Escape closes the open one and puts focus back
// on its button, a click outside closes it, and so does following one of its links (a
// download leaves the page where it was, so the menu would otherwise stay open).
(function () {
  "use strict";
  const openMenus = () => Array.from(document.querySelectorAll("details.doc-actions[open]"));
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    const menu = e.target instanceof Element ? e.target.closest("details.doc-actions[open]") : null;
    if (!menu) return;
    menu.open = false;
    const summary = menu.querySelector("summary");
    if (summary) summary.focus();
    e.preventDefault();
  });
  document.addEventListener("click", (e) => {
    const target = e.target instanceof Element ? e.target : null;
    for (const menu of openMenus()) {
      if (!target || !menu.contains(target)) menu.open = false;
      else if (target.closest("a[href]")) setTimeout(() => { menu.open = false; }, 0);
    }
  });
})();
