"""collab.delta: Quill-style deltas counted in UTF-16 code units."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collab import delta as D
from tests import strategies

texts = strategies.texts(15)


deltas = strategies.deltas

# The contract static/js/delta.js keeps too (e2e/test_client_units.py runs the same cases).
CASES: dict[str, Any] = json.loads((Path(__file__).parent / "delta_cases.json").read_text())


def cases(kind: str) -> list[Any]:
    return [pytest.param(case, id=f"{kind}-{i}") for i, case in enumerate(CASES[kind])]


# ---------------------------------------------------------------- the shared contract


@pytest.mark.parametrize("case", cases("apply"))
def test_contract_apply(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(D.DeltaError):
            D.apply(case["text"], case["delta"])
    else:
        assert D.apply(case["text"], case["delta"]) == case["result"]


@pytest.mark.parametrize("case", cases("compose"))
def test_contract_compose(case: dict[str, Any]) -> None:
    assert D.compose(case["a"], case["b"]) == case["result"]


@pytest.mark.parametrize("case", cases("transform"))
def test_contract_transform(case: dict[str, Any]) -> None:
    assert D.transform(case["a"], case["b"], case["priority"]) == case["result"]


@pytest.mark.parametrize("case", cases("transform_index"))
def test_contract_transform_index(case: dict[str, Any]) -> None:
    assert D.transform_index(case["delta"], case["index"], case["priority"]) == case["result"]


@pytest.mark.parametrize("case", cases("normalize"))
def test_contract_normalize(case: dict[str, Any]) -> None:
    assert D.normalize(D.validate(case["delta"])) == case["result"]


def test_contract_cases_are_valid_deltas() -> None:
    """Every case's deltas pass the wire's validation, so a case tests the algebra, not
    how each side copes with malformed input."""
    for kind in ("apply", "compose", "transform", "transform_index", "normalize"):
        for case in CASES[kind]:
            for key in ("delta", "a", "b", "result"):
                if isinstance(case.get(key), list):
                    D.validate(case[key])


# ---------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("text", "units"),
    [("", 0), ("abc", 3), ("é", 1), ("漢字", 2), ("😀", 2), ("👍🏽", 4), ("👨\u200d👩\u200d👧", 8)],
)
def test_utf16_len(text: str, units: int) -> None:
    assert D.utf16_len(text) == units
    assert len(D.to_units(text)) == units
    assert D.from_units(D.to_units(text)) == text


def test_from_units_rejects_half_a_pair() -> None:
    with pytest.raises(D.DeltaError, match="surrogate"):
        D.from_units(D.to_units("😀")[:1])


# ---------------------------------------------------------------- validate


def test_validate_keeps_every_op_and_normalize_makes_it_canonical() -> None:
    ops: D.Delta = [{"retain": 1}, {"retain": 2}, {"delete": 1}, {"insert": "x"}, {"retain": 4}]
    assert D.validate(ops) == ops
    assert D.validate(ops)[0] is not ops[0]
    assert D.normalize(ops) == [{"retain": 3}, {"insert": "x"}, {"delete": 1}]
    assert D.validate([]) == D.normalize([]) == []


@pytest.mark.parametrize(
    "ops",
    [
        {"retain": 1},
        [["retain", 1]],
        [{}],
        [{"retain": 0}],
        [{"delete": -1}],
        [{"retain": True}],
        [{"delete": 1.0}],
        [{"retain": "1"}],
        [{"insert": ""}],
        [{"insert": 5}],
        [{"insert": None}],
        [{"insert": "a", "attributes": {}}],
        [{"retain": 1, "delete": 1}],
        [{"format": 1}],
        [{"insert": "a\r\nb"}],
        [{"insert": "\ud83d"}],
        [{"insert": "x\ude00"}],
    ],
)
def test_validate_rejects_malformed_ops(ops: object) -> None:
    with pytest.raises(D.DeltaError):
        D.validate(ops)


# ---------------------------------------------------------------- apply


@pytest.mark.parametrize(
    ("text", "delta", "result"),
    [
        ("abc", [], "abc"),
        ("abc", [{"insert": "X"}], "Xabc"),
        ("abc", [{"retain": 3}, {"insert": "X"}], "abcX"),
        ("a😀b", [{"retain": 3}, {"insert": "X"}], "a😀Xb"),
        ("a😀b", [{"retain": 1}, {"delete": 2}], "ab"),
        ("👍🏽", [{"retain": 2}, {"delete": 2}], "👍"),
        ("e\u0301x", [{"retain": 1}, {"delete": 1}], "ex"),
        ("漢字", [{"delete": 1}, {"insert": "😀"}], "😀字"),
    ],
)
def test_apply(text: str, delta: D.Delta, result: str) -> None:
    assert D.apply(text, delta) == result


@pytest.mark.parametrize(
    "delta",
    [
        [{"retain": 4}],
        [{"delete": 4}],
        [{"retain": 1}, {"delete": 3}, {"retain": 1}],
        [{"retain": 2}, {"insert": "x"}],  # between the halves of 😀
        [{"retain": 1}, {"delete": 1}],  # half of 😀
    ],
)
def test_apply_rejects_bad_positions(delta: D.Delta) -> None:
    with pytest.raises(D.DeltaError):
        D.apply("a😀", delta)


# ---------------------------------------------------------------- compose


def test_compose_examples() -> None:
    assert D.compose([{"insert": "ab"}], [{"retain": 1}, {"insert": "X"}]) == [{"insert": "aXb"}]
    assert D.compose([{"insert": "a😀b"}], [{"retain": 1}, {"delete": 2}]) == [{"insert": "ab"}]
    assert D.compose([{"retain": 1}, {"delete": 1}], [{"delete": 1}]) == [{"delete": 2}]
    with pytest.raises(D.DeltaError):
        D.compose([{"insert": "😀"}], [{"retain": 1}, {"delete": 1}])


@settings(max_examples=300)
@given(st.data(), texts)
def test_compose_is_apply_then_apply(data: st.DataObject, text: str) -> None:
    a = data.draw(deltas(text))
    middle = D.apply(text, a)
    b = data.draw(deltas(middle))
    assert D.apply(text, D.compose(a, b)) == D.apply(middle, b)


# ---------------------------------------------------------------- transform


def test_transform_priority_orders_inserts_at_one_spot() -> None:
    a: D.Delta = [{"retain": 1}, {"insert": "A"}]
    b: D.Delta = [{"retain": 1}, {"insert": "B"}]
    assert D.apply(D.apply("xy", a), D.transform(a, b, priority=True)) == "xABy"
    assert D.apply(D.apply("xy", a), D.transform(a, b, priority=False)) == "xBAy"


def test_transform_drops_what_the_other_deleted() -> None:
    a = [{"retain": 1}, {"delete": 2}]
    b = [{"retain": 2}, {"delete": 2}]
    assert D.transform(b, a, priority=False) == [{"retain": 1}, {"delete": 1}]


@settings(max_examples=300)
@given(st.data(), texts, st.booleans())
def test_transform_converges(data: st.DataObject, text: str, priority: bool) -> None:
    """Both orders give one text (TP1), with the tie broken the same way in both."""
    a, b = data.draw(deltas(text)), data.draw(deltas(text))
    left = D.apply(D.apply(text, a), D.transform(a, b, priority))
    right = D.apply(D.apply(text, b), D.transform(b, a, not priority))
    assert left == right


@settings(max_examples=200)
@given(st.data(), texts, st.booleans())
def test_transform_index_agrees_with_transform(
    data: st.DataObject, text: str, priority: bool
) -> None:
    """A caret moves like a one-character insert made at the caret."""
    cut = data.draw(st.integers(0, len(text)))
    index = D.utf16_len(text[:cut])
    other = data.draw(deltas(text))
    caret: D.Delta = [{"retain": index}, {"insert": "\x00"}] if index else [{"insert": "\x00"}]
    moved = D.apply(D.apply(text, other), D.transform(other, caret, not priority))
    assert D.utf16_len(moved[: moved.index("\x00")]) == D.transform_index(other, index, priority)


# ---------------------------------------------------------------- diff


def _naive_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@settings(max_examples=60)
@given(texts, texts, texts, texts, st.sampled_from([0, 1, 70_000, 140_001]))
def test_common_prefix_and_suffix(
    head: str, mid_a: str, mid_b: str, tail: str, repeat: int
) -> None:
    """Slice halving finds what a character walk finds, also past its 64 K pieces."""
    head, tail = head + "x" * repeat, "y" * repeat + tail
    a, b = head + mid_a + tail, head + mid_b + tail
    prefix = D.common_prefix(a, b)
    assert prefix == _naive_prefix(a, b)
    limit = min(len(a), len(b)) - prefix
    suffix = D.common_suffix(a, b, limit)
    assert suffix == min(_naive_prefix(a[::-1], b[::-1]), limit)
    assert D.common_suffix(a, b, len(a) + len(b)) == _naive_prefix(a[::-1], b[::-1])


@settings(max_examples=300)
@given(texts, texts)
def test_diff_turns_old_into_new(old: str, new: str) -> None:
    assert D.apply(old, D.diff(old, new)) == new


def test_diff_of_equal_texts_is_empty() -> None:
    assert D.diff("same\n", "same\n") == []


def test_diff_is_small_for_a_small_change() -> None:
    old = "".join(f"line {i}\n" for i in range(2000))
    new = old.replace("line 1000\n", "line 1000!\n").replace("line 5\n", "")
    change = D.diff(old, new)
    assert D.apply(old, change) == new
    assert sum(len(op["insert"]) for op in change if "insert" in op) == 1
    assert sum(op["delete"] for op in change if "delete" in op) == len("line 5\n")


def test_diff_keeps_matching_lines_between_changes() -> None:
    old = "alpha\nbeta\ngamma\ndelta\n"
    new = "ALPHA\nbeta\ngamma\nDELTA\n"
    change = D.diff(old, new)
    assert D.apply(old, change) == new
    assert sum(op["delete"] for op in change if "delete" in op) < len(old) // 2


def test_diff_never_splits_a_surrogate_pair() -> None:
    # 😀 and 😁 share their high surrogate: a unit-level diff would cut between.
    change = D.diff("x😀y", "x😁y")
    assert change == [{"retain": 1}, {"insert": "😁"}, {"delete": 2}]
