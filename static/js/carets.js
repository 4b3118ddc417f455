// Other people's carets and selections: selections as CodeMirror mark decorations,
// carets in a layer over the text (as CodeMirror draws its own cursor), so a caret that
// moves changes no line of the content and costs no second measure of it.
//
// The server sends everyone's caret in one `carets` frame per room tick (positions in
// the text at the frame's version). Here they are moved past my unsent edits, then kept
// in a state field that CodeMirror maps through every change (mine and everyone's), so
// they stay on their character until the next frame places them afresh. Only carets
// in the visible part of the text are drawn: 200 carets in a long text cost 200 numbers.

import { EditorSelection, StateEffect, StateField } from "@codemirror/state";
import { Decoration, EditorView, RectangleMarker, ViewPlugin, layer } from "@codemirror/view";

/** The public id of a page load's caret: FNV-1a (32 bits) of its cid, as the server
 * computes it (collab/carets.caret_id). cids are ASCII. */
export function caretId(cid) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < cid.length; i++) {
    hash ^= cid.charCodeAt(i) & 0xff;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

const setCarets = StateEffect.define();

/** [{id, name, hue, anchor, head, seq}] in the editor's current text. */
const caretsField = StateField.define({
  create: () => [],
  update(carets, tr) {
    for (const effect of tr.effects) if (effect.is(setCarets)) return effect.value;
    if (!tr.docChanged || !carets.length) return carets;
    // Text inserted exactly at a caret goes after it (assoc -1), as on the server.
    return carets.map((c) => ({ ...c, anchor: tr.changes.mapPos(c.anchor, -1), head: tr.changes.mapPos(c.head, -1) }));
  },
});

// The label shows while they type, then fades; each move starts it again. Through the
// Web Animations API: restarting a CSS animation by taking its class away and back
// needs a forced layout in between (0.5 ms per move, in every page showing the caret).
const LABEL_FADE = [{ opacity: 1 }, { opacity: 1, offset: 0.75 }, { opacity: 0 }];
const LABEL_FADE_MS = 2500;
const fades = new WeakMap(); // label -> its running Animation
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

function flashLabel(label) {
  fades.get(label)?.cancel();
  if (reducedMotion.matches) return; // the label shows on hover only
  fades.set(label, label.animate(LABEL_FADE, LABEL_FADE_MS));
}

/** A caret in the carets layer: positioned over the text, not inside it, so a move
 * changes no line of the content (CodeMirror measures nothing again for it). */
class CaretMarker {
  constructor(caret, left, top, height) {
    this.caret = caret;
    this.left = left;
    this.top = top;
    this.height = height;
  }

  eq(other) {
    const a = this.caret;
    const b = other.caret;
    return a.id === b.id && a.name === b.name && a.hue === b.hue && a.head === b.head && a.seq === b.seq &&
      this.left === other.left && this.top === other.top && this.height === other.height;
  }

  draw() {
    const dom = document.createElement("div");
    dom.className = "remote-caret";
    dom.setAttribute("aria-hidden", "true");
    const label = document.createElement("span");
    label.className = "remote-caret-label";
    dom.append(label);
    this.fill(dom, true);
    return dom;
  }

  update(dom, old) {
    if (dom.dataset.id !== this.caret.id) return false;
    this.fill(dom, old.caret.seq !== this.caret.seq);
    return true;
  }

  fill(dom, moved) {
    const c = this.caret;
    dom.dataset.id = c.id;
    dom.dataset.name = c.name;
    dom.dataset.offset = String(c.head);
    dom.dataset.seq = String(c.seq);
    // Through the CSSOM: the page's CSP allows no style attribute.
    dom.style.setProperty("--hue", String(c.hue));
    dom.style.left = `${this.left}px`;
    dom.style.top = `${this.top}px`;
    dom.style.height = `${this.height}px`;
    dom.firstChild.textContent = c.name;
    if (moved) flashLabel(dom.firstChild);
  }
}

function build(view) {
  const carets = view.state.field(caretsField);
  const ranges = [];
  for (const { from, to } of view.visibleRanges) {
    for (const c of carets) {
      const start = Math.max(Math.min(c.anchor, c.head), from);
      const end = Math.min(Math.max(c.anchor, c.head), to);
      if (start < end) {
        // CodeMirror sets a decoration's style through the CSSOM (style.cssText), which
        // a Content-Security-Policy without inline styles allows.
        const attributes = { "data-name": c.name, style: `--hue: ${c.hue}` };
        ranges.push(Decoration.mark({ class: "remote-selection", attributes }).range(start, end));
      }
    }
  }
  return Decoration.set(ranges, true);
}

const selectionMarks = ViewPlugin.fromClass(
  class {
    constructor(view) {
      this.decorations = build(view);
    }

    update(u) {
      if (u.docChanged || u.viewportChanged || u.startState.field(caretsField) !== u.state.field(caretsField)) {
        this.decorations = build(u.view);
      }
    }
  },
  { decorations: (v) => v.decorations },
);

const NONE = [];

/** The remote carets a state holds ([{id, name, hue, anchor, head, seq}], current text). */
export function caretsOf(state) {
  return state.field(caretsField, false) || NONE;
}

const caretMarkers = layer({
  above: true,
  class: "remote-carets",
  update: (u) => u.docChanged || u.viewportChanged || u.geometryChanged ||
    u.startState.field(caretsField) !== u.state.field(caretsField),
  markers(view) {
    const markers = [];
    const { from, to } = view.viewport;
    for (const c of view.state.field(caretsField)) {
      if (c.head < from || c.head > to) continue;
      const [rect] = RectangleMarker.forRange(view, "", EditorSelection.cursor(c.head, -1));
      if (rect) markers.push(new CaretMarker(c, rect.left, rect.top, rect.height));
    }
    return markers;
  },
});

// The layer takes no pointer events (a click on a caret is a click in the text there),
// so hovering is found here: a caret's name shows while the pointer is within 5 px of it.
const HOVER_PX = 5;
const caretHover = EditorView.domEventHandlers({
  mousemove(e, view) {
    const carets = view.dom.querySelector(".remote-carets");
    if (!carets || !carets.firstChild) return false;
    for (const el of carets.children) {
      const r = el.getBoundingClientRect();
      const near = e.clientY >= r.top && e.clientY <= r.bottom && Math.abs(e.clientX - r.left) <= HOVER_PX;
      if (el.classList.contains("hover") !== near) el.classList.toggle("hover", near);
    }
    return false;
  },
  mouseleave(_e, view) {
    for (const el of view.dom.querySelectorAll(".remote-carets .hover")) el.classList.remove("hover");
    return false;
  },
});

/** The extension: add it to a view with StateEffect.appendConfig. */
export const remoteCarets = [caretsField, selectionMarks, caretMarkers, caretHover];

/** Show `carets` ([{id, name, hue, anchor, head}] in the view's current text). */
export function showCarets(view, carets) {
  const n = view.state.doc.length;
  const before = new Map(view.state.field(caretsField).map((c) => [c.id, c]));
  const next = carets.map((c) => {
    const anchor = Math.max(0, Math.min(c.anchor, n));
    const head = Math.max(0, Math.min(c.head, n));
    const old = before.get(c.id);
    const moved = !old || old.anchor !== anchor || old.head !== head;
    return { ...c, anchor, head, seq: old ? old.seq + (moved ? 1 : 0) : 0 };
  });
  view.dispatch({ effects: setCarets.of(next) });
}

/** Scroll `name`'s caret into the middle of the view; false if they have none. */
export function scrollToCaret(view, name) {
  const caret = view.state.field(caretsField).find((c) => c.name === name);
  if (!caret) return false;
  view.dispatch({ effects: EditorView.scrollIntoView(caret.head, { y: "center" }) });
  return true;
}
