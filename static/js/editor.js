// Entry point of the editor page: wires the text area, the sync client, the htmx
// WebSocket and the status indicator together. See docs/protocol.md.

import { SyncClient } from "./sync-client.js";
import { bindTextarea } from "./textarea.js";
import { connect, displayName } from "./connection.js";
import { bindStatus } from "./status.js";
import { keepReadOnly } from "./readonly.js";

const textarea = document.getElementById("editor");
const statusEl = document.getElementById("status");
const collab = document.getElementById("collab");
const initialEl = document.getElementById("initial-text");
const protocolEl = document.getElementById("tandem-protocol");

if (textarea && statusEl && collab && initialEl && protocolEl) start();

function start() {
  keepReadOnly(); // a view link: before anything can be typed
  // The shadow comes from data, not from the text area (the HTML parser eats a
  // leading newline, and the browser may have normalised the text).
  const initial = JSON.parse(initialEl.textContent);
  // Close codes and limits, from the server's protocol module.
  const protocol = JSON.parse(protocolEl.textContent);
  const version = Number(statusEl.dataset.version) || 0;
  // Anything typed before this module ran is a local edit on top of the shadow.
  const early = textarea.value;
  const earlySelection = [textarea.selectionStart, textarea.selectionEnd];
  if (early !== initial) textarea.value = initial;

  let connection = null;
  let heldMessages = null; // messages that wait for an IME composition to end
  const updateStatus = bindStatus(statusEl);
  let connState = { state: "connecting" };

  const client = new SyncClient({
    text: initial,
    version,
    maxBytes: protocol.maxRequestBytes,
    send: (json) => connection && connection.send(json),
    onRemote: (delta, text) => editor.applyRemote(delta, text),
    onChange: () => showStatus(),
    getSelection: () => editor.selection(),
  });

  const editor = bindTextarea(textarea, {
    onEdit: (delta) => client.edit(delta),
    // A read-only editor sends no undo (the server would refuse it, as a viewer's).
    onUndo: () => textarea.readOnly || client.undo(),
    onRedo: () => textarea.readOnly || client.redo(),
    onCompositionEnd: () => {
      const held = heldMessages || [];
      heldMessages = null;
      held.forEach(deliver);
    },
  });

  function deliver(msg) {
    if (editor.isComposing()) {
      // Writing to the text area now would break the composition: apply later.
      (heldMessages ||= []).push(msg);
      return;
    }
    editor.catchUp();
    client.receive(msg);
  }

  function showStatus() {
    const failure = client.failure;
    updateStatus({
      state: connState.state,
      version: client.version,
      dirty: client.hasUnsent(),
      message: connState.message || (failure ? `Not syncing: ${failure.message} Copy your text and reload.` : undefined),
    });
  }

  if (early !== initial) {
    textarea.value = early;
    textarea.setSelectionRange(earlySelection[0], earlySelection[1]);
    editor.catchUp(); // one edit, placed by the caret
  }

  if (window.htmx) {
    connection = connect({
      element: collab,
      htmx: window.htmx,
      client,
      protocol,
      name: displayName(),
      onMessage: deliver,
      onState: (s) => {
        connState = s;
        showStatus();
      },
    });
  } else {
    connState = { state: "offline", message: "Offline: the page's scripts did not load." };
  }
  showStatus();

  window.addEventListener("beforeunload", (e) => {
    if (client.hasUnsent() || editor.isComposing()) {
      e.preventDefault();
      e.returnValue = ""; // older browsers need this to ask
    }
  });

  // Someone renamed the document: never replace the title field under the person who
  // is typing in it (their own rename wins when they leave the field).
  document.body.addEventListener("htmx:oobBeforeSwap", (e) => {
    const target = e.detail.target;
    if (target && target.id === "title" && target.contains(document.activeElement)) {
      e.preventDefault();
    }
  });

  // For tests and debugging in the console.
  window.tandem = { client, editor, connection };
}
