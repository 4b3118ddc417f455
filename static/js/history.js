// The History panel of the editor page: #history-button loads the list into the dialog
// (hx-get on the button) and this opens it; "Restore" and "Save version" call the API.
// A restore is sent with this page's sync id (cid), so the server makes it as this
// editor's own change and Ctrl+Z here takes it back.

import { post } from "./api.js";
import { displayName } from "./connection.js";

const button = document.getElementById("history-button");
const dialog = document.getElementById("history-dialog");

if (button && dialog) {
  button.addEventListener("click", () => {
    if (!dialog.open) dialog.showModal();
  });
  dialog.addEventListener("click", (e) => {
    if (e.target === dialog) {
      dialog.close(); // a click on the backdrop
      return;
    }
    const restore = e.target.closest("button.restore");
    if (restore) restoreVersion(restore);
  });
  dialog.addEventListener("submit", (e) => {
    if (e.target.id !== "save-version") return;
    e.preventDefault();
    saveVersion(e.target);
  });
}

// Arriving from a past version's "Restore this version" (/d/<id>/?restore=<n>): restore
// it from here, with this page's cid, and show the panel with the outcome.
const pending = new URLSearchParams(window.location.search).get("restore");
if (button && dialog && pending !== null) {
  const url = new URL(window.location.href);
  url.searchParams.delete("restore");
  window.history.replaceState(null, "", url.toString()); // a reload must not restore again
  dialog.showModal();
  window.htmx
    .ajax("GET", button.getAttribute("hx-get"), { target: "#history-body", swap: "outerHTML" })
    .then(() => restoreVersion({ dataset: { version: pending, url: button.dataset.restoreUrl } }));
}

/** This page's sync id, once editor.js has loaded the editor (or given up: then ""). */
function editorCid() {
  const cid = () => (window.tandem && window.tandem.client ? window.tandem.client.cid : "");
  if (window.tandem) return Promise.resolve(cid());
  return new Promise((resolve) => document.addEventListener("tandem:ready", () => resolve(cid()), { once: true }));
}

function say(text, failed = false) {
  const el = dialog.querySelector(".history-message");
  if (!el) return;
  el.textContent = text;
  el.classList.toggle("error", failed);
}

function reload(message) {
  const url = button.getAttribute("hx-get");
  // From the History button, so it syncs on the dialog as the button's and the filters'
  // requests do: a filter chosen meanwhile replaces this load (whose promise then fails).
  window.htmx
    .ajax("GET", url, { source: button, target: "#history-body", swap: "outerHTML" })
    .then(() => say(message))
    .catch(() => {});
}

async function restoreVersion(el) {
  el.disabled = true;
  const version = Number(el.dataset.version);
  if (!Number.isInteger(version) || version < 0) {
    say("Not restored: that is not a version number.", true);
    return;
  }
  try {
    const cid = await editorCid();
    await post(el.dataset.url, { version, cid, name: displayName() });
    reload(`Restored version ${version}. Ctrl+Z in the text undoes it.`);
  } catch (error) {
    el.disabled = false;
    say(error.message, true);
  }
}

async function saveVersion(form) {
  const input = form.querySelector("input[name=label]");
  try {
    const answer = await post(form.dataset.url, { label: input.value, name: displayName() });
    reload(
      answer.previous && answer.previous !== answer.label
        ? `Renamed version ${answer.version} from “${answer.previous}” to “${answer.label}”.`
        : `Saved version ${answer.version} as “${answer.label}”.`,
    );
  } catch (error) {
    say(error.message, true);
  }
}
