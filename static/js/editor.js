// Entry point of the editor page: the socket first, the editor second. This module
// hooks into htmx's WebSocket (connection.js) before htmx opens it at DOMContentLoaded,
// and imports the editor (editing.js: CodeMirror behind #editor, the sync client,
// carets) without making DOMContentLoaded wait for it: the socket's handshake and
// CodeMirror's compile overlap instead of following each other. Frames that arrive
// before the editor wait in connection.js, and #status says connected only once both
// are here. See docs/protocol.md.

import { connect, displayName, saveName } from "./connection.js";
import { bindName, renameMe, watchPresence } from "./presence.js";
import { bindStatus } from "./status.js";
import { keepReadOnly } from "./readonly.js";

const surface = document.getElementById("editor");
const statusEl = document.getElementById("status");
const collab = document.getElementById("collab");
const protocolEl = document.getElementById("tandem-protocol");

if (surface && statusEl && collab && protocolEl) start();

function start() {
  keepReadOnly(); // a view link: before anything can be typed
  // Close codes and limits, from the server's protocol module.
  const protocol = JSON.parse(protocolEl.textContent);
  const version = Number(statusEl.dataset.version) || 0;
  const updateStatus = bindStatus(statusEl, document.getElementById("status-detail"));
  let connState = { state: "connecting" };
  let editing = null; // {client, editor} once the editor is here
  let connection = null;
  let broken = null; // why the editor could not load, if it could not

  function showStatus() {
    if (broken) {
      updateStatus({ state: "offline", version, dirty: false, message: broken });
      return;
    }
    const client = editing && editing.client;
    const failure = client && client.failure;
    updateStatus({
      state: connState.state,
      version: client ? client.version : version,
      dirty: Boolean(client && client.hasUnsent()),
      message: connState.message || (failure ? `Not syncing: ${failure.message} Copy your text and reload.` : undefined),
    });
  }

  let myName = displayName();
  const markPresence = watchPresence(() => myName);
  const nameInput = document.getElementById("name");
  if (nameInput) {
    bindName(nameInput, {
      name: myName,
      maxLength: protocol.nameMax,
      onRename: (name) => {
        myName = name;
        saveName(name);
        renameMe(document.getElementById("presence"), name); // the server's list follows
        markPresence();
        if (connection) connection.rename(name);
      },
    });
  }

  if (window.htmx) {
    connection = connect({
      element: collab,
      htmx: window.htmx,
      protocol,
      name: myName,
      onState: (s) => {
        connState = s;
        // Closed for good (links reset, document deleted): nothing typed now could be
        // saved, so the text stops taking any; what is there can still be copied. Not
        // before the editor is here: it first takes in what was typed meanwhile.
        if (s.final && editing && !surface.readOnly) surface.readOnly = true;
        showStatus();
      },
    });
  } else {
    connState = { state: "offline", message: "Offline: the page's scripts did not load." };
  }
  showStatus();

  import("./editing.js").then(
    ({ startEditing }) => {
      if (!surface.bindSync) throw new Error("#editor did not become the editor");
      editing = startEditing({ surface, collab, protocol, version, connection, onChange: showStatus });
      if (connState.final) surface.readOnly = true; // closed for good while it loaded
      showStatus();
      document.dispatchEvent(new Event("tandem:ready")); // window.tandem is there (history.js)
      // Not inside the catch below: a frame that fails now is not a failure to load.
      queueMicrotask(() => connection && connection.attach(editing.client, editing.deliver));
    },
    (err) => {
      console.error("tandem: the editor did not load", err);
      broken = "The editor did not load. Copy anything you typed, then reload the page.";
      if (connection) connection.stop(broken);
      showStatus();
      document.dispatchEvent(new Event("tandem:ready")); // as ready as it gets
    },
  );

  // Leaving with something not yet saved asks first. Before the editor is here, what is
  // unsaved is whatever was typed into the server's text area.
  window.addEventListener("beforeunload", (e) => {
    const area = editing ? null : surface.querySelector("textarea");
    const unsaved = editing
      ? editing.client.hasUnsent() || editing.editor.isComposing()
      : Boolean(area && area.value !== area.defaultValue);
    if (unsaved) {
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

  // The tab's title follows a rename (mine or anyone's): #title is swapped out whole.
  const titleHome = document.getElementById("title")?.parentElement;
  if (titleHome) {
    new MutationObserver(() => {
      const input = document.getElementById("title-input");
      const title = input && input.defaultValue.trim();
      if (title) document.title = `${title} · Tandem`;
    }).observe(titleHome, { childList: true });
  }
}
