"""collab.carets: a caret moved through edits lands where the text says, in any order.

The text is made of distinct characters so that "where the text says" can be read off
it: a caret sits between two characters; after any edits, whichever of them survived is
still on the same side of it, and only newly inserted text can come between.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from collab import delta as D
from collab.carets import Caret, bring_on, caret_id, move

ORIGINAL = [chr(0x4E00 + i) for i in range(40)]  # distinct, one UTF-16 unit each
INSERTED = "xyz"


@st.composite
def edit(draw: st.DrawFn, length: int) -> D.Delta:
    """A random delta on a text of `length` units (inserts of x, y, z only)."""
    builder = D.Builder()
    pos = 0
    while pos < length and draw(st.booleans()):
        step = draw(st.integers(0, length - pos))
        kind = draw(st.sampled_from(["retain", "delete", "insert"]))
        if kind == "retain" and step:
            builder.retain(step)
            pos += step
        elif kind == "delete" and step:
            builder.delete(step)
            pos += step
        else:
            builder.insert(draw(st.text(INSERTED, min_size=1, max_size=3)))
    if draw(st.booleans()):
        builder.retain(length - pos)
        builder.insert(draw(st.text(INSERTED, min_size=1, max_size=3)))
    return builder.done()


@st.composite
def history(draw: st.DrawFn) -> tuple[str, list[D.Delta], int]:
    text = "".join(ORIGINAL[: draw(st.integers(0, len(ORIGINAL)))])
    edits = []
    current = text
    for _ in range(draw(st.integers(0, 5))):
        change = draw(edit(len(current)))
        edits.append(change)
        current = D.apply(current, change)
    return text, edits, draw(st.integers(0, len(text)))


def holds_where_the_text_says(text: str, final: str, index: int, moved: int) -> None:
    before = text[index - 1] if index > 0 else None
    after = text[index] if index < len(text) else None
    assert 0 <= moved <= len(final)
    if before is not None and before in final:
        assert final.index(before) < moved
    if after is not None and after in final:
        assert final.index(after) >= moved
        # Only new text between the caret and the character it was before.
        assert all(c in INSERTED for c in final[moved : final.index(after)])


@settings(max_examples=400)
@given(history())
def test_a_caret_moved_edit_by_edit_lands_where_the_text_says(
    case: tuple[str, list[D.Delta], int],
) -> None:
    text, edits, index = case
    caret = Caret(0, index, index)
    final = text
    for version, change in enumerate(edits, start=1):
        caret = move(caret, change, version)
        final = D.apply(final, change)
    holds_where_the_text_says(text, final, index, caret.anchor)
    assert caret.head == caret.anchor and caret.version == len(edits)


@settings(max_examples=400)
@given(history(), st.data())
def test_a_selection_moved_in_one_hop_or_many_lands_where_the_text_says(
    case: tuple[str, list[D.Delta], int], data: st.DataObject
) -> None:
    # The broadcaster moves a caret through whatever the engine composed since its
    # version: in one hop or several, it lands where the text says. (Not always on the
    # same unit: where an insert meets a delete, either side of new text is right.)
    text, edits, index = case
    head = data.draw(st.integers(0, len(text)))
    composed: dict[tuple[int, int], D.Delta] = {}

    def changes(after: int, upto: int) -> D.Delta:
        result: D.Delta = []
        for change in edits[after:upto]:
            result = D.compose(result, change)
        composed[(after, upto)] = result
        return result

    start = Caret(0, index, head)
    at_once = bring_on(start, len(edits), changes)
    stops = sorted(set(data.draw(st.lists(st.integers(0, len(edits)), max_size=4))))
    hopped: Caret | None = start
    for stop in [*stops, len(edits)]:
        assert hopped is not None
        hopped = bring_on(hopped, max(stop, hopped.version), changes)
    final = text
    for change in edits:
        final = D.apply(final, change)
    for moved in (at_once, hopped):
        assert moved is not None and moved.version == len(edits)
        holds_where_the_text_says(text, final, index, moved.anchor)
        holds_where_the_text_says(text, final, head, moved.head)


def test_an_insert_at_a_caret_comes_after_it_and_a_delete_around_it_pulls_it_in() -> None:
    caret = Caret(3, 2, 2)
    assert move(caret, [{"retain": 2}, {"insert": "ab"}], 4) == Caret(4, 2, 2)
    assert move(caret, [{"insert": "ab"}], 4) == Caret(4, 4, 4)
    assert move(caret, [{"retain": 1}, {"delete": 3}], 4) == Caret(4, 1, 1)
    # A selection: both ends move, each where its text says.
    assert move(Caret(1, 1, 5), [{"retain": 3}, {"insert": "😀"}], 2) == Caret(2, 1, 7)


def test_history_that_is_gone_drops_the_caret() -> None:
    assert bring_on(Caret(1, 0, 0), 5, lambda after, upto: None) is None
    assert bring_on(Caret(5, 3, 3), 5, lambda after, upto: None) == Caret(5, 3, 3)


def test_caret_ids_are_fnv1a_of_the_cid() -> None:
    # The browser computes the same (static/js/carets.js): known FNV-1a 32 values.
    assert caret_id("") == "811c9dc5"
    assert caret_id("a") == "e40c292c"
    assert caret_id("foobar") == "bf9cf968"
    assert caret_id("tab-a-0001") != caret_id("tab-a-0002")


def test_a_backward_selection_moves_both_ends_and_keeps_its_direction() -> None:
    # head < anchor (selected from right to left): each end moves where its text says.
    assert move(Caret(1, 5, 1), [{"retain": 3}, {"insert": "ab"}], 2) == Caret(2, 7, 1)
    assert move(Caret(1, 5, 1), [{"insert": "ab"}], 2) == Caret(2, 7, 3)
