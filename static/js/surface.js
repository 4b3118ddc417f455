// The editing surface: <tandem-editor id="editor">, a small custom element around a
// CodeMirror 6 view that looks like a text area to scripts and tests (value,
// selectionStart, selectionEnd, setSelectionRange, select, focus, readOnly).
//
// The server renders the text inside it in a plain <textarea> (readable, even editable,
// before any script runs); when this module loads, the element swaps that for the
// editor in one task, same font and padding, keeping what was typed meanwhile.
//
// bindSync() connects it to the sync client, like textarea.js did before it:
//  - each local CodeMirror transaction becomes one delta (its ChangeSet, UTF-16 units:
//    never a diff of the whole text); an IME composition is held and sent once, when
//    it is committed;
//  - remote changes are applied as one CodeMirror transaction, which maps everyone's
//    caret and selection and keeps the scroll position anchored;
//  - undo and redo go to the server (CodeMirror's own history is not loaded).

import { Annotation, Compartment, EditorSelection, EditorState, Prec, Transaction } from "@codemirror/state";
import { EditorView, dropCursor, highlightSpecialChars, keymap, placeholder } from "@codemirror/view";
import { defaultKeymap, indentWithTab } from "@codemirror/commands";
import { highlightSelectionMatches, search, searchKeymap } from "@codemirror/search";
import { indentOnInput } from "@codemirror/language";
import { anchoredDiff, hasLoneSurrogate, normalize } from "./delta.js";
import { markdown } from "./markdown.js";

/** Marks the transactions that carry someone else's change (not sent back). */
const remote = Annotation.define();

const LONE_SURROGATES = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** A CodeMirror ChangeSet as a Quill-style delta on the text it applies to. */
export function changesToDelta(changes) {
  const ops = [];
  let pos = 0;
  changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
    if (fromA > pos) ops.push({ retain: fromA - pos });
    if (inserted.length) ops.push({ insert: inserted.toString() });
    if (toA > fromA) ops.push({ delete: toA - fromA });
    pos = toA;
  });
  return normalize(ops);
}

/** A delta as CodeMirror change specs (positions in the text it applies to). */
export function deltaToChanges(delta) {
  const changes = [];
  let pos = 0;
  for (const op of delta) {
    if (op.retain !== undefined) pos += op.retain;
    else if (op.delete !== undefined) {
      changes.push({ from: pos, to: pos + op.delete });
      pos += op.delete;
    } else if (op.insert) changes.push({ from: pos, insert: op.insert });
  }
  return changes;
}

const noop = () => {};

/** Typing may skip the browser's own insertion (TandemEditor.typeDirectly): desktop
 * browsers only, where a cancelled beforeinput really is cancelled. */
const DIRECT_TYPING = navigator.maxTouchPoints === 0 && !/Android|iPhone|iPad|iPod/.test(navigator.userAgent);

/** The page's CSP nonce (a <meta nonce>; the attribute reads empty once parsed, the
 * property does not); "" when the page has none. */
function cspNonce() {
  const meta = document.querySelector('meta[name="csp-nonce"]');
  return (meta && meta.nonce) || "";
}

export class TandemEditor extends HTMLElement {
  static observedAttributes = ["readonly"];

  constructor() {
    super();
    this.view = null;
    this.initialText = "";
    this.handlers = { onEdit: noop, onUndo: noop, onRedo: noop, onCompositionEnd: noop };
    this.pending = null; // local changes not yet reported (an IME composition)
    this.sendingSelection = null; // the selection after the changes being reported
    this.early = null; // typed into the fallback text area before this module ran
    this.editable = new Compartment();
    this.note = null;
  }

  connectedCallback() {
    // A script may have set readOnly on the plain element before this module defined it
    // (readonly.js runs first): that own property would hide the accessor below.
    if (Object.hasOwn(this, "readOnly")) {
      const on = this.readOnly;
      delete this.readOnly;
      this.readOnly = on;
    }
    if (!this.view) this.mount();
  }

  attributeChangedCallback(name) {
    if (name === "readonly") this.applyReadOnly();
  }

  mount() {
    // The server's text: a text area, or for a big document read-only chunks.
    const fallback = this.querySelector("textarea") || this.querySelector(".editor-fallback");
    const area = fallback instanceof HTMLTextAreaElement ? fallback : null;
    this.note = this.querySelector(".readonly-note"); // the server's, for a viewer's page
    // defaultValue is the text exactly as the server sent it (the parser already
    // dropped the newline after <textarea>); value has anything typed since.
    const initial = area ? area.defaultValue : fallback ? fallback.textContent : this.textContent;
    this.initialText = initial;
    const focused = fallback && document.activeElement === fallback;
    if (area && area.value !== initial) {
      this.early = { text: area.value, start: area.selectionStart, end: area.selectionEnd };
    }
    this.view = new EditorView({
      state: EditorState.create({ doc: initial, extensions: this.extensions() }),
      // Local changes are reported before the view updates: the request leaves before
      // the new state (the Markdown reparse) and the DOM update are computed.
      dispatchTransactions: (trs, view) => {
        this.beforeUpdate(trs, view);
        view.update(trs);
      },
    });
    // Reading the text area's scroll position lays out its whole text (hundreds of ms for
    // a megabyte): only worth it when the page was painted, so someone could have scrolled.
    const painted = performance.getEntriesByType("paint").length > 0;
    const scrollTop = fallback && painted ? fallback.scrollTop : 0;
    if (fallback) fallback.replaceWith(this.view.dom);
    else this.replaceChildren(this.view.dom);
    if (scrollTop) this.view.scrollDOM.scrollTop = scrollTop;
    if (this.early) this.setSelectionRange(this.early.start, this.early.end);
    else if (focused && area) this.setSelectionRange(area.selectionStart, area.selectionEnd);
    if (focused) this.view.focus();
    // Focus given to the element itself (a script or test calling the built-in focus(),
    // a label) goes on to the editor's content.
    if (!this.hasAttribute("tabindex")) this.tabIndex = -1;
    this.addEventListener("focus", (e) => {
      if (e.target === this) this.view.focus();
    });
    this.view.contentDOM.addEventListener("compositionend", () => {
      // CodeMirror reads the committed text from the DOM in a microtask; report the
      // whole composition after that, then let held remote changes in.
      setTimeout(() => {
        if (this.view.composing) return;
        this.flushPending();
        this.handlers.onCompositionEnd();
      }, 0);
    });
    // The state was made with the editable extensions for the attribute as it is now:
    // only the note needs placing (a reconfiguration here cost 7-11 ms of a cold open).
    this.applyReadOnly({ reconfigure: false });
  }

  extensions() {
    const call = (name) => () => {
      if (!this.readOnly) this.handlers[name]();
      return true;
    };
    return [
      // Undo and redo are the server's (per-editor undo of my own changes only), so the
      // keys are taken before any keymap sees them; CodeMirror's history is not loaded.
      Prec.highest(
        EditorView.domEventHandlers({
          keydown: (e) => {
            if (e.isComposing || e.altKey) return false;
            const key = (e.key || "").toLowerCase();
            let action = null;
            if ((e.ctrlKey || e.metaKey) && key === "z") action = e.shiftKey ? "onRedo" : "onUndo";
            else if (e.ctrlKey && !e.metaKey && !e.shiftKey && key === "y") action = "onRedo";
            if (!action) return false;
            e.preventDefault();
            call(action)();
            return true;
          },
          beforeinput: (e, view) => {
            if (e.inputType === "insertText") return this.typeDirectly(e, view);
            // The Edit menu's or context menu's Undo: same as the keys.
            if (e.inputType !== "historyUndo" && e.inputType !== "historyRedo") return false;
            e.preventDefault();
            call(e.inputType === "historyUndo" ? "onUndo" : "onRedo")();
            return true;
          },
        }),
      ),
      // CodeMirror writes its own <style> element: the page's CSP allows it by the
      // request's nonce (templates/editor/_importmap.html).
      EditorView.cspNonce.of(cspNonce()),
      // The editor fills the element (the page's CSS gives the rest of the look).
      EditorView.theme({ "&": { flex: "1", minWidth: "0", minHeight: "0", height: "100%" } }),
      markdown(),
      EditorView.lineWrapping,
      highlightSpecialChars(),
      dropCursor(),
      indentOnInput(),
      highlightSelectionMatches(),
      search({ top: true }),
      keymap.of([...searchKeymap, ...defaultKeymap, indentWithTab]),
      placeholder(this.getAttribute("placeholder") || ""),
      EditorView.contentAttributes.of({
        "aria-label": this.getAttribute("aria-label") || "Markdown source",
        // How to leave with the keyboard, since Tab indents (the page's hint, if any).
        ...(this.hasAttribute("aria-describedby") ? { "aria-describedby": this.getAttribute("aria-describedby") } : {}),
        spellcheck: "true",
        autocapitalize: "sentences",
        autocorrect: "on",
      }),
      this.editable.of(this.editableExtensions()),
      // The server refuses lone surrogates: typed ones become U+FFFD (same length).
      EditorState.transactionFilter.of((tr) => this.filterLocal(tr)),
    ];
  }

  /**
   * A typed character, as a transaction straight from `beforeinput`. CodeMirror's own
   * path lets the browser change the DOM, then reads the change and the new DOM
   * selection back (a forced layout): about 1 ms more before the edit can leave, for
   * every keystroke. Taken only where the browser's answer can be checked, on a
   * desktop browser (Android ignores preventDefault here, and the iOS and Android
   * keyboards keep their own idea of the text), outside any composition, and only when
   * the browser would type exactly over the selection the editor holds; anything else
   * goes CodeMirror's way. The transaction is the one CodeMirror would make (input
   * handlers first, then replaceSelection, as "input.type", scrolled into view).
   */
  typeDirectly(e, view) {
    const text = e.data;
    if (!DIRECT_TYPING || !e.cancelable || e.isComposing || view.compositionStarted || this.pending) return false;
    if (typeof text !== "string" || !text || view.state.readOnly) return false;
    const main = view.state.selection.main;
    if (view.state.selection.ranges.length !== 1) return false;
    // Where the browser would type: its selection (Chrome gives no target ranges for
    // insertText). Read before any change, so no layout is forced.
    const dom = (view.root.getSelection ? view.root : document).getSelection();
    const content = view.contentDOM;
    if (!dom || !dom.anchorNode || !content.contains(dom.anchorNode) || !content.contains(dom.focusNode)) return false;
    const anchor = view.posAtDOM(dom.anchorNode, dom.anchorOffset);
    const head = view.posAtDOM(dom.focusNode, dom.focusOffset);
    if (Math.min(anchor, head) !== main.from || Math.max(anchor, head) !== main.to) return false; // not where we think
    e.preventDefault();
    let tr = null;
    const insert = () => (tr ||= view.state.update(view.state.replaceSelection(text), { userEvent: "input.type", scrollIntoView: true }));
    if (!view.state.facet(EditorView.inputHandler).some((h) => h(view, main.from, main.to, text, insert))) view.dispatch(insert());
    return true;
  }

  editableExtensions() {
    const ro = this.readOnly;
    // Read-only refuses every change but keeps the content focusable, so a reader can
    // click in, move with the keys, select and copy, as in a read-only text area
    // (EditorView.editable false would make it an inert block). No on-screen keyboard,
    // and no spelling marks in text the reader cannot change.
    // (And no "Tab indents" hint: for a reader Tab moves on.)
    const readerAttrs = Prec.high(
      EditorView.contentAttributes.of({ inputmode: "none", spellcheck: "false", "aria-describedby": "" }),
    );
    return [EditorState.readOnly.of(ro), ro ? readerAttrs : []];
  }

  filterLocal(tr) {
    if (!tr.docChanged || tr.annotation(remote)) return tr;
    if (tr.startState.readOnly) return []; // read-only: nothing local gets in
    let bad = false;
    tr.changes.iterChanges((_a, _b, _c, _d, inserted) => {
      if (!bad && hasLoneSurrogate(inserted.toString())) bad = true;
    });
    if (!bad) return tr;
    const changes = [];
    tr.changes.iterChanges((fromA, toA, _c, _d, inserted) => {
      changes.push({ from: fromA, to: toA, insert: inserted.toString().replace(LONE_SURROGATES, "\ufffd") });
    });
    return { changes, selection: tr.selection, scrollIntoView: tr.scrollIntoView, userEvent: tr.annotation(Transaction.userEvent) };
  }

  beforeUpdate(trs, view) {
    let selection = null;
    for (const tr of trs) {
      selection = tr.newSelection; // known without computing the new state
      if (!tr.docChanged || tr.annotation(remote)) continue;
      this.pending = this.pending ? this.pending.compose(tr.changes) : tr.changes;
    }
    if (this.pending && !view.composing) {
      this.sendingSelection = selection; // the view still shows the old state
      try {
        this.flushPending();
      } finally {
        this.sendingSelection = null;
      }
    }
  }

  /** Reports the local changes not reported yet as one edit. */
  flushPending() {
    const changes = this.pending;
    if (!changes) return;
    this.pending = null;
    const delta = changesToDelta(changes);
    if (delta.length) this.handlers.onEdit(delta);
  }

  applyReadOnly({ reconfigure = true } = {}) {
    if (!this.view) return;
    const ro = this.readOnly;
    if (reconfigure) this.view.dispatch({ effects: this.editable.reconfigure(this.editableExtensions()) });
    if (ro && !this.note) {
      this.note = document.createElement("p");
      this.note.className = "readonly-note";
      this.note.setAttribute("role", "note");
      this.note.textContent = "Read-only: you can read and copy this document, not change it.";
      this.prepend(this.note);
    } else if (!ro && this.note) {
      this.note.remove();
      this.note = null;
    }
  }

  /**
   * Connects the surface to the sync client. Returns what editor.js needs:
   * isComposing(), selection(), catchUp(), applyRemote(delta, next).
   * @param {{onEdit: (delta: object[]) => void, onUndo: () => void, onRedo: () => void,
   *          onCompositionEnd?: () => void}} h
   */
  bindSync(h) {
    this.handlers = { ...this.handlers, ...h };
    if (this.early) {
      // Typed before the module ran: one edit, placed by the caret (as textarea.js did).
      const { text, end } = this.early;
      this.early = null;
      const prev = this.view.state.doc.toString();
      const at = Math.max(0, end - Math.max(text.length - prev.length, 0));
      const delta = anchoredDiff(prev, text, at, at, false);
      this.view.dispatch({ changes: deltaToChanges(delta), selection: { anchor: end } });
    }
    return {
      isComposing: () => this.view.composing || this.pending !== null,
      selection: () => {
        // [anchor, head]: a backward selection keeps its direction, so others draw
        // my caret at its moving end (the head), where I am typing.
        const main = (this.sendingSelection || this.view.state.selection).main;
        return [main.anchor, main.head];
      },
      catchUp: () => {
        if (!this.view.composing) this.flushPending();
      },
      applyRemote: (delta, next) => this.applyRemote(delta, next),
    };
  }

  /**
   * Someone else's change (a delta on the current text; `next` is the resulting text
   * if the caller has it). One transaction: carets stay before text inserted exactly
   * at them, selections do not grow at their edges, the scroll position is kept.
   */
  applyRemote(delta, next) {
    const view = this.view;
    if (!view.composing) this.flushPending();
    const specs = deltaToChanges(delta);
    const changes = view.state.changes(specs);
    // Keep the line at the top of the view where it is (text inserted above it would
    // otherwise push what I am reading down); at the very top, show the new text. Only
    // a change above that line can move it: reading the scroll position forces a layout,
    // so it is read only then (the visible range is CodeMirror's, from its last measure).
    const top = view.visibleRanges.length ? view.visibleRanges[0].from : 0;
    const above = specs.length > 0 && specs[0].from < top;
    const effects = above && view.scrollDOM.scrollTop > 0 ? [view.scrollSnapshot().map(changes)] : [];
    view.dispatch({
      changes,
      effects,
      annotations: [remote.of(true), Transaction.addToHistory.of(false)],
      filter: false,
    });
    if (next !== undefined && next.length !== this.view.state.doc.length) {
      // Never expected: the sync client and the view disagree. The client is right.
      console.error("tandem: editor out of step; rewriting it");
      this.view.dispatch({
        changes: { from: 0, to: this.view.state.doc.length, insert: next },
        annotations: [remote.of(true)],
        filter: false,
      });
    }
  }

  // -- the text area's API ------------------------------------------------------------
  get value() {
    return this.view ? this.view.state.doc.toString() : this.initialText;
  }

  set value(text) {
    // A script replaced the text: one local edit, trimmed to what differs.
    const prev = this.value;
    const delta = anchoredDiff(prev, String(text), 0, 0, false);
    this.view.dispatch({ changes: deltaToChanges(delta), selection: { anchor: String(text).length } });
  }

  get textLength() {
    return this.view.state.doc.length;
  }

  get selectionStart() {
    return this.view.state.selection.main.from;
  }

  set selectionStart(i) {
    this.setSelectionRange(i, Math.max(i, this.selectionEnd));
  }

  get selectionEnd() {
    return this.view.state.selection.main.to;
  }

  set selectionEnd(i) {
    this.setSelectionRange(Math.min(this.selectionStart, i), i);
  }

  get selectionDirection() {
    const { anchor, head } = this.view.state.selection.main;
    return head < anchor ? "backward" : "forward";
  }

  setSelectionRange(start, end, direction = "forward") {
    const n = this.view.state.doc.length;
    const e = Math.max(0, Math.min(Number(end) || 0, n));
    const s = Math.max(0, Math.min(Number(start) || 0, e));
    const range = direction === "backward" ? EditorSelection.range(e, s) : EditorSelection.range(s, e);
    this.view.dispatch({ selection: EditorSelection.create([range]), scrollIntoView: this.view.hasFocus });
  }

  select() {
    this.setSelectionRange(0, this.view.state.doc.length);
  }

  focus(options) {
    if (this.view) this.view.focus();
    else super.focus(options);
  }

  blur() {
    if (this.view) this.view.contentDOM.blur();
  }

  get readOnly() {
    return this.hasAttribute("readonly");
  }

  set readOnly(on) {
    this.toggleAttribute("readonly", Boolean(on));
  }
}

if (!customElements.get("tandem-editor")) customElements.define("tandem-editor", TandemEditor);
