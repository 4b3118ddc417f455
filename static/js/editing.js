// The editor's half of the editor page, imported by editor.js once the socket is on its
// way: the editing surface (#editor, surface.js: CodeMirror), the sync client, other
// people's carets and their marks beside the preview. See docs/protocol.md.

import { ChangeSet, StateEffect } from "@codemirror/state";
import { EditorView } from "@codemirror/view";
import { SyncClient } from "./sync-client.js";
import { caretId, remoteCarets, scrollToCaret, showCarets } from "./carets.js";
import { previewMarks } from "./preview-marks.js";
import "./surface.js"; // defines <tandem-editor>, which takes over #editor

/**
 * @param {object} o
 * @param {HTMLElement} o.surface   #editor
 * @param {HTMLElement} o.collab    #collab (data-document)
 * @param {object} o.protocol       collab/protocol.py's limits
 * @param {number} o.version        the version the page was rendered at
 * @param {ReturnType<import('./connection.js').connect> | null} o.connection
 * @param {() => void} o.onChange   the sync state changed (for #status)
 * @returns {{client: SyncClient, editor: object, deliver: (msg: object) => void}} what
 *   editor.js attaches to the connection (deliver takes the JSON frames)
 */
export function startEditing(o) {
  const { surface, collab, protocol, version, connection } = o;
  // The shadow is the text the page was rendered with (the surface read it from the
  // server's fallback text area; anything typed there since is reported by bindSync
  // as one local edit on top of it).
  const initial = surface.initialText;
  let pendingCarets = null; // a carets frame for a version this page does not hold yet
  let shownSoon = null; // {carets, since}: placed in my text, to draw with the next frame
  let selectionTimer = null;
  let heldMessages = null; // messages that wait for an IME composition to end

  const client = new SyncClient({
    text: initial,
    version,
    maxBytes: protocol.maxRequestBytes,
    send: (json) => connection && connection.send(json),
    onRemote: (delta, text) => editor.applyRemote(delta, text),
    onChange: () => {
      o.onChange();
      // Not now: this may run while the surface reports an edit, inside its dispatch.
      queueMicrotask(placeCarets);
    },
    getSelection: () => editor.selection(),
    fetchLatest: async () => {
      const url = `/api/documents/${encodeURIComponent(collab.dataset.document)}/`;
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`The server answered ${response.status}.`);
      const doc = await response.json();
      return { text: doc.text, version: doc.version };
    },
  });

  const editor = surface.bindSync({
    onEdit: (delta) => client.edit(delta),
    // A read-only editor sends no undo (the server would refuse it, as a viewer's).
    onUndo: () => surface.readOnly || client.undo(),
    onRedo: () => surface.readOnly || client.redo(),
    onCompositionEnd: () => {
      const held = heldMessages || [];
      heldMessages = null;
      held.forEach(deliver);
    },
  });

  function deliver(msg) {
    if (editor.isComposing()) {
      // Changing the text now would break the composition: apply it afterwards.
      (heldMessages ||= []).push(msg);
      return;
    }
    editor.catchUp();
    if (msg && msg.type === "carets") {
      pendingCarets = msg;
      placeCarets();
      return;
    }
    client.receive(msg);
  }

  // -- other people's carets (carets.js) ----------------------------------------------
  const view = surface.view;
  const myCaret = caretId(client.cid);
  view.dispatch({
    effects: StateEffect.appendConfig.of([
      remoteCarets,
      previewMarks(),
      EditorView.updateListener.of((u) => {
        if (u.docChanged && shownSoon) shownSoon.since = shownSoon.since.composeDesc(u.changes.desc);
        if (u.selectionSet && !u.docChanged) selectionMoved(); // edits carry it anyway
      }),
    ]),
  });

  function placeCarets() {
    const msg = pendingCarets;
    if (!msg || !view || client.version < msg.version) return; // kept until we get there
    pendingCarets = null;
    if (client.version > msg.version || !Array.isArray(msg.carets)) return; // the next one is newer
    const carets = [];
    for (const [id, name, hue, anchor, head] of msg.carets) {
      if (id === myCaret) continue;
      carets.push({ id, name, hue, anchor: client.toLocal(anchor), head: client.toLocal(head) });
    }
    // Drawn with the next frame, not now: a change that arrives meanwhile (mine or
    // someone's) is applied first instead of waiting behind the editor's update for the
    // carets, and the carets are mapped through it.
    if (!shownSoon) requestAnimationFrame(showCaretsNow);
    shownSoon = { carets, since: ChangeSet.empty(view.state.doc.length).desc };
  }

  function showCaretsNow() {
    const soon = shownSoon;
    shownSoon = null;
    if (!soon) return;
    const at = (pos) => soon.since.mapPos(pos, -1); // as the carets' own field maps them
    showCarets(view, soon.carets.map((c) => ({ ...c, anchor: at(c.anchor), head: at(c.head) })));
  }

  // My caret moved without an edit: a sync without ops says where (coalesced: one per
  // 150 ms at most, and none while a request is in flight: its answer comes first).
  function selectionMoved() {
    if (selectionTimer) return;
    selectionTimer = setTimeout(function send() {
      if (client.inFlight) {
        selectionTimer = setTimeout(send, 100);
        return;
      }
      selectionTimer = null;
      client.flush(true);
    }, 150);
  }

  // A click on someone in the presence list (their button: Enter and Space too) shows
  // where they are.
  document.addEventListener("click", (e) => {
    const person = e.target instanceof Element && e.target.closest("#presence [data-name]");
    if (person && !person.classList.contains("me")) scrollToCaret(view, person.dataset.name);
  });

  // For tests and debugging in the console.
  window.tandem = { client, editor, connection };
  return { client, editor, deliver };
}
