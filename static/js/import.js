// Import on the document list: pick files (#import) or drop them on the drop zone; each
// .md/.markdown/.txt file becomes a document. The server checks everything (size, UTF-8,
// binary) and says what it refused; the list is reloaded with the new documents.

import { post } from "./api.js";

const input = document.getElementById("import");
const zone = document.getElementById("import-zone");
const result = document.getElementById("import-result");

if (input && zone && result) {
  input.addEventListener("change", () => {
    if (input.files.length) upload(input.files).finally(() => (input.value = ""));
  });
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    if (e.dataTransfer && e.dataTransfer.files.length) upload(e.dataTransfer.files);
  });
}

function show(lines, failed) {
  result.replaceChildren(
    ...lines.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }),
  );
  result.classList.toggle("error", failed);
}

async function upload(files) {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  show([`Importing ${files.length} file${files.length === 1 ? "" : "s"}…`], false);
  try {
    const answer = await post(input.dataset.url, form);
    const lines = answer.documents.map((d) => `Imported “${d.title}”.`);
    for (const e of answer.errors) lines.push(`${e.file}: ${e.error}`);
    show(lines, answer.errors.length > 0);
    if (window.htmx) window.htmx.ajax("GET", "/", { target: "#document-list", swap: "outerHTML" });
  } catch (error) {
    show([error.message], true);
  }
}
