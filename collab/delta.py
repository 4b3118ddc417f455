"""Quill-style text deltas counted in UTF-16 code units, the unit of the wire protocol.

A delta is a list of ops: `{"retain": n}`, `{"insert": "s"}`, `{"delete": n}`. It applies
to a whole text from its start; text past the last op is kept. Counts are UTF-16 code
units (what a browser's `String.length` counts); insert strings are ordinary Python `str`.

This module is the reference model for the browser client (static/js) and is what the
engine uses to combine the deltas of one answer. It works on plain `str` and is not tuned
for megabyte documents: the engine's per-keystroke path converts and applies deltas with
`collab.offsets`, which keeps its text in chunks.

Representation: counting and splitting happen on *unit strings*, where an astral
character (outside the BMP) is spelt as its two surrogate code points, so `len()` counts
UTF-16 units and slicing is by unit. Inputs and outputs are ordinary strings: a result
that would leave half of a surrogate pair on its own raises `DeltaError`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from typing import Any

Op = dict[str, Any]
Delta = list[Op]

OP_KEYS = frozenset({"retain", "insert", "delete"})
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class DeltaError(ValueError):
    """A delta that is malformed or does not fit the text it is applied to."""


# ---------------------------------------------------------------- UTF-16 helpers


def utf16_len(s: str) -> int:
    """Length of `s` in UTF-16 code units (an astral character counts 2)."""
    if s.isascii():
        return len(s)
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def _split_pair(match: re.Match[str]) -> str:
    code = ord(match.group()) - 0x10000
    return chr(0xD800 + (code >> 10)) + chr(0xDC00 + (code & 0x3FF))


def to_units(s: str) -> str:
    """`s` with every astral character spelt as its surrogate pair: one char per unit."""
    if s.isascii():
        return s
    return _ASTRAL.sub(_split_pair, s)


def from_units(u: str) -> str:
    """Inverse of `to_units`; raises DeltaError if a surrogate is left unpaired."""
    if u.isascii():
        return u
    try:
        return u.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError as exc:
        raise DeltaError("a position splits a surrogate pair (or a lone surrogate)") from exc


# ---------------------------------------------------------------- validation


def validate(delta: object) -> Delta:
    """Check a delta's shape as the protocol defines it and return a copy, op for op.

    Each op is a dict with exactly one of retain/delete (an int > 0, not a bool) or
    insert (a non-empty str with no CR and no lone surrogate). Nothing is merged or
    dropped: a trailing retain must still be checked against the text (past its end it
    is an error). `normalize` gives the canonical form.
    """
    if not isinstance(delta, list):
        raise DeltaError("a delta must be a list of ops")
    return [check_op(i, op) for i, op in enumerate(delta)]


def check_op(i: int, op: object, *, lf_only: bool = True) -> Op:
    """One op checked (see `validate`); `i` is its index, for the message. With
    `lf_only=False` a CR is accepted (for deltas that describe what a Doc already holds)."""
    if not isinstance(op, dict) or len(op) != 1:
        raise DeltaError(f"op {i}: must be an object with exactly one key")
    ((key, value),) = op.items()
    if key not in OP_KEYS:
        raise DeltaError(f"op {i}: unknown key {key!r}")
    if key == "insert":
        if not isinstance(value, str) or not value:
            raise DeltaError(f"op {i}: insert must be a non-empty string")
        check_insert(value, lf_only=lf_only)
        return {"insert": value}
    if type(value) is not int or value <= 0:  # bool is an int subclass: excluded on purpose
        raise DeltaError(f"op {i}: {key} must be an integer > 0")
    return {key: value}


def check_insert(s: str, *, lf_only: bool = True) -> None:
    """Inserted text must be LF-only and must not hold a lone surrogate."""
    if lf_only and "\r" in s:
        raise DeltaError("CR in inserted text (text is LF only)")
    if not s.isascii() and _SURROGATE.search(s):
        raise DeltaError("lone surrogate in inserted text")


def op_len(op: Op) -> int:
    """Length of an op in UTF-16 units."""
    if "insert" in op:
        return utf16_len(op["insert"])
    return int(op.get("retain") or op["delete"])


def counts(delta: Sequence[Op]) -> tuple[int, int]:
    """(inserted, deleted) UTF-16 units of a delta: what the history panel shows."""
    inserted = sum(utf16_len(op["insert"]) for op in delta if "insert" in op)
    deleted = sum(int(op["delete"]) for op in delta if "delete" in op)
    return inserted, deleted


# ---------------------------------------------------------------- building deltas


class Builder:
    """Accumulates ops in canonical form: adjacent ops of one kind merged, an insert
    placed before an adjacent delete, no trailing retain (Quill's `push` and `chop`).
    Merged inserts are joined once at the end, so building stays linear."""

    __slots__ = ("_ops",)

    def __init__(self) -> None:
        self._ops: list[list[Any]] = []  # [kind, count] or ["insert", [parts]]

    def retain(self, n: int) -> None:
        if n > 0:
            self._push("retain", n)

    def delete(self, n: int) -> None:
        if n > 0:
            self._push("delete", n)

    def insert(self, s: str) -> None:
        if s:
            self._push("insert", s)

    def push(self, op: Op) -> None:
        ((kind, value),) = op.items()
        self._push(kind, value)

    def _push(self, kind: str, value: Any) -> None:
        ops = self._ops
        index = len(ops)
        if ops:
            last: list[Any] | None = ops[-1]
            if kind == "insert" and last is not None and last[0] == "delete":
                # Insert-then-delete and delete-then-insert are the same change; canonical
                # form puts the insert first.
                index -= 1
                last = ops[index - 1] if index else None
            if last is not None and last[0] == kind:
                if kind == "insert":
                    last[1].append(value)
                else:
                    last[1] += value
                return
        ops.insert(index, [kind, [value] if kind == "insert" else value])

    def done(self) -> Delta:
        if self._ops and self._ops[-1][0] == "retain":
            self._ops.pop()
        return [{kind: "".join(v) if kind == "insert" else v} for kind, v in self._ops]


def normalize(delta: Iterable[Op]) -> Delta:
    """The canonical form of an already valid delta."""
    out = Builder()
    for op in delta:
        out.push(op)
    return out.done()


# ---------------------------------------------------------------- applying


def apply(text: str, delta: Sequence[Op]) -> str:
    """The text after `delta`; raises DeltaError for an op that runs past the end of the
    text or ends between the halves of a surrogate pair (as delta.js's `apply`)."""
    units = to_units(text)
    pieces: list[str] = []
    pos = 0
    for op in delta:
        if "insert" in op:
            pieces.append(to_units(op["insert"]))
            continue
        n = op_len(op)
        if pos + n > len(units):
            raise DeltaError(f"{next(iter(op))} of {n} past the end of the text")
        if "retain" in op:
            pieces.append(units[pos : pos + n])
        pos += n
        if 0 < pos < len(units) and _splits_pair(units, pos):
            raise DeltaError(f"{next(iter(op))} of {n} ends inside a surrogate pair")
    pieces.append(units[pos:])
    return from_units("".join(pieces))


def _splits_pair(units: str, pos: int) -> bool:
    return "\ud800" <= units[pos - 1] <= "\udbff" and "\udc00" <= units[pos] <= "\udfff"


# ---------------------------------------------------------------- compose and transform


class _Ops:
    """Iterator over a delta (in unit strings) that can hand out part of an op; past the
    end it yields an endless retain."""

    __slots__ = ("index", "offset", "ops")

    def __init__(self, delta: Sequence[Op]) -> None:
        self.ops = [{"insert": to_units(op["insert"])} if "insert" in op else op for op in delta]
        self.index = 0
        self.offset = 0

    def has_next(self) -> bool:
        return self.index < len(self.ops)

    def peek_type(self) -> str:
        if self.index < len(self.ops):
            return next(iter(self.ops[self.index]))
        return "retain"

    def peek_len(self) -> float:
        if self.index < len(self.ops):
            return _unit_len(self.ops[self.index]) - self.offset
        return float("inf")

    def next(self, length: float = float("inf")) -> Op:
        if self.index >= len(self.ops):
            return {"retain": length}
        op = self.ops[self.index]
        remaining = _unit_len(op) - self.offset
        take = int(min(length, remaining))
        start = self.offset
        if take == remaining:
            self.index += 1
            self.offset = 0
        else:
            self.offset += take
        if "insert" in op:
            return {"insert": op["insert"][start : start + take]}
        return {next(iter(op)): take}


def _unit_len(op: Op) -> int:
    if "insert" in op:
        return len(op["insert"])  # already a unit string
    return int(op.get("retain") or op["delete"])


def _finish(out: Builder) -> Delta:
    ops = out.done()
    return [{"insert": from_units(op["insert"])} if "insert" in op else op for op in ops]


def compose(a: Sequence[Op], b: Sequence[Op]) -> Delta:
    """One delta with the effect of `a` then `b` (b counts positions in the text after a)."""
    ia, ib = _Ops(a), _Ops(b)
    out = Builder()
    while ia.has_next() or ib.has_next():
        if ib.peek_type() == "insert":
            out.push(ib.next())
        elif ia.peek_type() == "delete":
            out.push(ia.next())
        else:
            length = min(ia.peek_len(), ib.peek_len())
            op_a, op_b = ia.next(length), ib.next(length)
            if "retain" in op_b:
                out.push(op_a)  # a's retain or insert survives b's retain
            elif "retain" in op_a:
                out.push(op_b)  # b deletes text a kept
            # else: b deletes what a inserted: both vanish
    return _finish(out)


def transform(a: Sequence[Op], b: Sequence[Op], priority: bool) -> Delta:
    """`b` rewritten to apply after `a`, where both were made against the same text.

    Where both insert at one place, `a`'s insert ends up first when `priority` is true,
    `b`'s otherwise. The argument order, the priority and every result are the contract
    static/js/delta.js keeps too (Quill's `a.transform(b, priority)`; shared cases in
    tests/delta_cases.json). Convergence (TP1), for either priority:
    `apply(apply(s, a), transform(a, b, p)) == apply(apply(s, b), transform(b, a, not p))`.
    """
    ia, ib = _Ops(a), _Ops(b)
    out = Builder()
    while ia.has_next() or ib.has_next():
        if ia.peek_type() == "insert" and (priority or ib.peek_type() != "insert"):
            out.retain(_unit_len(ia.next()))
        elif ib.peek_type() == "insert":
            out.push(ib.next())
        else:
            length = min(ia.peek_len(), ib.peek_len())
            op_a, op_b = ia.next(length), ib.next(length)
            if "delete" in op_a:
                continue  # a removed that text already
            if "delete" in op_b:
                out.push(op_b)
            else:
                out.retain(int(length))
    return _finish(out)


def transform_index(delta: Sequence[Op], index: int, priority: bool = False) -> int:
    """Where position `index` (a caret, in UTF-16 units) of the old text lands after
    `delta`. An insert exactly at `index` moves it past the inserted text unless
    `priority` is true (Quill's `delta.transformPosition(index, priority)`; the same
    contract as delta.js's `transformIndex`)."""
    offset = 0
    for op in delta:
        if offset > index:
            break
        length = op_len(op)
        if "delete" in op:
            index -= min(length, index - offset)
            continue
        if "insert" in op and (offset < index or not priority):
            index += length
        offset += length
    return index


# ---------------------------------------------------------------- diff


def common_prefix(a: str, b: str) -> int:
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


def common_suffix(a: str, b: str, limit: int) -> int:
    """Length of the common suffix, at most `limit`; the mirror of common_prefix."""
    la, lb = len(a), len(b)
    limit = min(limit, la, lb)
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


# Above this many changed lines, SequenceMatcher's popular-line heuristic keeps it fast.
_AUTOJUNK_LINES = 5000


def diff(old: str, new: str) -> Delta:
    """A small delta turning `old` into `new`: matching lines are kept (difflib), and a
    changed run of lines is trimmed to the characters that differ. Never a delete-all and
    insert-all unless nothing matches."""
    prefix = common_prefix(old, new)
    suffix = common_suffix(old, new, min(len(old), len(new)) - prefix)
    old_mid, new_mid = old[prefix : len(old) - suffix], new[prefix : len(new) - suffix]
    out = Builder()
    out.retain(utf16_len(old[:prefix]))
    old_lines, new_lines = old_mid.splitlines(keepends=True), new_mid.splitlines(keepends=True)
    autojunk = len(old_lines) + len(new_lines) > _AUTOJUNK_LINES
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=autojunk)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        old_part, new_part = "".join(old_lines[i1:i2]), "".join(new_lines[j1:j2])
        if tag == "equal":
            out.retain(utf16_len(old_part))
        else:
            _replace(out, old_part, new_part)
    return out.done()


def _replace(out: Builder, old: str, new: str) -> None:
    head = common_prefix(old, new)
    tail = common_suffix(old, new, min(len(old), len(new)) - head)
    out.retain(utf16_len(old[:head]))
    out.insert(new[head : len(new) - tail])
    out.delete(utf16_len(old[head : len(old) - tail]))
    out.retain(utf16_len(old[len(old) - tail :]))
