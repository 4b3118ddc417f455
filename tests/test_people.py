"""People's colours in a document: each name's own hue, moved only when it is too close
to the colour of someone who came earlier (collab.fragments.room_hues)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from collab.fragments import (
    MIN_HUE_APART,
    _hue_distance,
    own_hue,
    person,
    presence,
    room_hues,
)
from tests.html import parse


def close_pair() -> tuple[str, str]:
    """Two names whose own colours are nearly the same."""
    names = [f"Guest {i}" for i in range(60)]
    for a, b in itertools.combinations(names, 2):
        if _hue_distance(own_hue(a), own_hue(b)) < 10:
            return a, b
    raise AssertionError("no close pair among 60 names")


def test_someone_alone_has_their_own_colour() -> None:
    assert room_hues(["Ada"]) == {"Ada": own_hue("Ada")}
    assert person("Ada").hue == own_hue("Ada")


def test_the_later_of_two_close_colours_moves_and_the_earlier_keeps_its_own() -> None:
    first, second = close_pair()
    hues = room_hues([first, second])
    assert hues[first] == own_hue(first)
    assert _hue_distance(hues[first], hues[second]) >= MIN_HUE_APART
    # Moved no further than needed: to the edge of the first one's band.
    assert _hue_distance(hues[second], own_hue(second)) <= MIN_HUE_APART
    # The other order: the other one keeps its colour.
    assert room_hues([second, first])[second] == own_hue(second)


names = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=16)


@given(names)
def test_everyone_in_a_room_is_far_enough_from_everyone_else(given_names: list[str]) -> None:
    hues = room_hues(given_names)
    distinct = list(dict.fromkeys(given_names))
    assert list(hues) == distinct
    apart = min(MIN_HUE_APART, 360 // (2 * len(distinct)))
    for a, b in itertools.combinations(distinct, 2):
        assert _hue_distance(hues[a], hues[b]) >= apart, (a, b, hues)
    assert all(0 <= h < 360 for h in hues.values())
    # Whoever came first, and anyone far enough from those before, keeps their own.
    for i, name in enumerate(distinct):
        earlier = [hues[n] for n in distinct[:i]]
        if all(_hue_distance(own_hue(name), h) >= apart for h in earlier):
            assert hues[name] == own_hue(name)


def test_the_presence_list_shows_the_room_colours() -> None:
    first, second = close_pair()
    page = parse(presence([first, second, first]))  # the same name in two tabs: one colour
    hues = [int(li.attrs["data-hue"]) for li in page.all if li.tag == "li"]
    expected = room_hues([first, second])
    assert hues == [expected[first], expected[second], expected[first]]
