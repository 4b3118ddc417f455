"""The few facts about how a Tandem document is laid out in pycrdt, in one place."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from pycrdt import Doc, Text

TEXT_KEY = "text"


def new_client_id() -> int:
    """A fresh writer id. pycrdt needs it to fit in 53 bits; every writing Doc needs its own."""
    return secrets.randbits(53) or 1


def new_doc(updates: Iterable[bytes] = ()) -> tuple[Doc, Text]:
    """A Doc with its own writer id and the document's text, built from `updates` in order."""
    doc: Doc = Doc(client_id=new_client_id())
    text = doc.get(TEXT_KEY, type=Text)
    for update in updates:
        doc.apply_update(update)
    return doc, text


def text_update(text: str) -> bytes:
    """The update that creates a document holding `text`."""
    doc, ytext = new_doc()
    updates: list[bytes] = []
    sub = doc.observe(lambda event: updates.append(event.update))
    if text:
        ytext.insert(0, text)
    doc.unobserve(sub)
    return updates[0] if updates else b""
