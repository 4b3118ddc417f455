"""HTML fragments: the partials that show a document, rendered from the same templates
whether they answer an HTTP request or are broadcast over a WebSocket."""

from __future__ import annotations

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


def person(name: str) -> Person:
    initials = "".join(_first_letters(name)[:2]).upper() or "?"
    # A stable colour per name, so people keep theirs across reloads.
    hue = int.from_bytes(hashlib.sha1(name.encode()).digest()[:2], "big") % 360
    return Person(name=name, initials=initials, hue=hue)


def _first_letters(name: str) -> list[str]:
    """The first letter or digit of each word that has one ("(Zoë" gives "Z", "-" none):
    static/js/presence.js's `initials` does the same."""
    firsts = (next((c for c in word if c.isalnum()), "") for word in name.split())
    return [c for c in firsts if c]


def presence(names: Iterable[str], *, swap_oob: bool = False) -> str:
    people = [person(n) for n in names]
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
