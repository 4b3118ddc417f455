// In the preview, a thin mark in each person's colour beside the block their caret is in.
//
// The preview's blocks (<section class="block" data-len>, collab/preview.py) are laid
// over the editor's text: blocks follow each other separated by blank lines only, and
// `data-len` is each block's length in UTF-16 units, so one walk over the sections finds
// where each block starts. The walk is redone when the preview's blocks change; between
// walks the carets are mapped back through the edits made since, to the text the walk
// was made on. The text the preview shows may trail the editor's by the edits not yet
// rendered (a tenth of a second): a caret right at a block's edge may be shown beside
// its neighbour until the next preview arrives.
//
// A mark is `<span class="preview-mark" data-name>` inside the block. Its colour is
// set through the CSSOM (element.style), never a style attribute: the page's
// Content-Security-Policy allows no inline styles.

import { ChangeSet } from "@codemirror/state";
import { ViewPlugin } from "@codemirror/view";
import { caretsOf } from "./carets.js";

/** True when the line holds only spaces and tabs (the preview's blank line). */
function isBlank(doc, line) {
  const head = doc.sliceString(line.from, Math.min(line.to, line.from + 64));
  if (/[^ \t]/.test(head)) return false;
  return line.to - line.from <= 64 || !/[^ \t]/.test(doc.sliceString(line.from, line.to));
}

/**
 * Where each block starts in `doc` (a CodeMirror Text), given the blocks' lengths in
 * order. Each block starts on the first non-blank line at or after the end of the one
 * before (a block ends at the end of a line).
 * @param {import("@codemirror/state").Text} doc
 * @param {number[]} lengths
 * @returns {number[]}
 */
export function layBlocks(doc, lengths) {
  const starts = [];
  let pos = 0;
  for (const length of lengths) {
    let line = doc.lineAt(Math.min(pos, doc.length));
    if (pos > line.from && line.number < doc.lines) line = doc.line(line.number + 1);
    while (isBlank(doc, line) && line.number < doc.lines) line = doc.line(line.number + 1);
    const start = Math.max(pos, line.from);
    starts.push(start);
    pos = Math.min(start + length, doc.length);
  }
  return starts;
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

const sectionsOf = (preview) => Array.from(preview.children).filter((el) => el.matches("section.block[data-len]"));

/**
 * The extension: marks in `#preview` (found by id, since htmx may replace it whole).
 * @param {Document} doc
 */
export function previewMarks(doc = document) {
  return ViewPlugin.fromClass(
    class {
      constructor(view) {
        this.view = view;
        this.layout = null; // {starts, sections, since}: null when the preview changed
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
          if (!this.layout) {
            const sections = sectionsOf(preview);
            const starts = layBlocks(this.view.state.doc, sections.map((s) => Number(s.dataset.len) || 0));
            this.layout = { sections, starts, since: ChangeSet.empty(this.view.state.doc.length).desc };
          }
          const { sections, starts, since } = this.layout;
          if (sections.length) {
            const back = since.empty ? null : since.invertedDesc;
            for (const c of carets) {
              const section = sections[blockAt(starts, back ? back.mapPos(c.head, -1) : c.head)];
              if (!wanted.has(section)) wanted.set(section, new Map());
              wanted.get(section).set(c.id, c);
            }
          }
        }
        // Keep the marks that are still right, take away the others, add the missing ones.
        const kept = new Map(); // caret id -> mark
        for (const mark of preview.querySelectorAll(".preview-mark")) {
          const c = wanted.get(mark.parentElement)?.get(mark.dataset.id);
          if (c && c.name === mark.dataset.name && String(c.hue) === mark.dataset.hue) kept.set(c.id, mark);
          else mark.remove();
        }
        for (const [section, people] of wanted) {
          let slot = 0;
          for (const c of people.values()) {
            let mark = kept.get(c.id);
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
            }
            mark.style.setProperty("--slot", String(slot++)); // side by side in one block
          }
        }
      }

      destroy() {
        if (this.frame) cancelAnimationFrame(this.frame);
        this.inner.disconnect();
        this.outer.disconnect();
      }
    },
  );
}
