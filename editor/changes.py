"""The "changes" view of two versions: what was inserted and deleted, word by word, with
long unchanged stretches collapsed to a few lines of context.

The diff itself is Google's diff-match-patch (a kept library, bounded in time), run on
lines and then words rather than letters: first each line, then (within the lines that
changed) each word, run of spaces or punctuation mark becomes one character (the library's
own line-mode trick), so "gone" -> "new" reads as one word deleted and one inserted, not
as letters shuffled, and a megabyte with changes all over it takes a fraction of a second.
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


def _line_then_word_diff(differ: diff_match_patch, old: str, new: str) -> list[tuple[int, str]]:
    """Lines first (one character per line: cheap even for a megabyte), then words, only
    within each run of changed lines."""
    old_lines, new_lines, table = differ.diff_linesToChars(old, new)
    by_line = differ.diff_main(old_lines, new_lines, False)
    differ.diff_charsToLines(by_line, table)
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(by_line):
        if by_line[i][0] == differ.DIFF_EQUAL:
            out.append(by_line[i])
            i += 1
            continue
        deleted: list[str] = []
        inserted: list[str] = []
        while i < len(by_line) and by_line[i][0] != differ.DIFF_EQUAL:
            (deleted if by_line[i][0] == differ.DIFF_DELETE else inserted).append(by_line[i][1])
            i += 1
        out.extend(_word_diff(differ, "".join(deleted), "".join(inserted)))
    return out


@dataclass(frozen=True, slots=True)
class Piece:
    kind: Kind
    text: str  # for a gap: empty (`lines` says how much was left out)
    lines: int = 0


def _collapse(text: str, first: bool, last: bool) -> list[Piece]:
    """An unchanged stretch: whole unless it is long, else its edges around a gap. Its
    first line ends a changed line (unless it is the document's start) and its last line
    begins one (unless it is the end): those stay, with CONTEXT_LINES more each side."""
    lines = text.split("\n")
    head = 0 if first else CONTEXT_LINES + 1
    tail = 0 if last else CONTEXT_LINES + 1
    hidden = len(lines) - head - tail
    if hidden <= 2 * CONTEXT_LINES:
        return [Piece("equal", text)]
    out: list[Piece] = []
    if head:
        out.append(Piece("equal", "\n".join(lines[:head]) + "\n"))
    out.append(Piece("gap", "", hidden))
    if tail:
        out.append(Piece("equal", "\n".join(lines[len(lines) - tail :])))
    return out


def changes(old: str, new: str) -> list[Piece]:
    """What turns `old` into `new`, for reading."""
    differ = diff_match_patch()
    differ.Diff_Timeout = DIFF_SECONDS
    diffs: list[tuple[int, str]] = []
    for op, text in _line_then_word_diff(differ, old, new):
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
