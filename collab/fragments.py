"""HTML fragments: the partials that show a document, rendered from the same templates
whether they answer an HTTP request or are broadcast over a WebSocket."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from collab.preview import Block


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    initials: str
    hue: int


def person(name: str, hue: int | None = None) -> Person:
    """`name` with its initials and colour: `hue`, or the name's own (`own_hue`)."""
    initials = "".join(_first_letters(name)[:2]).upper() or "?"
    return Person(name=name, initials=initials, hue=own_hue(name) if hue is None else hue)


def own_hue(name: str) -> int:
    """A stable colour per name, so people keep theirs across reloads."""
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:2], "big") % 360


# Two colours closer than this on the colour wheel can be hard to tell apart in a 2 px
# caret or a 3 px preview mark (40 degrees was: pink beside lilac in the dark theme).
# A crowd of n gets 360 / 2n, which is less from five people on.
MIN_HUE_APART = 90


def _hue_distance(a: int, b: int) -> int:
    d = abs(a - b) % 360
    return min(d, 360 - d)


def room_hues(names: Iterable[str]) -> dict[str, int]:
    """Each name's colour in one document, `names` in the order they came: its own hue,
    unless it is too close to the colour of someone who came earlier; then the free hue
    nearest its own. "Too close" is MIN_HUE_APART, or less in a crowd (360 / 2n for n
    names), so that a free hue always exists. The presence list and the carets frame
    both take their colours from here, so an avatar and its caret always match."""
    return dict(_room_hues(tuple(dict.fromkeys(names))))


@functools.lru_cache(maxsize=16)  # the presence list and the carets frame ask alike
def _room_hues(order: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    apart = min(MIN_HUE_APART, 360 // max(1, 2 * len(order)))
    blocked = bytearray(360)  # hues closer than `apart` to one already given
    hues: list[tuple[str, int]] = []
    for name in order:
        own = own_hue(name)
        hue = own
        # own, own+1, own-1, own+2, ...: the nearest free hue (one always is: see above).
        for step in range(720):
            hue = (own + (step + 1) // 2 * (1 if step % 2 else -1)) % 360
            if not blocked[hue]:
                break
        hues.append((name, hue))
        for d in range(1 - apart, apart):
            blocked[(hue + d) % 360] = 1
    return tuple(hues)


def _first_letters(name: str) -> list[str]:
    """The first letter or digit of each word that has one ("(Zoë" gives "Z", "-" none):
    static/js/presence.js's `initials` does the same."""
    firsts = (next((c for c in word if c.isalnum()), "") for word in name.split())
    return [c for c in firsts if c]


def presence(names: Iterable[str], *, swap_oob: bool = False) -> str:
    """The people in a document, `names` in the order they came (colours: room_hues)."""
    names = list(names)
    hues = room_hues(names)
    people = [person(n, hues[n]) for n in names]
    return render_to_string("editor/_presence.html", {"people": people, "swap_oob": swap_oob})


def statusline(words: int, version: int, updated_at: datetime, *, swap_oob: bool = False) -> str:
    return render_to_string(
        "editor/_statusline.html",
        {"words": words, "version": version, "updated_at": updated_at, "swap_oob": swap_oob},
    )


def preview(blocks: Sequence[Block], *, swap_oob: bool = False) -> str:
    return render_to_string(
        "editor/_preview.html",
        {"blocks": [mark_safe(b.html) for b in blocks], "swap_oob": swap_oob},
    )


def title(document: object, *, swap_oob: bool = False) -> str:
    return render_to_string("editor/_title.html", {"document": document, "swap_oob": swap_oob})


def live_ended(message: str) -> str:
    """The live view's last word: why it stopped (it does not reconnect)."""
    return render_to_string("editor/_live_ended.html", {"message": message})
