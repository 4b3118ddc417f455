"""collab.offsets: browser UTF-16 offsets <-> pycrdt UTF-8 byte offsets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collab import delta as D
from collab import offsets as O
from collab.crdt import new_doc
from collab.engine import _apply_utf8 as _apply
from tests import strategies

SAMPLES = {
    "ascii": "hello world",
    "emoji": "a😀b",
    "skin tone": "👍🏽 ok",
    "family": "👨\u200d👩\u200d👧\u200d👦!",
    "cjk": "漢字かなカナ",
    "combining": "e\u0301te\u0301",
    "mixed": "Grüße, 世界 🌍 مرحبا e\u0301 👍🏽\n",
    "empty": "",
}
texts = strategies.texts(40)


def boundaries(text: str) -> Iterator[tuple[int, int, int]]:
    """Every code point boundary as (code points, UTF-8 bytes, UTF-16 units)."""
    for cp in range(len(text) + 1):
        yield cp, len(text[:cp].encode()), D.utf16_len(text[:cp])


def apply_utf8(text: str, delta: D.Delta) -> str:
    """Reference: a UTF-8 byte delta applied to the bytes of `text`."""
    data, out, pos = text.encode(), [], 0
    for op in delta:
        if "insert" in op:
            out.append(op["insert"].encode())
        elif "retain" in op:
            out.append(data[pos : pos + op["retain"]])
            pos += op["retain"]
        else:
            pos += op["delete"]
    out.append(data[pos:])
    return b"".join(out).decode()


deltas = strategies.deltas


# ---------------------------------------------------------------- facts and positions


@pytest.mark.parametrize("text", SAMPLES.values(), ids=SAMPLES.keys())
def test_lengths(text: str) -> None:
    tracked = O.TrackedText.of(text)
    assert (tracked.length, tracked.utf8_len, tracked.utf16_len) == (
        len(text),
        len(text.encode()),
        len(text.encode("utf-16-le")) // 2,
    )
    assert tracked.is_ascii == text.isascii()
    assert tracked.has_astral == any(ord(c) > 0xFFFF for c in text)
    assert tracked.text == str(tracked) == text


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("text", SAMPLES.values(), ids=SAMPLES.keys())
def test_every_boundary_converts_both_ways(
    text: str, chunked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if chunked:
        monkeypatch.setattr(O, "CHUNK", 3)
    tracked = O.TrackedText.of(text)
    for cp, u8, u16 in boundaries(text):
        assert tracked.position("utf16", u16) == O.Position(cp, u8, u16)
        assert tracked.position("utf8", u8) == O.Position(cp, u8, u16)
        assert O.utf16_index_to_utf8(text, u16) == u8
        assert O.utf8_index_to_utf16(text, u8) == u16


@pytest.mark.parametrize(
    ("text", "unit", "offset"),
    [
        ("a😀b", "utf16", 2),  # between the surrogates
        ("👍🏽", "utf16", 3),  # inside the skin tone modifier
        ("a😀b", "utf8", 2),  # inside the emoji's four bytes
        ("漢", "utf8", 1),
        ("é", "utf8", 1),
        ("abc", "utf16", 4),
        ("abc", "utf8", 4),
        ("a😀", "utf16", 4),
        ("", "utf16", 1),
        ("abc", "utf16", -1),
    ],
)
def test_positions_inside_a_character_or_past_the_end_are_rejected(
    text: str, unit: O.Unit, offset: int
) -> None:
    with pytest.raises(O.OffsetError):
        O.TrackedText.of(text).position(unit, offset)


# ---------------------------------------------------------------- delta conversion


@pytest.mark.parametrize(
    ("text", "delta16", "delta8", "result"),
    [
        ("a😀b", [{"insert": "X"}], [{"insert": "X"}], "Xa😀b"),
        ("a😀b", [{"retain": 4}, {"insert": "X"}], [{"retain": 6}, {"insert": "X"}], "a😀bX"),
        ("a😀b", [{"retain": 1}, {"delete": 2}], [{"retain": 1}, {"delete": 4}], "ab"),
        ("👍🏽", [{"retain": 2}, {"delete": 2}], [{"retain": 4}, {"delete": 4}], "👍"),
        ("漢字", [{"retain": 1}, {"insert": "😀"}], [{"retain": 3}, {"insert": "😀"}], "漢😀字"),
        ("e\u0301x", [{"retain": 2}, {"delete": 1}], [{"retain": 3}, {"delete": 1}], "e\u0301"),
        (
            "👨\u200d👩\u200d👧!",
            [{"retain": 8}, {"insert": "?"}],
            [{"retain": 18}, {"insert": "?"}],
            "👨\u200d👩\u200d👧?!",
        ),
        ("", [{"insert": "😀"}], [{"insert": "😀"}], "😀"),
        ("abc", [{"delete": 3}], [{"delete": 3}], ""),
        ("x", [{"retain": 1}], [], "x"),
    ],
)
def test_convert_examples(text: str, delta16: D.Delta, delta8: D.Delta, result: str) -> None:
    forward = O.utf16_to_utf8(text, delta16)
    assert forward.delta == delta8
    assert forward.text.text == result
    back = O.utf8_to_utf16(text, delta8)
    assert back.delta == D.normalize(delta16)
    assert back.text.text == result


def test_inserted_bytes_are_counted() -> None:
    converted = O.utf16_to_utf8("ab", [{"retain": 1}, {"insert": "😀é"}, {"insert": "x"}])
    assert converted.inserted_utf8 == 4 + 2 + 1


@pytest.mark.parametrize(
    "delta",
    [
        [{"retain": 2}, {"insert": "x"}],  # splits 😀
        [{"retain": 1}, {"delete": 1}],  # deletes half of 😀
        [{"retain": 5}],  # past the end
        [{"delete": 5}],
        [{"retain": 4}, {"delete": 1}],
        [{"insert": "\ud83d"}],  # lone surrogates
        [{"insert": "\ude00x"}],
        [{"insert": "a\rb"}],  # CR
        [{"retain": 0}],
        [{"delete": -2}],
        [{"retain": True}],
        [{"retain": 1.5}],
        [{"insert": ""}],
        [{"insert": 3}],
        [{"insert": "a", "attributes": {"bold": True}}],
        [{"keep": 1}],
        ["retain"],
        {"retain": 1},
    ],
)
def test_bad_utf16_deltas_are_rejected(delta: object) -> None:
    with pytest.raises(O.OffsetError):
        O.utf16_to_utf8("a😀b", delta)


def test_utf8_deltas_may_carry_cr_but_not_split_characters() -> None:
    assert O.utf8_to_utf16("a", [{"insert": "\r"}]).text.text == "\ra"
    with pytest.raises(O.OffsetError):
        O.utf8_to_utf16("é", [{"retain": 1}, {"insert": "x"}])


@settings(max_examples=300)
@given(st.data(), texts)
def test_round_trip_matches_reference(data: st.DataObject, text: str) -> None:
    change = data.draw(deltas(text))
    expected = D.apply(text, change)
    forward = O.utf16_to_utf8(text, change)
    assert forward.text.text == expected
    assert apply_utf8(text, forward.delta) == expected
    back = O.utf8_to_utf16(text, forward.delta)
    assert back.text.text == expected
    assert D.apply(text, back.delta) == expected


@settings(max_examples=200)
@given(st.data(), texts)
def test_pycrdt_agrees(data: st.DataObject, text: str) -> None:
    """Converted offsets do the same thing in pycrdt, and pycrdt's own event delta
    converts back to a UTF-16 delta with the same effect."""
    doc, ytext = new_doc()
    ytext.insert(0, text)
    events: list[D.Delta] = []
    ytext.observe(lambda event: events.append(event.delta))  # type: ignore[attr-defined]
    change = data.draw(deltas(text))
    forward = O.utf16_to_utf8(text, change)
    with doc.transaction():
        _apply(ytext, forward.delta)
    expected = D.apply(text, change)
    assert str(ytext) == expected
    if events:
        back = O.utf8_to_utf16(text, events[0])
        assert D.apply(text, back.delta) == expected == back.text.text


# ---------------------------------------------------------------- chunks


@settings(max_examples=150)
@given(st.data(), texts)
def test_chunked_text_stays_exact_over_many_edits(data: st.DataObject, text: str) -> None:
    with pytest.MonkeyPatch.context() as patch:  # tiny chunks: every edit crosses some
        patch.setattr(O, "CHUNK", 4)
        patch.setattr(O, "_MIN_CHUNK", 1)
        tracked = O.TrackedText.of(text)
        for _ in range(data.draw(st.integers(1, 6))):
            change = data.draw(deltas(text))
            converted = O.utf16_to_utf8(tracked, change)
            text = D.apply(text, change)
            # A fresh object (no cached str) built from the chunks the change produced.
            tracked = O.TrackedText(converted.text._chunks, converted.text._n8, converted.text._n16)
            assert tracked.text == text
            assert (tracked.utf8_len, tracked.utf16_len) == (
                len(text.encode()),
                D.utf16_len(text),
            )
            assert all(0 < len(chunk) <= 4 for chunk in tracked._chunks)


def test_a_keystroke_rebuilds_only_nearby_chunks() -> None:
    """Cost grows with the change: chunks away from the edit are shared, not copied."""
    text = ("Grüße 😀 漢字 " * 20_000)[:200_000]
    before = O.TrackedText.of(text)
    middle = before.utf16_len // 2
    after = O.utf16_to_utf8(before, [{"retain": middle}, {"insert": "x"}]).text
    shared = sum(1 for a, b in zip(before._chunks, after._chunks, strict=False) if a is b)
    assert len(before._chunks) > 20
    assert shared >= len(before._chunks) // 2 - 2
    assert after.utf16_len == before.utf16_len + 1
    assert after.text == D.apply(text, [{"retain": middle}, {"insert": "x"}])


def test_chunks_of_a_big_text_are_bounded() -> None:
    tracked = O.TrackedText.of("a" * (O.CHUNK * 10 + 5))
    assert all(O.CHUNK // 2 <= len(c) <= O.CHUNK for c in tracked._chunks)
    emptied = O.utf16_to_utf8(tracked, [{"retain": 3}, {"delete": tracked.utf16_len - 3}])
    assert emptied.text.text == "aaa"
    assert len(emptied.text._chunks) == 1


def test_a_delta_with_many_ops() -> None:
    """Thousands of small ops (a long offline session composed) convert exactly; each op
    costs its own length (a regression test for quadratic building)."""
    line = "ab😀漢é\n"
    text = line * 5000
    change: D.Delta = [
        op
        for _ in range(5000)
        for op in ({"retain": 2}, {"insert": "x"}, {"delete": 2}, {"retain": 3})
    ]
    change += [{"insert": "y"}] * 5000
    converted = O.utf16_to_utf8(text, change)
    expected = D.apply(text, change)
    assert converted.text.text == expected == "abx漢é\n" * 5000 + "y" * 5000
    assert apply_utf8(text, converted.delta) == expected
    assert O.utf8_to_utf16(text, converted.delta).text.text == expected
