"""Reading Markdown source without parsing it: its top-level blocks, and its words.

The live preview renders and sends one top-level block at a time (collab/preview.py);
this module finds the blocks with a cheap line scan, never a Markdown parse.

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
top-level boundary gives the same HTML); only a wrong split changes the output. Where
the scan splits differently from a full parse:

- A loose list longer than 16 items may be cut before an item chosen by a hash of its first
  line (content-defined, so an edit moves no cut elsewhere): it then renders as two lists
  (``<ol start=...>`` keeps the numbering; both parts stay loose).
- Fences or ``<pre>``/comment blocks directly below a list and indented 2+ columns are
  taken to belong to the list item; a fence inside an HTML block is taken for a fence.
  Both are rare and only misplace a split.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from functools import lru_cache

__all__ = ["LIST_SPLIT_MIN", "iter_blocks", "lead_end", "split_blocks", "word_count"]

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


def iter_blocks(text: str, pos: int) -> Iterator[tuple[int, int, int]]:
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


def lead_end(text: str) -> int:
    m = _LEAD.match(text)
    return m.end() if m else 0


def split_blocks(text: str) -> list[str]:
    """The top-level blocks of a Markdown text (sources, in order)."""
    return [text[s:e] for s, e, _ in iter_blocks(text, lead_end(text))]


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
