"""The one place that converts between browser offsets (UTF-16 code units) and pycrdt's
(UTF-8 bytes).

The converters work against a `TrackedText`: an immutable text kept as a tuple of chunks
of about `CHUNK` code points, each with its UTF-8 and UTF-16 lengths. Why chunks:

- A position is found by a binary search over the chunks' running totals, then by
  encoding one chunk, so a lookup costs O(log chunks + CHUNK), not O(document); a delta's
  next op, when it stays in the same chunk, costs only its own length. A chunk that is
  pure ASCII (or the whole text) needs no encoding at all, and one without astral
  characters counts UTF-16 like code points: those are the fast paths.
- Applying a change rebuilds only the chunks it touches (plus a tuple of references), so
  a keystroke in a 1 MB document copies a few KB, not the megabyte a `str` splice would.
- The facts (lengths per chunk) are updated from the change, never rescanned.
- It is immutable, so the engine can keep the text of many recent versions: they share
  every chunk but the ones that changed.

The whole `str` is joined on demand (`TrackedText.text`) and cached on the object.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal

from collab.delta import Builder, Delta, DeltaError, Op, check_op

# Code points per chunk: a lookup encodes at most one chunk (~10 us at this size).
CHUNK = 8192
# A rebuilt run of chunks shorter than this is merged with a neighbour.
_MIN_CHUNK = CHUNK // 4

Unit = Literal["utf8", "utf16"]

OffsetError = DeltaError  # one exception for every delta that does not fit its text


def _utf8_len(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-8"))


def _utf16_len(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-16-le", "surrogatepass")) // 2


def _split(s: str) -> list[str]:
    """`s` cut into chunks of at most CHUNK code points (and at least half of it)."""
    if not s:
        return []
    count = -(-len(s) // CHUNK)
    size = -(-len(s) // count)
    return [s[i : i + size] for i in range(0, len(s), size)]


def _measure(s: str, unit: Unit, count: int) -> tuple[int, int, int]:
    """(code points, UTF-8 bytes, UTF-16 units) of the prefix of `s` that is `count`
    units long (`s` holds at least that many). Raises OffsetError inside a character."""
    if s.isascii():
        return count, count, count
    if unit == "utf16":
        units = s.encode("utf-16-le")
        if 2 * count < len(units) and 0xDC <= units[2 * count + 1] <= 0xDF:  # low surrogate
            raise OffsetError("UTF-16 offset splits a surrogate pair")
        cp = len(units[: 2 * count].decode("utf-16-le"))
        return cp, _utf8_len(s[:cp]), count
    data = s.encode("utf-8")
    if count < len(data) and data[count] & 0xC0 == 0x80:
        raise OffsetError("UTF-8 offset splits a character")
    cp = len(data[:count].decode("utf-8"))
    return cp, count, _utf16_len(s[:cp])


@dataclass(frozen=True, slots=True)
class Position:
    """One place in a text, in the three ways of counting it."""

    cp: int  # code points (Python str index)
    utf8: int
    utf16: int

    def of(self, unit: Unit) -> int:
        return self.utf8 if unit == "utf8" else self.utf16


class TrackedText:
    """An immutable text that knows its UTF-8 and UTF-16 layout (see the module doc)."""

    __slots__ = (
        "_chunks",
        "_cum",
        "_n8",
        "_n16",
        "_str",
        "length",
        "utf8_len",
        "utf16_len",
    )

    def __init__(self, chunks: Sequence[str], n8: Sequence[int], n16: Sequence[int]) -> None:
        self._chunks = tuple(chunks)
        self._n8 = tuple(n8)
        self._n16 = tuple(n16)
        self.length = sum(len(c) for c in self._chunks)
        self.utf8_len = sum(self._n8)
        self.utf16_len = sum(self._n16)
        self._cum: dict[str, list[int]] | None = None
        self._str: str | None = None

    @classmethod
    def of(cls, text: str) -> TrackedText:
        """Scans `text` once; afterwards changes keep the facts up to date."""
        chunks = _split(text)
        result = cls(chunks, [_utf8_len(c) for c in chunks], [_utf16_len(c) for c in chunks])
        result._str = text
        return result

    @property
    def text(self) -> str:
        """The whole text (joined once, then cached)."""
        if self._str is None:
            self._str = "".join(self._chunks)
        return self._str

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"TrackedText({self.text[:40]!r}..., {self.length} code points)"

    @property
    def is_ascii(self) -> bool:
        return self.utf8_len == self.length

    @property
    def has_astral(self) -> bool:
        return self.utf16_len != self.length

    # ------------------------------------------------------------ positions

    def _totals(self) -> dict[str, list[int]]:
        if self._cum is None:
            self._cum = {
                "cp": list(accumulate((len(c) for c in self._chunks), initial=0)),
                "utf8": list(accumulate(self._n8, initial=0)),
                "utf16": list(accumulate(self._n16, initial=0)),
            }
        return self._cum

    def position(self, unit: Unit, offset: int) -> Position:
        """The position `offset` (counted in `unit`) in all three counts. Raises
        OffsetError past the end or inside a character (a surrogate pair, a UTF-8
        sequence)."""
        total = self.utf8_len if unit == "utf8" else self.utf16_len
        if offset < 0 or offset > total:
            raise OffsetError(f"offset {offset} past the end of the text ({total} {unit})")
        if self.is_ascii:
            return Position(offset, offset, offset)
        cum = self._totals()
        k = min(bisect_right(cum[unit], offset) - 1, len(self._chunks) - 1)
        chunk, local = self._chunks[k], offset - cum[unit][k]
        if self._n8[k] == len(chunk):  # an ASCII chunk: all counts agree
            cp, u8, u16 = local, local, local
        elif unit == "utf16" and self._n16[k] == len(chunk):  # no astral: UTF-16 = code points
            cp, u8, u16 = local, _utf8_len(chunk[:local]), local
        else:
            cp, u8, u16 = _measure(chunk, unit, local)
        return Position(cum["cp"][k] + cp, cum["utf8"][k] + u8, cum["utf16"][k] + u16)

    def advance(self, here: Position, unit: Unit, count: int) -> Position:
        """The position `count` units after `here`. Within one chunk this costs O(count),
        so a delta's many small ops cost their length, not a chunk each."""
        if self.is_ascii or count > CHUNK:
            return self.position(unit, here.of(unit) + count)
        cum = self._totals()
        k = min(bisect_right(cum["cp"], here.cp) - 1, len(self._chunks) - 1)
        if k < 0 or here.of(unit) + count > cum[unit][k + 1]:  # leaves the chunk
            return self.position(unit, here.of(unit) + count)
        start = here.cp - cum["cp"][k]
        # `count` units never span more than `count` code points.
        cp, u8, u16 = _measure(self._chunks[k][start : start + count], unit, count)
        return Position(here.cp + cp, here.utf8 + u8, here.utf16 + u16)

    # ------------------------------------------------------------ changes

    def splice(self, edits: Sequence[tuple[int, int, str]]) -> TrackedText:
        """The text with each `(start, end, insert)` applied (code points of this text,
        sorted, not overlapping). Only the chunks the edits touch are rebuilt."""
        if not edits:
            return self
        chunks, n8, n16 = list(self._chunks), list(self._n8), list(self._n16)
        cum = self._totals()["cp"]
        for (i, j), group in reversed(self._groups(edits, cum)):
            base = cum[i]
            region = "".join(chunks[i : j + 1])
            pieces: list[str] = []
            at = 0
            for start, end, insert in group:
                pieces += (region[at : start - base], insert)
                at = end - base
            pieces.append(region[at:])
            new = "".join(pieces)
            if len(new) < _MIN_CHUNK and j + 1 < len(chunks):
                j += 1
                new += chunks[j]
            elif len(new) < _MIN_CHUNK and i > 0:
                i -= 1
                new = chunks[i] + new
            fresh = _split(new)
            chunks[i : j + 1] = fresh
            n8[i : j + 1] = [_utf8_len(c) for c in fresh]
            n16[i : j + 1] = [_utf16_len(c) for c in fresh]
        return TrackedText(chunks, n8, n16)

    def _groups(
        self, edits: Sequence[tuple[int, int, str]], cum: list[int]
    ) -> list[tuple[tuple[int, int], list[tuple[int, int, str]]]]:
        """Edits grouped by the run of chunks they touch. Runs that share or touch a chunk
        merge, so a group's neighbours (which `splice` may absorb) belong to no group."""
        last = max(len(self._chunks) - 1, 0)
        groups: list[tuple[tuple[int, int], list[tuple[int, int, str]]]] = []
        for start, end, insert in edits:
            if not 0 <= start <= end <= self.length:
                raise OffsetError("edit outside the text")
            # A position on a chunk boundary belongs to the chunk on its left.
            i = min(max(bisect_right(cum, start - 1) - 1, 0), last)
            j = min(max(bisect_right(cum, end - 1) - 1, 0), last)
            j = max(i, j)
            if not self._chunks:
                i, j = 0, -1
            if groups and i <= groups[-1][0][1] + 1:
                (gi, gj), group = groups[-1]
                group.append((start, end, insert))
                groups[-1] = ((gi, max(gj, j)), group)
            else:
                groups.append(((i, j), [(start, end, insert)]))
        return groups


# ---------------------------------------------------------------- delta conversion


@dataclass(frozen=True, slots=True)
class Converted:
    """A delta converted to the other unit, with the text it produces."""

    delta: Delta
    text: TrackedText
    inserted_utf8: int  # bytes the delta inserts (for size limits)


def utf16_to_utf8(text: TrackedText | str, delta: object) -> Converted:
    """A client's delta (UTF-16 units, against `text`) as pycrdt offsets (UTF-8 bytes).

    Validates everything: malformed ops, CR or lone surrogates in inserts, positions past
    the end or inside a surrogate pair all raise OffsetError.
    """
    return _convert(_tracked(text), delta, "utf16", "utf8", lf_only=True)


def utf8_to_utf16(text: TrackedText | str, delta: object) -> Converted:
    """A pycrdt `TextEvent.delta` (UTF-8 bytes, against the text before the change) in
    UTF-16 units, for the browser."""
    return _convert(_tracked(text), delta, "utf8", "utf16", lf_only=False)


def utf16_index_to_utf8(text: TrackedText | str, index: int) -> int:
    return _tracked(text).position("utf16", index).utf8


def utf8_index_to_utf16(text: TrackedText | str, index: int) -> int:
    return _tracked(text).position("utf8", index).utf16


def _tracked(text: TrackedText | str) -> TrackedText:
    return text if isinstance(text, TrackedText) else TrackedText.of(text)


def _convert(text: TrackedText, delta: object, src: Unit, dst: Unit, *, lf_only: bool) -> Converted:
    if not isinstance(delta, list):
        raise OffsetError("a delta must be a list of ops")
    out = Builder()
    edits: list[tuple[int, int, str]] = []
    here = Position(0, 0, 0)
    inserted = 0
    for i, raw in enumerate(delta):
        op: Op = check_op(i, raw, lf_only=lf_only)
        if "insert" in op:
            edits.append((here.cp, here.cp, op["insert"]))
            inserted += _utf8_len(op["insert"])
            out.insert(op["insert"])
            continue
        count = op.get("retain") or op["delete"]
        there = text.advance(here, src, count)
        if "retain" in op:
            out.retain(there.of(dst) - here.of(dst))
        else:
            out.delete(there.of(dst) - here.of(dst))
            edits.append((here.cp, there.cp, ""))
        here = there
    return Converted(out.done(), text.splice(edits), inserted)
