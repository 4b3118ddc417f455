"""Hypothesis strategies shared by the delta and offset tests."""

from __future__ import annotations

from hypothesis import strategies as st

from collab import delta as D

# Pieces chosen to make UTF-16 units, code points and UTF-8 bytes disagree: astral emoji
# (two of them share a high surrogate), a skin-tone modifier, a ZWJ family, combining
# marks, CJK, and letters of one, two and three UTF-8 bytes.
PIECES = ["a", "b", "\n", "é", "e\u0301", "漢", "😀", "😁", "👍🏽", "👨\u200d👩\u200d👧", "ß", "Ω"]


def texts(max_size: int = 15) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(PIECES), max_size=max_size).map("".join)


@st.composite
def deltas(draw: st.DrawFn, text: str) -> D.Delta:
    """A random valid delta against `text` (positions on code point boundaries)."""
    inserts = texts().filter(bool)
    ops: D.Delta = []
    pos = 0
    while draw(st.booleans()):
        kind = draw(st.sampled_from(["retain", "delete", "insert"]))
        if kind == "insert":
            ops.append({"insert": draw(inserts)})
        elif pos < len(text):
            n = draw(st.integers(1, len(text) - pos))
            ops.append({kind: D.utf16_len(text[pos : pos + n])})
            pos += n
    return D.normalize(ops)
