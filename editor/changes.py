"""The "changes" view of two versions: what was inserted and deleted, word by word, with
long unchanged stretches collapsed to a few lines of context.

The diff itself is Google's diff-match-patch (a kept library, bounded in time), cleaned
up for people (`diff_cleanupSemantic`: whole words rather than scattered letters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from diff_match_patch import diff_match_patch

CONTEXT_LINES = 3  # unchanged lines kept on each side of a change
DIFF_SECONDS = 0.8  # diff-match-patch stops refining after this (a coarser diff, in time)

Kind = Literal["equal", "insert", "delete", "gap"]


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
    diffs = differ.diff_main(old, new)
    differ.diff_cleanupSemantic(diffs)
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
