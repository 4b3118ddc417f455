// A view link's page: the text and the title are read-only, and say so. The server
// decides (body[data-role] is what it found) and refuses a viewer's changes anyway; this
// keeps the page from offering what it cannot do. Works on whatever #editor is, as long
// as it has `readOnly` like a text area.

export function applyReadOnly(doc = document) {
  if (doc.body.dataset.role !== "viewer") return false;
  for (const id of ["editor", "title-input"]) {
    const el = doc.getElementById(id);
    if (el) el.readOnly = true;
  }
  return true;
}

/** Keep it so when the title is swapped in by a rename elsewhere (an editable form). */
export function keepReadOnly(doc = document) {
  if (!applyReadOnly(doc)) return;
  doc.body.addEventListener("htmx:oobAfterSwap", () => applyReadOnly(doc));
}
