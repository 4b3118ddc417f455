"""The Markdown preview, rendered, cached and sent per top-level block.

Rendering a whole 1 MB document costs ~100 ms and sending it to every editor costs 1 MB
per keystroke, so the preview works on *blocks*: the source is cut into top-level blocks
by a cheap line scan, each block is rendered on its own (markdown-it-py, then nh3), the
result is cached by block source, and after an edit only the blocks that changed travel,
as htmx 2 out-of-band swaps. The blocks come from collab/blocks.py, the rendering
policy (which Markdown, which HTML survives) from collab/markdown.py.

Known differences from rendering the whole document at once (besides the split's own,
in collab/blocks.py):

- Link reference definitions are collected document-wide (first definition wins, as in
  CommonMark) and handed to each block's render, so ``[text][ref]`` resolves across
  blocks. A block is re-rendered (same id, swapped in place) when a definition it may use
  changes.
- Whitespace between elements, and trailing blank lines inside an unclosed fence, may
  differ (invisible).
- Raw HTML is sanitised per block, so an unclosed tag or comment in one block cannot
  swallow the blocks after it (whole-document sanitising would).

Ids and updates
---------------
A block's id is ``b-<12 hex of blake2b(source)>-<n>``; n tells identical blocks apart (a
fresh render numbers them 0, 1, ... in order; after that a block keeps its number, and a
new copy takes the smallest free one, so editing one of fifty ``---`` moves no other id).
Ids are unique, and a block whose text did not change keeps its id.

``update`` finds the edited range (common prefix and suffix of old and new text), re-splits
from one block before it until the split lines up with the old one again, diffs the id
lists and renders only new blocks. It costs ~0.5-1 ms for a keystroke in a 1 MB document;
an edit that really changes everything after it (typing an opening fence near the top)
costs a re-render of that rest, ~100-200 ms, and sends it.

The fragment, applied by htmx 2's ``oobSwap`` (hx-ws feeds it each top-level element):
deletions ``<section id="b-.." hx-swap-oob="delete">`` first (an id may come back
elsewhere), then in-place refreshes ``<section id="b-.." hx-swap-oob="true">`` (outerHTML),
then insertions ``<div hx-swap-oob="afterend:#b-prev">`` or ``afterbegin:#preview``: for
those (non-inline) styles htmx inserts the wrapper's *children*, so the wrapper needs no
id; runs of new blocks share a wrapper, and each anchor exists by the time it is used.

The state is not thread-safe: one room drives one PreviewState (run it off the event
loop if you like, one call at a time). The render cache is shared and locked.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from markdown_it.common.utils import normalizeReference

from collab.blocks import iter_blocks, lead_end, word_count
from collab.delta import common_prefix, common_suffix, utf16_len
from collab.markdown import Refs, cached_render, definitions

__all__ = ["Block", "PreviewState"]

# ---------------------------------------------------------------------------------------
# Blocks, ids, link references
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    id: str
    source: str
    inner: str  # sanitised HTML of the block's content

    def section(self, swap_oob: str = "") -> str:
        """The block's element. `data-len` is its source's length in UTF-16 units: the
        page lays the blocks over its text with it (blocks are separated by blank lines
        only) to find the block each person's caret is in (static/js/preview-marks.js).
        It depends on the source only, as the id does, so a kept block never goes stale.
        An f-string, not a template: a 1 MB document has ~2,600 blocks, which a Django
        template loop joins in ~37 ms against ~3 ms here."""
        oob = f' hx-swap-oob="{swap_oob}"' if swap_oob else ""
        return (
            f'<section id="{self.id}" class="block" data-len="{utf16_len(self.source)}"'
            f"{oob}>{self.inner}</section>"
        )

    @property
    def html(self) -> str:
        return self.section()


def _hash(source: str) -> str:
    return hashlib.blake2b(source.encode(), digest_size=6).hexdigest()


# The contents of every innermost [...]: a superset of the labels a block may refer to.
_BRACKETS = re.compile(r"\[((?:[^\[\]\\]|\\.){1,999})\]", re.S)


def _labels(source: str) -> frozenset[str]:
    if "[" not in source:
        return frozenset()
    return frozenset(normalizeReference(m) for m in _BRACKETS.findall(source))


class _SmallCache(OrderedDict[str, Any]):
    """A tiny LRU for per-source facts (labels, definitions)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def fetch(self, key: str, make: Any) -> Any:
        value = self.get(key)
        if value is None:
            value = make(key)
            self[key] = value
            if len(self) > self.size:
                self.popitem(last=False)
        else:
            self.move_to_end(key)
        return value


class PreviewState:
    """The preview of one document as its editors last received it.

    `render_full(text)` renders everything and makes that the baseline; `update(text)`
    returns the htmx out-of-band fragment that turns the baseline into `text`'s preview
    (only changed blocks) and makes `text` the new baseline.
    """

    def __init__(self, block_limit: int | None = None) -> None:
        # A live preview shows a note instead of a block longer than `block_limit`
        # characters (a 1 MB table or list is one block: re-rendering it per keystroke
        # takes seconds and sends megabytes). Exports render everything (None).
        self._block_limit = block_limit
        self._text = ""
        self._lead = 0
        self._sources: list[str] = []
        self._spans: list[int] = []  # source + separator length of each block
        self._hashes: list[str] = []
        self._ids: list[str] = []
        self._inners: list[str] = []
        self._words: list[int] = []
        self._used: dict[str, set[int]] = {}  # numbers in use per source hash
        self._refs: dict[str, tuple[str, str]] = {}
        self._labels = _SmallCache(8192)
        self._defs = _SmallCache(1024)

    # -- public ------------------------------------------------------------------------

    @property
    def text(self) -> str:
        return self._text

    @property
    def blocks(self) -> list[Block]:
        return [
            Block(i, s, h) for i, s, h in zip(self._ids, self._sources, self._inners, strict=True)
        ]

    @property
    def words(self) -> int:
        """word_count(text), from per-block counts (cheap after an edit)."""
        return sum(self._words)

    def render_full(self, text: str) -> list[Block]:
        self._text = text
        self._lead = lead_end(text)
        spans = list(iter_blocks(text, self._lead))
        self._sources = [text[s:e] for s, e, _ in spans]
        self._spans = [nxt - s for s, _, nxt in spans]
        self._hashes = [_hash(s) for s in self._sources]
        self._ids = []
        self._used = {}
        for h in self._hashes:
            taken = self._used.setdefault(h, set())
            self._ids.append(f"b-{h}-{len(taken)}")
            taken.add(len(taken))
        self._refs = self._collect_refs(self._sources)
        self._inners = [self._render(s) for s in self._sources]
        self._words = [word_count(s) for s in self._sources]
        return self.blocks

    def update(self, text: str) -> str | None:
        old_text = self._text
        if text == old_text:
            return None
        old_ids = self._ids
        old_inners = self._inners
        i, j, region = self._resplit(text)

        old_region = self._sources[i:j]
        new_region = [text[s:e] for s, e, _ in region]
        new_hashes = [_hash(s) for s in new_region]
        old_region_hashes = self._hashes[i:j]
        self._text = text
        self._sources[i:j] = new_region
        self._spans[i:j] = [nxt - s for s, _, nxt in region]
        self._hashes[i:j] = new_hashes
        self._words[i:j] = [word_count(s) for s in new_region]

        ids = old_ids[:i] + self._number(old_region_hashes, old_ids[i:j], new_hashes) + old_ids[j:]
        self._ids = ids

        refs_changed: set[str] = set()
        if any("]:" in s for s in old_region) or any("]:" in s for s in new_region):
            refs = self._collect_refs(self._sources)
            if refs != self._refs:
                keys = refs.keys() | self._refs.keys()
                refs_changed = {k for k in keys if refs.get(k) != self._refs.get(k)}
                self._refs = refs

        # Only the re-split region can differ; trim the ids it kept.
        lo, hi_old, hi_new = i, j, i + len(new_region)
        while lo < hi_old and lo < hi_new and old_ids[lo] == ids[lo]:
            lo += 1
        while hi_old > lo and hi_new > lo and old_ids[hi_old - 1] == ids[hi_new - 1]:
            hi_old -= 1
            hi_new -= 1

        # Inner HTML: kept blocks keep theirs (unless a link definition they use changed).
        inners = old_inners[:lo] + [""] * (hi_new - lo) + old_inners[hi_old:]
        where = {old_ids[k]: k for k in range(lo, hi_old)}
        for k in range(lo, hi_new):
            old_k = where.get(ids[k])
            inners[k] = old_inners[old_k] if old_k is not None else self._render(self._sources[k])
        refreshed: list[int] = []
        if refs_changed:
            for k, src in enumerate(self._sources):
                if self._labels.fetch(src, _labels) & refs_changed:
                    html = self._render(src)
                    if html != inners[k]:
                        inners[k] = html
                        refreshed.append(k)
        self._inners = inners

        return self._fragment(old_ids[lo:hi_old], ids, lo, hi_new, refreshed)

    # -- internals ---------------------------------------------------------------------

    def _resplit(self, text: str) -> tuple[int, int, list[tuple[int, int, int]]]:
        """Re-split the edited part: old blocks [i, j) become the returned new spans."""
        old = self._text
        p = common_prefix(old, text)
        s = common_suffix(old, text, min(len(old), len(text)) - p)
        delta = len(text) - len(old)
        spans = self._spans
        nold = len(spans)

        # k: the old block whose span holds p; start over one block earlier, since the
        # edit may join its first chunk to the block before.
        k, start = 0, self._lead
        if p < self._lead or nold == 0:
            k = 0
        elif p > len(old) // 2:
            start = len(old)
            k = nold
            while k > 0:
                start -= spans[k - 1]
                k -= 1
                if start <= p:
                    break
        else:
            while k < nold - 1 and start + spans[k] <= p:
                start += spans[k]
                k += 1
        if k > 0:
            k -= 1
            start -= spans[k]
        i = k
        if i == 0 or p < self._lead:
            i, start = 0, lead_end(text)
            old_pos = self._lead
            self._lead = start
        else:
            old_pos = start

        changed_end = len(text) - s
        j = i
        region: list[tuple[int, int, int]] = []
        for span in iter_blocks(text, start):
            q = span[0]
            if q >= changed_end:
                target = q - delta
                while j < nold and old_pos < target:
                    old_pos += spans[j]
                    j += 1
                if old_pos == target:
                    return i, j, region  # in step with the old split again
            region.append(span)
        return i, nold, region

    def _number(self, gone: list[str], gone_ids: list[str], came: list[str]) -> list[str]:
        """Ids for the re-split region's blocks. A block that is still there keeps its
        number; a new copy of an existing block takes the smallest free number. Numbers
        are never shuffled, so editing one of many identical blocks moves no other id
        (ids thus depend on the edit history; render_full numbers them afresh)."""
        used = self._used
        released: dict[str, list[int]] = {}
        for h, bid in zip(gone, gone_ids, strict=True):
            n = int(bid.rsplit("-", 1)[1])
            used[h].discard(n)
            released.setdefault(h, []).append(n)
        ids = []
        for h in came:
            free = released.get(h)
            taken = used.setdefault(h, set())
            if free:
                n = free.pop(0)
            else:
                n = 0
                while n in taken:
                    n += 1
            taken.add(n)
            ids.append(f"b-{h}-{n}")
        for h in released:
            if not used.get(h):
                used.pop(h, None)
        return ids

    def _collect_refs(self, sources: Sequence[str]) -> dict[str, tuple[str, str]]:
        refs: dict[str, tuple[str, str]] = {}
        for src in sources:
            if "]:" in src:
                for label, value in self._defs.fetch(src, definitions).items():
                    refs.setdefault(label, value)  # the first definition wins
        return refs

    def _render(self, source: str) -> str:
        if self._block_limit is not None and len(source) > self._block_limit:
            size = len(source.encode()) // 1024
            return (
                f'<p class="preview-note">This block is too large to preview live '
                f"({size} KB). Download the document as a web page to see it rendered.</p>"
            )
        refs: Refs = ()
        if self._refs:
            used = self._labels.fetch(source, _labels)
            if used:
                refs = tuple(sorted((lb, *self._refs[lb]) for lb in used if lb in self._refs))
        return cached_render(source, refs)

    def _fragment(
        self, gone: list[str], ids: list[str], lo: int, hi: int, refreshed: list[int]
    ) -> str | None:
        """Deletions first (an id may come back in a new place), then in-place refreshes,
        then insertions in document order, each after the block before it."""
        old_mid, new_mid = gone, ids[lo:hi]
        deleted: list[str] = []
        inserted: list[int] = []
        if old_mid or new_mid:
            ops = SequenceMatcher(None, old_mid, new_mid, autojunk=False).get_opcodes()
            for tag, a1, a2, b1, b2 in ops:
                if tag != "equal":
                    deleted.extend(old_mid[a1:a2])
                    inserted.extend(range(lo + b1, lo + b2))
        inserted_set = set(inserted)
        refreshed = [k for k in refreshed if k not in inserted_set]
        if not (deleted or inserted or refreshed):
            return None
        out: list[str] = [f'<section id="{d}" hx-swap-oob="delete"></section>' for d in deleted]
        for k in refreshed:
            out.append(Block(ids[k], self._sources[k], self._inners[k]).section("true"))
        # Runs of consecutive new blocks go in one wrapper; htmx inserts its children.
        run: list[str] = []
        for n, k in enumerate(inserted):
            run.append(Block(ids[k], self._sources[k], self._inners[k]).html)
            if n + 1 == len(inserted) or inserted[n + 1] != k + 1:
                start = k - len(run) + 1
                where = "afterbegin:#preview" if start == 0 else f"afterend:#{ids[start - 1]}"
                out.append(f'<div hx-swap-oob="{where}">{"".join(run)}</div>')
                run = []
        return "".join(out)
