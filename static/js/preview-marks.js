// In the preview, a thin mark in each person's colour beside the block their caret is in.
//
// The preview's blocks (<section class="block" data-len>, collab/preview.py) are laid
// over the editor's text: blocks follow each other separated by blank lines only, and
// `data-len` is each block's length in UTF-16 units, so a walk over the sections finds
// where each block starts. It goes only as far as the furthest caret, and starts again
// from the first block changed when the preview's blocks change; meanwhile the carets
// are mapped back through the edits made since, to the text the walk is made on. The text the preview shows may trail the editor's by the edits not yet
// rendered (a tenth of a second): a caret right at a block's edge may be shown beside
// its neighbour until the next preview arrives.
//
// A mark is `<span class="preview-mark" data-name>` inside the block. Its colour is
// set through the CSSOM (element.style), never a style attribute: the page's
// Content-Security-Policy allows no inline styles.
//
// The same layout makes the preview follow the text: when the editor scrolls, the
// preview's pane scrolls to the block at the top of the editor's view (and as far into
// it as the view is into that block's text). One way only: scrolling the preview moves
// nothing else, so the two never chase each other.

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
  constructor(doc, pos = 0) {
    this.doc = doc;
    this.pos = pos; // where the last block ended
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
 * The blocks of the preview laid over the text, walked only as far as a caret needs: a
 * big document's thousands of blocks cost nothing while everyone works near its top.
 * When the preview changes, the blocks before the first one it changed (and before the
 * first edit since) are kept, so typing at the end of a big document walks one block
 * again, not all of them; what is kept is exactly what a new walk would find. `since`
 * is what the text went through after the walk's text.
 */
export class Layout {
  /** @param {Element} preview  @param {import("@codemirror/state").Text} doc */
  constructor(preview, doc, kept = null) {
    this.sections = kept ? kept.sections : [];
    this.starts = kept ? kept.starts : [];
    this.ends = kept ? kept.ends : [];
    this.index = kept ? kept.index : new Map(); // section -> its place in `sections`
    const last = this.sections[this.sections.length - 1];
    this.walk = new BlockWalk(doc, last ? this.ends[this.ends.length - 1] : 0);
    this.following = blockFrom(last ? last.nextElementSibling : preview.firstElementChild);
    this.since = ChangeSet.empty(doc.length).desc;
    this.changedFrom = Infinity; // the first walked block the preview changed
  }

  /** `pos` in the current text, as a position in the text of the walk. */
  inWalk(pos) {
    return this.since.empty ? pos : this.since.invertedDesc.mapPos(pos, -1);
  }

  /** The block holding `pos` (in the text of the walk), or null if there is none. */
  sectionAt(pos) {
    const { sections, starts } = this;
    // Walk on until a block starts past pos: the one before it holds pos.
    while (this.following && (!starts.length || starts[starts.length - 1] <= pos)) {
      const section = this.following;
      this.index.set(section, sections.length);
      sections.push(section);
      starts.push(this.walk.next(Number(section.getAttribute("data-len")) || 0));
      this.ends.push(this.walk.pos);
      this.following = blockFrom(section.nextElementSibling);
    }
    return sections.length ? sections[blockAt(starts, pos)] : null;
  }

  /** htmx changed the preview's children: note the first walked block it touched. */
  noteChanges(records) {
    for (const r of records) {
      for (const node of r.removedNodes) {
        const i = this.index.get(node);
        if (i !== undefined) this.changedFrom = Math.min(this.changedFrom, i);
      }
      if (r.addedNodes.length) this.changedFrom = Math.min(this.changedFrom, this.placeAfter(r.previousSibling));
    }
  }

  /** The place in `sections` of a block put right after `node`. */
  placeAfter(node) {
    const last = this.sections[this.sections.length - 1];
    if (!node || !last) return 0;
    const i = this.index.get(node);
    if (i !== undefined) return i + 1;
    if (last.isConnected && node.isConnected && last.compareDocumentPosition(node) & Node.DOCUMENT_POSITION_FOLLOWING) {
      return this.sections.length; // after the walk
    }
    // Between walked blocks (or gone already, which sends us back to the start).
    for (let el = node.previousElementSibling; el; el = el.previousElementSibling) {
      const j = this.index.get(el);
      if (j !== undefined) return j + 1;
    }
    return 0;
  }

  /** The layout of the changed preview on `doc`, the current text: the blocks before
   * the first changed one and before the first edit since are kept. */
  renewed(preview, doc) {
    let firstEdit = Infinity;
    this.since.iterChangedRanges((fromA) => {
      firstEdit = Math.min(firstEdit, fromA);
    });
    let keep = Math.min(this.changedFrom, this.sections.length);
    while (keep > 0 && this.starts[keep - 1] >= firstEdit) keep--;
    for (const section of this.sections.slice(keep)) this.index.delete(section);
    const kept = {
      sections: this.sections.slice(0, keep),
      starts: this.starts.slice(0, keep),
      ends: this.ends.slice(0, keep),
      index: this.index,
    };
    return new Layout(preview, doc, kept);
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
        this.layout = null; // a Layout, or null
        this.stale = false; // the preview changed since the layout was made
        this.marks = new Map(); // caret id -> its mark (in the block where it was put)
        this.frame = 0;
        this.watched = null;
        this.inner = new MutationObserver((records) => this.blocksChanged(records));
        const preview = doc.getElementById("preview");
        this.outer = new MutationObserver(() => this.previewChanged());
        if (preview && preview.parentElement) this.outer.observe(preview.parentElement, { childList: true });
        this.following = 0; // a frame that will bring the preview to the text's view
        this.onScroll = () => {
          if (!this.following) this.following = requestAnimationFrame(() => this.follow());
        };
        view.scrollDOM.addEventListener("scroll", this.onScroll, { passive: true });
        this.previewChanged();
      }

      /** The layout of the preview on the current text, walked as far as needed. */
      currentLayout(preview) {
        const text = this.view.state.doc;
        if (!this.layout) this.layout = new Layout(preview, text);
        else if (this.stale) this.layout = this.layout.renewed(preview, text);
        this.stale = false;
        return this.layout;
      }

      /** Scroll the preview's pane to the block at the top of the editor's view. */
      follow() {
        this.following = 0;
        const preview = this.watched;
        const pane = preview && preview.parentElement;
        if (!pane || pane.scrollHeight <= pane.clientHeight) return;
        const { view } = this;
        const scroller = view.scrollDOM;
        if (scroller.scrollTop <= 0) {
          pane.scrollTop = 0;
          return;
        }
        // The first line at the top of the view, and how far the view is into it.
        const top = scroller.getBoundingClientRect().top;
        const line = view.lineBlockAtHeight(top - view.documentTop);
        const layout = this.currentLayout(preview);
        const pos = layout.inWalk(line.from);
        let section = layout.sectionAt(pos);
        if (!section) return;
        let i = layout.index.get(section);
        // On the blank lines after a block: the next block is the one coming into view.
        if (pos >= layout.ends[i] && i + 1 < layout.sections.length) section = layout.sections[++i];
        const start = layout.starts[i];
        const length = Math.max(1, layout.ends[i] - start);
        const into = Math.min(1, Math.max(0, (pos - start) / length));
        const offset = section.getBoundingClientRect().top - pane.getBoundingClientRect().top + pane.scrollTop;
        // In the first block, from the very top of the pane (above it is only padding),
        // so a view near the top of the text shows the top of the preview.
        pane.scrollTop = i === 0 ? into * (offset + section.offsetHeight) : offset + into * section.offsetHeight;
      }

      update(u) {
        if (u.docChanged && this.layout) this.layout.since = this.layout.since.composeDesc(u.changes.desc);
        if (u.docChanged || caretsOf(u.startState) !== caretsOf(u.state)) this.schedule();
      }

      /** #preview came or was replaced whole: walk afresh (when next needed). */
      previewChanged() {
        const preview = doc.getElementById("preview");
        if (preview !== this.watched) {
          this.inner.disconnect();
          if (preview) this.inner.observe(preview, { childList: true });
          this.watched = preview;
          this.layout = null;
        }
        this.schedule();
      }

      /** Blocks came, went or were replaced: walk again from the first one touched. */
      blocksChanged(records) {
        if (this.layout) this.layout.noteChanges(records);
        this.stale = true;
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
          const layout = this.currentLayout(preview);
          for (const c of carets) {
            const section = layout.sectionAt(layout.inWalk(c.head));
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
            // Side by side in one block. Written only when it changes: this runs in the
            // frame after every edit, and a style write makes the frame recompute styles.
            const place = String(slot++);
            if (mark.dataset.slot !== place) {
              mark.dataset.slot = place;
              mark.style.setProperty("--slot", place);
            }
          }
        }
      }

      destroy() {
        if (this.frame) cancelAnimationFrame(this.frame);
        if (this.following) cancelAnimationFrame(this.following);
        this.view.scrollDOM.removeEventListener("scroll", this.onScroll);
        for (const mark of this.marks.values()) mark.remove();
        this.inner.disconnect();
        this.outer.disconnect();
      }
    },
  );
}
