// "Restore this version" on a past version's page: the restore is made from the editor
// page (/d/<id>/?restore=<n>), so that it is that editor's own change and Ctrl+Z there
// undoes it (static/js/history.js does it on arrival).

const button = document.getElementById("restore");
if (button) {
  button.addEventListener("click", () => {
    const target = new URL(button.dataset.editor, window.location.href);
    target.searchParams.set("restore", button.dataset.version);
    window.location.assign(target.toString());
  });
}
