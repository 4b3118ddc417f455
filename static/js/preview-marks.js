// In the preview, a thin mark in each person's colour beside the block their caret is in.
//
// The preview's blocks (<section class="block" data-len>, collab/preview.py) are laid
// over the editor's text: blocks follow each other separated by blank lines only, and
// `data-len` is each block's length in UTF-16 units, so a walk over the sections finds
// where each block starts. It goes only as far as the furthest caret, and starts again
// when the preview's blocks change; meanwhile the carets are mapped back through the
// edits made since, to the text the walk is made on. The text the preview shows may trail the editor's by the edits not yet
// rendered (a tenth of a second): a caret right at a block's edge may be shown beside
// its neighbour until the next preview arrives.
//
// A mark is `<span class="preview-mark" data-name>` inside the block. Its colour is
// set through the CSSOM (element.style), never a style attribute: the page's
// Content-Security-Policy allows no inline styles.

import { ChangeSet } from "@codemirror/state";
import { ViewPlugin } from "@codemirror/view";
import { caretsOf } from "./carets.js";

/** True when the line holds only spaces and tabs (the preview's blank line). A Line
 * carries its text already; the test stops at its first other character. */
const isBlank = (line) => /^[ \t]*$/.test(line.text);

/**
 * Finds where each block starts in `doc` (a CodeMirror Text), one block at a time, given
 * the blocks' lengths in order. Each block starts on the first non-blank line at or after
 * the end of the one before (a block ends at the end of a line).
 */
export class BlockWalk {
  /** @param {import("@codemirror/state").Text} doc */
  constructor(doc) {
    this.doc = doc;
    this.pos = 0; // where the last block ended
  }

  /** The start of the next block, `length` UTF-16 units long. */
  next(length) {
    const doc = this.doc;
    // A block ends at the end of a line: the next one starts on a later line.
    let line = doc.lineAt(Math.min(this.pos + (this.pos > 0 ? 1 : 0), doc.length));
    if (this.pos > line.from && line.number < doc.lines) line = doc.line(line.number + 1);
    while (isBlank(line) && line.number < doc.lines) line = doc.line(line.number + 1);
    const start = Math.max(this.pos, line.from);
    this.pos = Math.min(start + length, doc.length);
    return start;
  }
}

/**
 * Where each block starts in `doc`, given the blocks' lengths in order (BlockWalk).
 * @param {import("@codemirror/state").Text} doc
 * @param {number[]} lengths
 * @returns {number[]}
 */
export function layBlocks(doc, lengths) {
  const walk = new BlockWalk(doc);
  return lengths.map((length) => walk.next(length));
}

/** The index of the block holding `pos`: the last one starting at or before it (a caret
 * on the blank lines after a block is still in it; one before the first is in the first). */
export function blockAt(starts, pos) {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// (Attributes, not `dataset`: a big preview has thousands of blocks to look at.)
const isBlock = (el) => el.localName === "section" && el.hasAttribute("data-len") && el.classList.contains("block");

/** The first block at or after `el` (an element of #preview, or null). */
function blockFrom(el) {
  while (el && !isBlock(el)) el = el.nextElementSibling;
  return el;
}

/**
 * The blocks of one preview laid over the text as it was when the preview changed,
 * walked only as far as a caret needs: a big document's thousands of blocks cost
 * nothing while everyone works near its top, and the walk is kept until the preview
 * changes again. `since` is what the text went through after that moment.
 */
export class Layout {
  constructor(preview, doc) {
    this.walk = new BlockWalk(doc); // on that text: a CodeMirror Text never changes
    this.sections = [];
    this.starts = [];
    this.following = blockFrom(preview.firstElementChild);
    this.since = ChangeSet.empty(doc.length).desc;
  }

  /** The block holding `pos` (in the text of the walk), or null if there is none. */
  sectionAt(pos) {
    const { sections, starts } = this;
    // Walk on until a block starts past pos: the one before it holds pos.
    while (this.following && (!starts.length || starts[starts.length - 1] <= pos)) {
      sections.push(this.following);
      starts.push(this.walk.next(Number(this.following.getAttribute("data-len")) || 0));
      this.following = blockFrom(this.following.nextElementSibling);
    }
    return sections.length ? sections[blockAt(starts, pos)] : null;
  }
}

/**
 * The extension: marks in `#preview` (found by id, since htmx may replace it whole).
 * @param {Document} doc
 */
export function previewMarks(doc = document) {
  return ViewPlugin.fromClass(
    class {
      constructor(view) {
        this.view = view;
        this.layout = null; // a Layout; null when the preview changed since
        this.marks = new Map(); // caret id -> its mark (in the block where it was put)
        this.frame = 0;
        this.watched = null;
        this.inner = new MutationObserver(() => this.previewChanged());
        const preview = doc.getElementById("preview");
        this.outer = new MutationObserver(() => this.previewChanged());
        if (preview && preview.parentElement) this.outer.observe(preview.parentElement, { childList: true });
        this.previewChanged();
      }

      update(u) {
        if (u.docChanged && this.layout) this.layout.since = this.layout.since.composeDesc(u.changes.desc);
        if (u.docChanged || caretsOf(u.startState) !== caretsOf(u.state)) this.schedule();
      }

      /** Blocks came, went or were replaced: walk again (when next needed). */
      previewChanged() {
        const preview = doc.getElementById("preview");
        if (preview !== this.watched) {
          this.inner.disconnect();
          if (preview) this.inner.observe(preview, { childList: true });
          this.watched = preview;
        }
        this.layout = null;
        this.schedule();
      }

      schedule() {
        if (!this.frame) this.frame = requestAnimationFrame(() => this.draw());
      }

      draw() {
        this.frame = 0;
        const preview = this.watched;
        if (!preview) return;
        const carets = caretsOf(this.view.state);
        const wanted = new Map(); // section -> Map(caret id -> caret)
        if (carets.length) {
          this.layout ||= new Layout(preview, this.view.state.doc);
          const back = this.layout.since.empty ? null : this.layout.since.invertedDesc;
          for (const c of carets) {
            const section = this.layout.sectionAt(back ? back.mapPos(c.head, -1) : c.head);
            if (!section) break; // a preview without blocks
            if (!wanted.has(section)) wanted.set(section, new Map());
            wanted.get(section).set(c.id, c);
          }
        }
        // Keep the marks that are still right, take away the others (a block htmx
        // replaced took its marks with it), add the missing ones.
        for (const [id, mark] of this.marks) {
          const c = wanted.get(mark.parentElement)?.get(id);
          if (c && mark.isConnected && c.name === mark.dataset.name && String(c.hue) === mark.dataset.hue) continue;
          mark.remove();
          this.marks.delete(id);
        }
        for (const [section, people] of wanted) {
          let slot = 0;
          for (const c of people.values()) {
            let mark = this.marks.get(c.id);
            if (!mark) {
              mark = doc.createElement("span");
              mark.className = "preview-mark";
              mark.setAttribute("aria-hidden", "true");
              mark.dataset.id = c.id;
              mark.dataset.name = c.name;
              mark.dataset.hue = String(c.hue);
              mark.title = c.name;
              mark.style.setProperty("--hue", String(c.hue)); // CSSOM: allowed by the CSP
              section.append(mark); // last: CSS that styles a block's first child is unaffected
              this.marks.set(c.id, mark);
            }
            mark.style.setProperty("--slot", String(slot++)); // side by side in one block
          }
        }
      }

      destroy() {
        if (this.frame) cancelAnimationFrame(this.frame);
        for (const mark of this.marks.values()) mark.remove();
        this.inner.disconnect();
        this.outer.disconnect();
      }
    },
  );
}
