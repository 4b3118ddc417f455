// Binds a <textarea> to the sync client: each input event becomes one delta, remote
// changes are written back keeping caret, selection and scroll, and the undo keys go
// to the server (the browser's own undo stack would fight the shared text).

import { anchoredDiff, apply, transformIndex, hasLoneSurrogate } from "./delta.js";

/**
 * @param {HTMLTextAreaElement} ta  its value must equal the sync client's local text
 * @param {object} h
 * @param {(delta: object[]) => void} h.onEdit
 * @param {() => void} h.onUndo
 * @param {() => void} h.onRedo
 * @param {() => void} [h.onCompositionEnd]  a composition was committed
 */
export function bindTextarea(ta, h) {
  let prev = ta.value; // the value the sync client knows about
  let anchor = null; // the selection just before the current input event
  let composing = false;
  let compositionAnchor = null;

  function commit(at) {
    let next = ta.value;
    if (next === prev) return;
    const d = next.length - prev.length;
    const a = at || {
      // No beforeinput seen: the caret after the edit tells where it ended.
      start: Math.max(0, ta.selectionEnd - Math.max(d, 0)),
      end: Math.max(0, ta.selectionEnd - Math.max(d, 0)),
      backward: false,
    };
    let delta = anchoredDiff(prev, next, a.start, a.end, a.backward);
    const inserted = delta.find((op) => op.insert !== undefined);
    if (inserted && hasLoneSurrogate(inserted.insert)) {
      // The server rejects lone surrogates; swap them for U+FFFD (same length, so
      // the selection stays valid) in the text area too.
      next = next.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
      writeValue(next, ta.selectionStart, ta.selectionEnd, ta.selectionDirection);
      delta = anchoredDiff(prev, next, a.start, a.end, a.backward);
    }
    prev = next;
    h.onEdit(delta);
  }

  function writeValue(value, start, end, direction) {
    const { scrollTop, scrollLeft } = ta;
    ta.value = value;
    ta.setSelectionRange(start, end, direction);
    // Setting the value (and the selection) may scroll; put the view back where it
    // was, in the same task, so nothing flickers.
    ta.scrollTop = scrollTop;
    ta.scrollLeft = scrollLeft;
  }

  // Apply a small remote change in place (setRangeText) rather than replacing the whole
  // value, which makes the browser re-lay out a large document on every keystroke of
  // someone else. Returns false (nothing changed) when the whole value should be written.
  function patchValue(delta, next) {
    const edits = delta.filter((op) => op.retain === undefined).length;
    if (edits === 0) return ta.value === next;
    if (edits > 16) return false;
    const { scrollTop, scrollLeft } = ta;
    let pos = 0;
    for (const op of delta) {
      if (op.retain !== undefined) pos += op.retain;
      else if (op.delete !== undefined) ta.setRangeText("", pos, pos + op.delete);
      else {
        ta.setRangeText(op.insert, pos, pos);
        pos += op.insert.length;
      }
    }
    ta.scrollTop = scrollTop;
    ta.scrollLeft = scrollLeft;
    return ta.value === next; // if not, the caller writes the whole value
  }

  ta.addEventListener("beforeinput", (e) => {
    if (e.inputType === "historyUndo" || e.inputType === "historyRedo") {
      // Edit menu / context menu undo: same as the keys.
      e.preventDefault();
      if (e.inputType === "historyUndo") h.onUndo();
      else h.onRedo();
      return;
    }
    if (composing || e.isComposing) return;
    if (ta.value !== prev) commit(null); // something changed without an input event
    anchor = {
      start: ta.selectionStart,
      end: ta.selectionEnd,
      backward: /Backward$/.test(e.inputType || ""),
    };
  });

  ta.addEventListener("input", (e) => {
    if (composing || e.isComposing) return; // the whole composition is one edit, at its end
    const at = anchor;
    anchor = null;
    commit(at);
  });

  ta.addEventListener("compositionstart", () => {
    if (ta.value !== prev) commit(null);
    composing = true;
    compositionAnchor = { start: ta.selectionStart, end: ta.selectionEnd, backward: false };
  });

  ta.addEventListener("compositionend", () => {
    composing = false;
    const at = compositionAnchor;
    compositionAnchor = null;
    anchor = null;
    commit(at);
    if (h.onCompositionEnd) h.onCompositionEnd();
  });

  ta.addEventListener("keydown", (e) => {
    if (e.isComposing || e.altKey) return;
    const key = (e.key || "").toLowerCase();
    const mod = e.ctrlKey || e.metaKey;
    if (mod && key === "z") {
      e.preventDefault();
      if (e.shiftKey) h.onRedo();
      else h.onUndo();
    } else if (e.ctrlKey && !e.metaKey && !e.shiftKey && key === "y") {
      e.preventDefault();
      h.onRedo();
    }
  });

  return {
    /** True while an IME composition is open: remote changes must wait. */
    isComposing: () => composing,

    /** [start, end] of the selection in the text the sync client knows. */
    selection: () => [ta.selectionStart, ta.selectionEnd],

    /** Records any change the page has not reported yet (call before applying remote changes). */
    catchUp() {
      if (!composing && ta.value !== prev) commit(null);
    },

    /**
     * Applies a remote change (a delta on the current value; `next` is the result if
     * the caller has it). The caret stays before text inserted exactly at it; a
     * selection does not grow at either end.
     */
    applyRemote(delta, next = apply(prev, delta)) {
      const s = ta.selectionStart;
      const e = ta.selectionEnd;
      let ns;
      let ne;
      if (s === e) {
        ns = ne = transformIndex(delta, s, true);
      } else {
        ns = transformIndex(delta, s, false);
        ne = Math.max(ns, transformIndex(delta, e, true));
      }
      const direction = ta.selectionDirection;
      prev = next;
      if (!patchValue(delta, next)) {
        writeValue(next, ns, ne, direction);
        return;
      }
      const { scrollTop, scrollLeft } = ta;
      ta.setSelectionRange(ns, ne, direction);
      ta.scrollTop = scrollTop;
      ta.scrollLeft = scrollLeft;
    },
  };
}
