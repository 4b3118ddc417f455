"""Remote carets: where each editor's selection is, as a position that moves with the text.

A caret is kept with the version of the text it points into; it is brought on through
the changes the engine records (`DocumentEngine.changes`), once per broadcast, not per
change. An insert exactly at a caret stays after it (the caret does not move), as a
CodeMirror selection does when someone else's text arrives at it; the owner's own typing
moves it because every sync of theirs sets their caret afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from collab.delta import Delta, Op, transform_index


@dataclass(frozen=True, slots=True)
class Caret:
    version: int  # the text the positions are in
    anchor: int  # UTF-16 offsets, as the browser counts
    head: int


def move(caret: Caret, delta: Sequence[Op], version: int) -> Caret:
    """`caret`, whose text `delta` turns into the text at `version`."""
    anchor = transform_index(delta, caret.anchor, True)
    head = anchor if caret.head == caret.anchor else transform_index(delta, caret.head, True)
    return Caret(version, anchor, head)


def bring_on(
    caret: Caret, version: int, changes: Callable[[int, int], Delta | None]
) -> Caret | None:
    """`caret` at `version`; None when the history between is gone (the next sync of
    its owner places it again)."""
    if caret.version == version:
        return caret
    delta = changes(caret.version, version)
    return None if delta is None else move(caret, delta, version)


def caret_id(session: str) -> str:
    """The public id of a page load's caret: FNV-1a (32 bits) of its `cid`, which the
    browser computes too to know its own caret. Others never see the cid itself (it keys
    the page's undo history); 32 bits of 128 random ones give nothing away."""
    value = 0x811C9DC5
    for byte in session.encode("ascii", "replace"):
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{value:08x}"
