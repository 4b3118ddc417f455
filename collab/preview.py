"""The Markdown preview, rendered, cached and sent per top-level block.

Rendering a whole 1 MB document costs ~100 ms and sending it to every editor costs 1 MB
per keystroke, so the preview works on *blocks*: the source is cut into top-level blocks
by a cheap line scan, each block is rendered on its own (markdown-it-py, then nh3), the
result is cached by block source, and after an edit only the blocks that changed travel,
as htmx 2 out-of-band swaps.

Block split (a line scan, never a Markdown parse of the whole text)
-------------------------------------------------------------------
Text is cut into *chunks* at runs of blank lines (lines of only spaces and tabs). A chunk
starts a new block unless it must belong to the block before it:

- it lies inside a fenced code block (``` or ~~~, closed by a line of the same character,
  at least as long, indented at most 3 spaces, nothing else on it; an unclosed fence runs
  to the end of the document, as in CommonMark);
- it lies inside an HTML block that ends at a marker rather than a blank line
  (``<script``/``<pre``/``<style``/``<textarea``, ``<!--``, ``<?``, ``<!X``, ``<![CDATA[``);
- its first line is indented 2 or more columns (list item continuation, indented code);
- its first line is a list item of a kind (bullet character, or ``.``/``)`` for ordered
  lists) that the block already contains, so a loose list stays one list.

Joining more than needed is always safe (rendering a larger piece that starts at a true
top-level boundary gives the same HTML); only a wrong split changes the output.

Known differences from rendering the whole document at once:

- A loose list longer than 16 items may be cut before an item chosen by a hash of its first
  line (content-defined, so an edit moves no cut elsewhere): it then renders as two lists
  (``<ol start=...>`` keeps the numbering; both parts stay loose).
- Fences or ``<pre>``/comment blocks directly below a list and indented 2+ columns are
  taken to belong to the list item; a fence inside an HTML block is taken for a fence.
  Both are rare and only misplace a split.
- Link reference definitions are collected document-wide (first definition wins, as in
  CommonMark) and handed to each block's render, so ``[text][ref]`` resolves across
  blocks. A block is re-rendered (same id, swapped in place) when a definition it may use
  changes.
- No linkify (it needs linkify-it-py, an extra dependency).

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
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import normalizeReference
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

__all__ = ["Block", "PreviewState", "render_markdown", "split_blocks", "word_count"]

# ---------------------------------------------------------------------------------------
# Rendering one block
# ---------------------------------------------------------------------------------------

_TASK = re.compile(r"\[([ xX])\][ \t]")
_ALIGN = re.compile(r"text-align:(left|center|right)")


def _tandem_tweaks(state: StateCore) -> None:
    """Task-list checkboxes, and table alignment as `align` (nh3 drops every `style`)."""
    tokens = state.tokens
    for i, tok in enumerate(tokens):
        if tok.type in ("th_open", "td_open"):
            style = tok.attrGet("style")
            if style:
                tok.attrs.pop("style", None)
                m = _ALIGN.search(str(style))
                if m:
                    tok.attrSet("align", m.group(1))
        elif (
            tok.type == "inline"
            and i >= 2
            and tokens[i - 1].type == "paragraph_open"
            and tokens[i - 2].type == "list_item_open"
            and tok.children
            and tok.children[0].type == "text"
        ):
            first = tok.children[0]
            m = _TASK.match(first.content)
            if not m:
                continue
            box = Token("html_inline", "", 0)
            checked = " checked" if m.group(1) != " " else ""
            box.content = f'<input type="checkbox"{checked}> '
            first.content = first.content[m.end() :]
            tok.children.insert(0, box)
            tokens[i - 2].attrSet("class", "task")


_LOCAL = threading.local()


def _md() -> MarkdownIt:
    # One parser per thread: rendering may run in worker threads, and a MarkdownIt
    # instance is cheap to keep but not documented as thread-safe.
    md: MarkdownIt | None = getattr(_LOCAL, "md", None)
    if md is None:
        md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
        md.core.ruler.push("tandem_tweaks", _tandem_tweaks)
        _LOCAL.md = md
    return md


_ATTRIBUTES: dict[str, set[str]] = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES.setdefault("code", set()).add("class")  # language-xyz from fenced code
_ATTRIBUTES.setdefault("img", set()).add("title")
_ATTRIBUTES.setdefault("a", set()).add("title")

_CLEANER = nh3.Cleaner(
    tags=set(nh3.ALLOWED_TAGS) | {"input"},
    attributes=_ATTRIBUTES,
    # Task-list boxes only: any other <input> loses its type and is forced disabled.
    tag_attribute_values={
        "input": {"type": {"checkbox"}, "checked": {"", "checked"}},
        "li": {"class": {"task"}},
    },
    set_tag_attribute_values={"input": {"disabled": "disabled"}, "a": {"target": "_blank"}},
    url_schemes={"http", "https", "mailto", "tel", "ftp"},
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)

Refs = tuple[tuple[str, str, str], ...]  # (normalised label, href, title), sorted


def render_markdown(source: str, refs: Refs = ()) -> str:
    """Sanitised HTML of one piece of Markdown; `refs` are link definitions from elsewhere."""
    md = _md()
    env: dict[str, Any] = {}
    if refs:
        env["references"] = {
            label: {"href": href, "title": title, "map": None} for label, href, title in refs
        }
    html = md.renderer.render(md.parse(source, env), md.options, env)
    return _CLEANER.clean(html)


class _RenderCache:
    """A bounded LRU of rendered blocks keyed by (source, refs), bounded by characters so a
    run of huge blocks (an unclosed fence being typed) cannot grow it without limit."""

    def __init__(self, max_chars: int = 32_000_000, max_entry: int = 1_000_000) -> None:
        self._data: OrderedDict[tuple[str, Refs], str] = OrderedDict()
        self._chars = 0
        self._max_chars = max_chars
        self._max_entry = max_entry
        self._lock = threading.Lock()

    def get(self, source: str, refs: Refs) -> str:
        key = (source, refs)
        with self._lock:
            html = self._data.get(key)
            if html is not None:
                self._data.move_to_end(key)
                return html
        html = render_markdown(source, refs)
        size = len(source) + len(html)
        if size <= self._max_entry:
            with self._lock:
                if key not in self._data:
                    self._data[key] = html
                    self._chars += size
                    while self._chars > self._max_chars:
                        (old_src, _), old_html = self._data.popitem(last=False)
                        self._chars -= len(old_src) + len(old_html)
        return html

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._chars = 0


_CACHE = _RenderCache()

# ---------------------------------------------------------------------------------------
# Splitting into blocks
# ---------------------------------------------------------------------------------------

# Leading blank lines, including a last line of only whitespace.
_LEAD = re.compile(r"(?:[ \t]*\n)*(?:[ \t]+\Z)?")
# A separator: the newline ending a chunk plus the blank lines after it.
_SEP = re.compile(r"\n(?:[ \t]*\n)+")
_LIST_ITEM = re.compile(r" {0,3}(?:([-+*])|\d{1,9}([.)]))(?=[ \t]|$)", re.M)
_LIST_ITEM_ANY = re.compile(r"^ {0,3}(?:([-+*])|\d{1,9}([.)]))(?=[ \t]|$)", re.M)
_MAY_OPEN = re.compile(r"^ {0,3}(?:```|~~~|<)", re.M)
_FENCE_OPEN = re.compile(r"(`{3,})[^`]*$|(~{3,})")
_HTML_OPENERS: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    (
        re.compile(r"<(?:script|pre|style|textarea)(?=\s|>|$)", re.I),
        re.compile(r"</(?:script|pre|style|textarea)>", re.I),
    ),
    (re.compile(r"<!--"), re.compile(r"-->")),
    (re.compile(r"<\?"), re.compile(r"\?>")),
    (re.compile(r"<![A-Za-z]"), re.compile(r">")),
    (re.compile(r"<!\[CDATA\["), re.compile(r"\]\]>")),
)
# HTML blocks that end at a blank line: inside one, a ``` line is HTML, not a fence.
_HTML_TYPE6 = re.compile(
    r"</?(?:address|article|aside|base|basefont|blockquote|body|caption|center|col|colgroup"
    r"|dd|details|dialog|dir|div|dl|dt|fieldset|figcaption|figure|footer|form|frame|frameset"
    r"|h[1-6]|head|header|hr|html|iframe|legend|li|link|main|menu|menuitem|nav|noframes|ol"
    r"|optgroup|option|p|param|search|section|summary|table|tbody|td|tfoot|th|thead|title|tr"
    r"|track|ul)(?=\s|/?>|$)",
    re.I,
)
_NO_CLOSE = re.compile(r"(?!)")  # an HTML block running to the next blank line

LIST_SPLIT_MIN = 16  # chunks a loose list keeps together before it may be cut


@lru_cache(maxsize=64)
def _fence_closer(char: str, length: int) -> re.Pattern[str]:
    return re.compile(rf"^ {{0,3}}{re.escape(char)}{{{length},}}[ \t]*$")


def _indent(line: str) -> int:
    col = 0
    for ch in line:
        if ch == " ":
            col += 1
        elif ch == "\t":
            col += 4 - col % 4
        else:
            break
    return col


def _kind(m: re.Match[str] | None) -> str | None:
    return None if m is None else (m.group(1) or m.group(2))


def _scan(chunk: str, state: re.Pattern[str] | None, kinds: set[str]) -> re.Pattern[str] | None:
    """Run the fence/HTML-block state through the lines of a chunk; return the open state.

    Adds the kinds of the list items met outside fences and HTML blocks to `kinds`.
    """
    for line in chunk.split("\n"):
        if state is not None:
            if state is _NO_CLOSE:
                continue  # a type 6 HTML block: the rest of this chunk is HTML
            if state.search(line):
                state = None
            continue
        item = _LIST_ITEM.match(line)
        if item is not None:
            kinds.add(item.group(1) or item.group(2))
            continue  # a construct on the marker line lives inside the item
        ind = _indent(line)
        if ind > 3 or (kinds and ind >= 2):
            continue  # indented code, or (probably) inside a list item
        s = line[ind:]
        c = s[:1]
        opened = False
        if c == "`" or c == "~":
            m = _FENCE_OPEN.match(s)
            if m:
                fence = m.group(1) or m.group(2)
                state, opened = _fence_closer(fence[0], len(fence)), True
        elif c == "<":
            for start, end in _HTML_OPENERS:
                if start.match(s):
                    state, opened = (None if end.search(s) else end), True
                    break
            else:
                if _HTML_TYPE6.match(s):
                    state, opened = _NO_CLOSE, True
        if opened:
            kinds.clear()  # a fence or HTML block at this indent ends any list
    return None if state is _NO_CLOSE else state


def _iter_blocks(text: str, pos: int) -> Iterator[tuple[int, int, int]]:
    """Blocks of `text` from `pos` (a block start): (start, end, start of the next block).

    `text[start:end]` is the block's source; `text[end:next]` its blank-line separator.
    """
    # Trailing blank lines belong to the last block's separator, not to a chunk.
    n = len(text)
    last = n
    while last > pos and text[last - 1] in " \t\n":
        last -= 1
    if last < n:
        eol = text.find("\n", last)
        last = n if eol < 0 else eol
    seps = _SEP.finditer(text, pos, last)
    b_start = pos  # the open block
    b_end = -1
    kinds: set[str] = set()
    chunks = 0
    state: re.Pattern[str] | None = None
    while pos < last:
        m = next(seps, None)
        end, nxt = (m.start(), m.end()) if m else (last, n)
        chunk = text[pos:end]
        join = False
        if b_end >= 0:
            if state is not None or _indent(chunk[:8]) >= 2:
                join = True  # inside a fence/HTML block, or a continuation
            else:
                first = _LIST_ITEM.match(chunk)
                if first is not None and _kind(first) in kinds:
                    nl = chunk.find("\n")
                    head = chunk if nl < 0 else chunk[:nl]
                    # Content-defined cut of long loose lists, so edits move no other cut.
                    join = chunks < LIST_SPLIT_MIN or zlib.crc32(head.encode()) & 7 != 0
            if not join:
                yield b_start, b_end, pos
                b_start, kinds, chunks, state = pos, set(), 0, None
        if state is not None or _MAY_OPEN.search(chunk):
            state = _scan(chunk, state, kinds)
        else:
            for k in _LIST_ITEM_ANY.findall(chunk):
                kinds.add(k[0] or k[1])
        b_end = end
        chunks += 1
        pos = nxt
    if b_end >= 0:
        yield b_start, b_end, n


def _lead_end(text: str) -> int:
    m = _LEAD.match(text)
    return m.end() if m else 0


def split_blocks(text: str) -> list[str]:
    """The top-level blocks of a Markdown text (sources, in order)."""
    return [text[s:e] for s, e, _ in _iter_blocks(text, _lead_end(text))]


# ---------------------------------------------------------------------------------------
# Words
# ---------------------------------------------------------------------------------------

# Han, kana and the like have no spaces between words: each character counts as a word
# (as word processors count them). Other scripts count runs of letters and digits, joined
# by an apostrophe, hyphen or dot ("don't", "e-mail", "3.14"); Thai and similar
# space-less scripts count a run as one word. Link destinations and HTML tags are
# Markdown syntax, not prose, so they are skipped.
_CJK = (
    "\u2e80-\u2fdf\u3005\u3007\u3021-\u3029\u3038-\u303b\u3040-\u30ff\u3100-\u312f"
    "\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0003134f"
)
_WORD = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+(?:['\u2019.\-][^\W_{_CJK}]+)*")
_NOT_PROSE = re.compile(r"\]\([^)\s]*|<[^<>\n]*>")


def word_count(text: str) -> int:
    """Words in a Markdown text, Unicode-aware (each CJK character is one word)."""
    if "](" in text or "<" in text:
        text = _NOT_PROSE.sub(" ", text)
    return len(_WORD.findall(text))


# ---------------------------------------------------------------------------------------
# Blocks, ids, link references
# ---------------------------------------------------------------------------------------


def utf16_length(source: str) -> int:
    """The length a browser counts (UTF-16 code units)."""
    return len(source) if source.isascii() else len(source.encode("utf-16-le")) // 2


@dataclass(frozen=True, slots=True)
class Block:
    id: str
    source: str
    inner: str  # sanitised HTML of the block's content

    def section(self, swap_oob: str = "") -> str:
        """The block's element. `data-len` is its source's length in UTF-16 units: the
        page lays the blocks over its text with it (blocks are separated by blank lines
        only) to find the block each person's caret is in (static/js/preview-marks.js).
        It depends on the source only, as the id does, so a kept block never goes stale."""
        oob = f' hx-swap-oob="{swap_oob}"' if swap_oob else ""
        return (
            f'<section id="{self.id}" class="block" data-len="{utf16_length(self.source)}"'
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


def _definitions(source: str) -> dict[str, tuple[str, str]]:
    """Link reference definitions made in one block (label -> (href, title))."""
    md = _md()
    env: dict[str, Any] = {}
    md.parse(source, env)
    return {k: (v["href"], v["title"]) for k, v in env.get("references", {}).items()}


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


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, comparing slices (C speed): 64 KB pieces, then halving."""
    n = min(len(a), len(b))
    lo, step = 0, 1 << 16
    while lo < n:
        hi = min(n, lo + step)
        if a[lo:hi] != b[lo:hi]:
            break
        lo = hi
    else:
        return n
    while hi - lo > 1:  # the first difference lies in [lo, hi)
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    """Length of the common suffix, at most `limit`; the mirror of _common_prefix."""
    la, lb = len(a), len(b)
    lo, step = 0, 1 << 16
    while lo < limit:
        hi = min(limit, lo + step)
        if a[la - hi : la - lo] != b[lb - hi : lb - lo]:
            break
        lo = hi
    else:
        return limit
    while hi - lo > 1:  # the last difference lies hi..lo characters from the end
        mid = (lo + hi) // 2
        if a[la - mid : la - lo] == b[lb - mid : lb - lo]:
            lo = mid
        else:
            hi = mid
    return lo


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
        self._lead = _lead_end(text)
        spans = list(_iter_blocks(text, self._lead))
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
        p = _common_prefix(old, text)
        s = _common_suffix(old, text, min(len(old), len(text)) - p)
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
            i, start = 0, _lead_end(text)
            old_pos = self._lead
            self._lead = start
        else:
            old_pos = start

        changed_end = len(text) - s
        j = i
        region: list[tuple[int, int, int]] = []
        for span in _iter_blocks(text, start):
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
                for label, value in self._defs.fetch(src, _definitions).items():
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
        return _CACHE.get(source, refs)

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
