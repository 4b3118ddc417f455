"""The XSS corpus (tests/xss_payloads.txt) through everything the server renders: the
preview, the export, and every page and fragment a title, a text, a display name or a
version label reaches. Nothing active may come out of a payload: each page has exactly
the active markup (scripts, handlers, htmx attributes, links) of the same page made from
harmless input. e2e/test_xss.py then proves it in a real browser."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client

from collab import fragments, history, store
from collab.preview import PreviewState
from tests.html import parse
from tests.xss_corpus import CANARY, Payload, load, packed

PAYLOADS = load()
ACTIVE_TAGS = {
    "script", "iframe", "frame", "object", "embed", "base", "meta", "link", "form", "style",
    "svg", "math", "template", "noscript", "button", "textarea", "select", "video",
    "audio", "source", "marquee", "body",
}  # fmt: skip
# Kept by the sanitiser on purpose (safe links, pictures, task-list boxes): not counted,
# but their attributes are (handlers, htmx, style, bad URLs).
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "data", "xlink:href", "srcdoc", "to"}
BAD_SCHEME = re.compile(r"^(javascript|vbscript|data):")


def url_scheme_is_bad(value: str) -> bool:
    # As a browser reads a URL (WHATWG URL): C0 controls and spaces at either end, and
    # tabs and line breaks anywhere, are dropped; the scheme is case-insensitive.
    cleaned = re.sub(r"[\t\n\r]", "", value.strip("".join(map(chr, range(0x21))))).lower()
    return bool(BAD_SCHEME.match(cleaned))


def active(html: str) -> Counter[str]:
    """What in `html` could run or load something: elements of those kinds, event
    handler and htmx attributes, URL attributes (and whether their scheme is bad)."""
    found: Counter[str] = Counter()
    for element in parse(html).all:
        if element.tag in ACTIVE_TAGS:
            found[f"<{element.tag}>"] += 1
        for name, value in element.attrs.items():
            if name.startswith("on") or name.startswith("hx-") or name in {"style", "srcdoc"}:
                found[f"{element.tag}[{name}]"] += 1
            if name in URL_ATTRIBUTES and url_scheme_is_bad(value):
                found[f"BAD {element.tag}[{name}]={value[:40]}"] += 1
    return found


def test_the_corpus_is_large_and_numbered() -> None:
    assert len(PAYLOADS) >= 50
    assert [p.n for p in PAYLOADS] == list(range(1, len(PAYLOADS) + 1))
    # Each payload says who it is when it runs (a call or a request the browser test
    # watches), but the base64 one, which would show an alert (the test watches dialogs).
    silent = [
        p.n for p in PAYLOADS if f"xss({p.n})" not in p.text and CANARY + str(p.n) not in p.text
    ]
    assert all("base64," in PAYLOADS[n - 1].text for n in silent), silent


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: str(p.n))
def test_the_preview_keeps_nothing_active(payload: Payload) -> None:
    html = "".join(b.html for b in PreviewState().render_full(payload.text))
    assert not active(html), (payload.text, html)
    for element in parse(html).all:  # the few kept: safe links, pictures, task boxes
        assert not any(url_scheme_is_bad(v) for v in element.attrs.values()), html
        if element.tag == "input":
            assert element.attrs.get("type", "checkbox") == "checkbox", html
            assert "disabled" in element.attrs, html


def harmless(payload: Payload) -> str:
    """Input of the same shape with nothing active: every markup character replaced."""
    return twin(payload.text)


def twin(text: str) -> str:
    return re.sub(r"[<>\"'`&=:/\\{}$%\[\]()!#*_|\-]", "x", text)


def pages_of(client: Client, title: str, text: str, author: str, label: str) -> dict[str, Any]:
    """The active markup of every page and partial that shows this document's title,
    text, an author or a version label; and checks that the text comes back exactly."""
    doc = store.create_document(title, text, author=author[:80])
    history.name_version(doc.id, 1, history.clean_label(label), author[:80])
    rendered: dict[str, Any] = {}
    editor = None
    for path in [
        f"/d/{doc.id}/",
        f"/d/{doc.id}/history/",
        f"/d/{doc.id}/v/1/",
        f"/d/{doc.id}/v/0/?against=current",
        f"/d/{doc.id}/live",
        f"/d/{doc.id}/share/",
        f"/d/{doc.id}/export.html",
    ]:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        # Ids, tokens and nonces differ between two documents: compare names only.
        rendered[path.replace(doc.id, "ID")] = active(response.content.decode())
        editor = editor or parse(response.content)
    # The text area holds the text exactly (nothing broke out of it); the protocol's
    # json_script still parses.
    assert editor is not None
    (area,) = [e for e in editor.all if e.tag == "textarea"]
    assert area.text.removeprefix("\n") == text
    assert json.loads(editor.by_id["tandem-protocol"].text)
    return rendered


@pytest.mark.django_db
def test_payload_titles_texts_and_labels_render_inert_on_every_page(client: Client) -> None:
    """Documents with payloads as title, text, author and version label, against the
    same documents from harmless input: every page and partial (and the list of all of
    them, and its filter) has the same active markup."""
    whole = "\n\n".join(p.text for p in PAYLOADS)
    for title, text, label in [(c, c, c) for c in packed()] + [("All", whole, "all")]:
        got = pages_of(client, title, text, author=title, label=label)
        expected = pages_of(client, twin(title), twin(text), author=twin(title), label=twin(label))
        assert got == expected, (title, text[:200])
    listed = active(client.get("/").content.decode())
    for chunk in packed():
        found = client.get("/?q=" + quote(chunk[:20]), headers={"HX-Request": "true"})
        assert found.status_code == 200
        assert "on" not in {k.split("[")[-1][:2] for k in active(found.content.decode())}
    twins = sorted(twin(c) for c in packed())
    assert active(client.get("/").content.decode()) == listed
    assert len(twins) == len(packed())


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: str(p.n))
def test_payload_names_render_inert_in_presence(payload: Payload) -> None:
    from collab.protocol import clean_name

    name = clean_name(payload.text)
    html = fragments.presence([name, "Ann"], swap_oob=True)
    same = fragments.presence([clean_name(harmless(payload)) or "x", "Ann"], swap_oob=True)
    assert active(html) == active(same), html
    people = [e for e in parse(html).all if e.tag == "li"]
    assert people[0].attrs["data-name"] == name  # the name, as typed (escaped, not lost)


def test_the_harmless_twin_really_is_harmless() -> None:
    # The comparison above means something only if the twin has no markup of its own.
    for payload in PAYLOADS:
        assert not re.search(r"[<>&\"']", harmless(payload))
