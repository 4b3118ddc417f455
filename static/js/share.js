// The Share dialog (the owner's page only): #share loads the links into the dialog with
// htmx (hx-get on the button) and this opens it; the copy buttons copy a link.

const button = document.getElementById("share");
const dialog = document.getElementById("share-dialog");

if (button && dialog) {
  button.addEventListener("click", () => {
    if (!dialog.open) dialog.showModal();
  });
  dialog.addEventListener("click", (e) => {
    if (e.target === dialog) {
      dialog.close(); // a click on the backdrop (the dialog itself has no padding)
      return;
    }
    const copy = e.target.closest("button[data-copy]");
    if (copy) copyLink(copy);
  });
}

async function copyLink(copy) {
  const input = document.getElementById(copy.dataset.copy);
  if (!input) return;
  const done = await copyText(input);
  copy.textContent = done ? "Copied" : "Press Ctrl+C";
  setTimeout(() => (copy.textContent = "Copy"), 1500);
}

async function copyText(input) {
  // The Clipboard API needs a secure context: the owner's http://127.0.0.1 is one, a page
  // opened at a LAN address over plain http is not. Selecting and copying works in both.
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(input.value);
      input.select();
      return true;
    }
  } catch {
    // fall through
  }
  input.select();
  return document.execCommand("copy");
}
