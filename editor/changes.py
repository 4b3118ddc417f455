"""The "changes" view of two versions: what was inserted and deleted, word by word, with
long unchanged stretches collapsed to a few lines of context.

The diff itself is Google's diff-match-patch (a kept library, bounded in time), run on
words rather than letters: each word, run of spaces or punctuation mark becomes one
character (the library's own line-mode trick, applied to words), so "gone" -> "new" reads
as one word deleted and one inserted, not as letters shuffled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from diff_match_patch import diff_match_patch

CONTEXT_LINES = 3  # unchanged lines kept on each side of a change
DIFF_SECONDS = 0.5  # diff-match-patch stops refining after this (a coarser diff, in time)

Kind = Literal["equal", "insert", "delete", "gap"]
_TOKEN = re.compile(r"\w+|[^\S\n]+|\n|[^\w\s]")
_SURROGATES = 0xD800, 0xE000  # code points a str may hold but that are not characters


def _code(index: int) -> str:
    """The character that stands for the index-th distinct word."""
    point = index + 1
    if point >= _SURROGATES[0]:
        point += _SURROGATES[1] - _SURROGATES[0]
    return chr(point)


def _encode(text: str, words: dict[str, str], table: list[str]) -> str | None:
    """`text` as one character per word, or None if there are too many distinct words."""
    out = []
    for token in _TOKEN.findall(text):
        code = words.get(token)
        if code is None:
            if len(table) >= 0x10FFFF - 0x1000:
                return None
            code = words[token] = _code(len(table))
            table.append(token)
        out.append(code)
    return "".join(out)


def _decode(codes: str, table: list[str]) -> str:
    return "".join([table[_index(c)] for c in codes])


def _index(code: str) -> int:
    point = ord(code)
    if point >= _SURROGATES[1]:
        point -= _SURROGATES[1] - _SURROGATES[0]
    return point - 1


def _word_diff(differ: diff_match_patch, old: str, new: str) -> list[tuple[int, str]]:
    words: dict[str, str] = {}
    table: list[str] = []
    old_codes, new_codes = _encode(old, words, table), _encode(new, words, table)
    if old_codes is None or new_codes is None:  # beyond a million distinct words: letters
        diffs = differ.diff_main(old, new)
        differ.diff_cleanupSemantic(diffs)
        return list(diffs)
    coded = differ.diff_main(old_codes, new_codes, False)
    differ.diff_cleanupSemantic(coded)
    return [(op, _decode(codes, table)) for op, codes in coded]


def _common_lines(differ: diff_match_patch, old: str, new: str) -> tuple[int, int]:
    """The lengths of the whole lines both texts start and end with (most of a long
    document, usually): only what lies between them is split into words and diffed."""
    head = differ.diff_commonPrefix(old, new)
    head = old.rfind("\n", 0, head) + 1
    limit = min(len(old), len(new)) - head
    tail = min(differ.diff_commonSuffix(old, new), limit)
    if tail < len(old) - head:
        cut = old.find("\n", len(old) - tail)
        tail = len(old) - cut - 1 if cut != -1 else 0
    return head, max(tail, 0)


@dataclass(frozen=True, slots=True)
class Piece:
    kind: Kind
    text: str  # for a gap: empty (`lines` says how much was left out)
    lines: int = 0


def _collapse(text: str, first: bool, last: bool) -> list[Piece]:
    """An unchanged stretch: whole unless it is long, else its edges around a gap."""
    lines = text.split("\n")
    keep_head = 0 if first else CONTEXT_LINES
    keep_tail = 0 if last else CONTEXT_LINES
    if len(lines) <= keep_head + keep_tail + 2:
        return [Piece("equal", text)]
    head = "\n".join(lines[: keep_head + 1]) if keep_head else ""
    tail = "\n".join(lines[len(lines) - keep_tail - 1 :]) if keep_tail else ""
    hidden = len(lines) - keep_head - keep_tail - (1 if keep_head else 0) - (1 if keep_tail else 0)
    out: list[Piece] = []
    if head:
        out.append(Piece("equal", head + "\n"))
    out.append(Piece("gap", "", max(hidden, 1)))
    if tail:
        out.append(Piece("equal", tail))
    return out


def changes(old: str, new: str) -> list[Piece]:
    """What turns `old` into `new`, for reading."""
    differ = diff_match_patch()
    differ.Diff_Timeout = DIFF_SECONDS
    head, tail = _common_lines(differ, old, new)
    middle = _word_diff(differ, old[head : len(old) - tail], new[head : len(new) - tail])
    diffs: list[tuple[int, str]] = []
    for op, text in [
        (differ.DIFF_EQUAL, old[:head]),
        *middle,
        (differ.DIFF_EQUAL, old[len(old) - tail :]),
    ]:
        if not text:
            continue
        if diffs and op == differ.DIFF_EQUAL and diffs[-1][0] == op:
            diffs[-1] = (op, diffs[-1][1] + text)
        else:
            diffs.append((op, text))
    pieces: list[Piece] = []
    for i, (op, text) in enumerate(diffs):
        if op == differ.DIFF_INSERT:
            pieces.append(Piece("insert", text))
        elif op == differ.DIFF_DELETE:
            pieces.append(Piece("delete", text))
        else:
            pieces.extend(_collapse(text, first=i == 0, last=i == len(diffs) - 1))
    return pieces


def summary(pieces: list[Piece]) -> tuple[int, int]:
    """(characters inserted, characters deleted)."""
    inserted = sum(len(p.text) for p in pieces if p.kind == "insert")
    deleted = sum(len(p.text) for p in pieces if p.kind == "delete")
    return inserted, deleted
