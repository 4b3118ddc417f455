"""The document pages: list, filter, create, rename, delete, the editor page, 404, CSRF.

Each view answers an HTMX request with the partial it swaps, and a plain request with the
whole page.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.template.loader import render_to_string
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from collab import store
from collab.models import DocumentUpdate
from editor.models import Document
from editor.views import PAGE_PREVIEW_MAX_CHARS, text_chunks
from tests.conftest import htmx
from tests.html import parse
from tests.test_vendored import vendored_imports

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parent.parent

MakeDoc = Callable[..., Document]


def _age(doc: Document, hours: float) -> None:
    Document.objects.filter(pk=doc.pk).update(updated_at=timezone.now() - timedelta(hours=hours))


def _listed_titles(html: bytes) -> list[str]:
    page = parse(html)
    return [
        e.text.strip()
        for e in page.all
        if e.tag == "span" and "doc-title" in e.attrs.get("class", "").split()
    ]


# -- the list ----------------------------------------------------------------------------
def test_list_shows_titles_most_recent_first(client: Client, make_doc: MakeDoc) -> None:
    for title, hours in [("Two days", 48), ("Just now", 0), ("An hour", 1)]:
        _age(make_doc(title), hours)
    response = client.get("/")
    assert response.status_code == 200
    assert _listed_titles(response.content) == ["Just now", "An hour", "Two days"]
    page = parse(response.content)
    assert "document-list" in page.by_id and "filter" in page.by_id
    assert b"<html" in response.content


def test_list_shows_when_each_document_was_last_edited(client: Client, make_doc: MakeDoc) -> None:
    _age(make_doc("Report"), 3)
    body = client.get("/").content.decode()
    assert "edited 3\xa0hours ago" in body


def test_empty_list_invites_to_create(client: Client) -> None:
    page = parse(client.get("/").content)
    assert "No documents yet" in page.by_id["document-list"].text
    assert "new-document" in page.by_id


def test_filter_narrows_the_list_by_title(client: Client, make_doc: MakeDoc) -> None:
    for title in ["Shopping list", "Meeting notes", "Notes on lists"]:
        make_doc(title)
    assert sorted(_listed_titles(client.get("/?q=list").content)) == [
        "Notes on lists",
        "Shopping list",
    ]
    # Every word must match, in any case and order.
    assert _listed_titles(client.get("/?q=NOTES+meeting").content) == ["Meeting notes"]
    assert len(_listed_titles(client.get("/?q=++").content)) == 3
    response = client.get("/?q=nothing-like-this")
    assert _listed_titles(response.content) == []
    assert "No document matches" in parse(response.content).by_id["document-list"].text
    # The filter box keeps what was typed.
    assert parse(client.get("/?q=list").content).by_id["filter"].attrs["value"] == "list"


def test_filter_as_you_type_answers_htmx_with_the_list_partial(
    client: Client, make_doc: MakeDoc
) -> None:
    make_doc("Alpha")
    make_doc("Beta")
    response = client.get("/?q=alp", headers=htmx("document-list"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body and "<header" not in body
    assert body.strip().startswith('<div id="document-list"')
    assert _listed_titles(response.content) == ["Alpha"]


def test_an_htmx_request_for_another_target_gets_the_whole_page(
    client: Client, make_doc: MakeDoc
) -> None:
    make_doc("Alpha")
    response = client.get("/", headers=htmx("main"))
    assert b"<html" in response.content


def test_the_filter_input_asks_htmx_for_the_list_as_you_type(client: Client) -> None:
    attrs = parse(client.get("/").content).by_id["filter"].attrs
    assert attrs["hx-get"] == "/"
    assert attrs["hx-target"] == "#document-list"
    assert "input" in attrs["hx-trigger"]


def test_titles_are_escaped_in_the_list(client: Client, make_doc: MakeDoc) -> None:
    make_doc("<img src=x onerror=alert(1)>")
    body = client.get("/").content.decode()
    assert "<img src=x" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body


# -- create ------------------------------------------------------------------------------
def test_create_opens_the_new_document_in_the_editor(client: Client) -> None:
    response = client.post("/d/new/")
    assert response.status_code == 302
    doc = Document.objects.get()
    assert response["Location"] == f"/d/{doc.id}/"
    assert doc.title == "Untitled"
    assert client.get(response["Location"]).status_code == 200


def test_create_with_a_title(client: Client) -> None:
    client.post("/d/new/", {"title": "  Plans  "})
    assert Document.objects.get().title == "Plans"


def test_create_over_htmx_redirects_the_browser(client: Client) -> None:
    response = client.post("/d/new/", headers=htmx())
    assert response.status_code == 200
    doc = Document.objects.get()
    assert response["HX-Redirect"] == f"/d/{doc.id}/"


def test_create_needs_a_post(client: Client) -> None:
    assert client.get("/d/new/").status_code == 405
    assert not Document.objects.exists()


# -- rename ------------------------------------------------------------------------------
def test_rename(client: Client, make_doc: MakeDoc) -> None:
    doc = make_doc("Old")
    response = client.post(f"/d/{doc.id}/rename/", {"title": "  New   name "})
    assert response.status_code == 302
    assert response["Location"] == f"/d/{doc.id}/"
    doc.refresh_from_db()
    assert doc.title == "New name"
    # The list and the editor show the new title.
    assert _listed_titles(client.get("/").content) == ["New name"]
    editor = parse(client.get(f"/d/{doc.id}/").content)
    assert editor.by_id["title-input"].attrs["value"] == "New name"


def test_rename_from_the_list_returns_to_the_list(client: Client, make_doc: MakeDoc) -> None:
    doc = make_doc("Old")
    response = client.post(f"/d/{doc.id}/rename/", {"title": "New", "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_rename_counts_as_an_edit_for_the_list_order(client: Client, make_doc: MakeDoc) -> None:
    older, newer = make_doc("Older"), make_doc("Newer")
    _age(older, 5)
    _age(newer, 1)
    client.post(f"/d/{older.id}/rename/", {"title": "Older, renamed"})
    assert _listed_titles(client.get("/").content) == ["Older, renamed", "Newer"]


@pytest.mark.parametrize("title", ["", "   ", "\n\t "])
def test_rename_to_an_empty_title_is_refused_and_keeps_the_old_one(
    client: Client, make_doc: MakeDoc, title: str
) -> None:
    doc = make_doc("Keep me", "some text")
    response = client.post(f"/d/{doc.id}/rename/", {"title": title})
    assert response.status_code == 422
    assert "A title cannot be empty." in response.content.decode()
    # The form shows the title that is still in force, and nothing was lost.
    doc.refresh_from_db()
    assert doc.title == "Keep me"
    assert store.read_document(doc.id)[0] == "some text"


def test_rename_too_long_is_refused(client: Client, make_doc: MakeDoc) -> None:
    doc = make_doc("Keep me")
    response = client.post(f"/d/{doc.id}/rename/", {"title": "x" * 201})
    assert response.status_code == 422
    doc.refresh_from_db()
    assert doc.title == "Keep me"


def test_rename_over_htmx_from_the_list_answers_with_the_row(
    client: Client, make_doc: MakeDoc
) -> None:
    doc = make_doc("Old")
    response = client.post(f"/d/{doc.id}/rename/", {"title": "New"}, headers=htmx(f"doc-{doc.id}"))
    assert response.status_code == 200
    body = response.content.decode()
    assert body.strip().startswith(f'<li id="doc-{doc.id}"')
    assert _listed_titles(response.content) == ["New"]
    assert "<html" not in body


def test_rename_over_htmx_from_the_editor_answers_with_the_title_form(
    client: Client, make_doc: MakeDoc
) -> None:
    doc = make_doc("Old")
    response = client.post(f"/d/{doc.id}/rename/", {"title": "New"}, headers=htmx("title"))
    assert response.status_code == 200
    page = parse(response.content)
    assert page.by_id["title"].tag == "form"
    assert page.by_id["title-input"].attrs["value"] == "New"
    assert "<html" not in response.content.decode()


def test_a_refused_rename_over_htmx_shows_the_error_in_place(
    client: Client, make_doc: MakeDoc
) -> None:
    doc = make_doc("Keep me")
    response = client.post(f"/d/{doc.id}/rename/", {"title": " "}, headers=htmx("title"))
    assert response.status_code == 422
    page = parse(response.content)
    assert page.by_id["title"].tag == "form"
    alerts = [e for e in page.all if e.attrs.get("role") == "alert"]
    assert alerts and "cannot be empty" in alerts[0].text
    row = client.post(f"/d/{doc.id}/rename/", {"title": " "}, headers=htmx(f"doc-{doc.id}"))
    assert row.status_code == 422
    assert "cannot be empty" in row.content.decode()
    assert _listed_titles(row.content) == ["Keep me"]


def test_rename_of_an_unknown_document_is_404(client: Client) -> None:
    assert client.post("/d/nope/rename/", {"title": "x"}).status_code == 404


# -- delete ------------------------------------------------------------------------------
def test_delete_with_post(client: Client, make_doc: MakeDoc) -> None:
    doc = make_doc("Bye", "text")
    response = client.post(f"/d/{doc.id}/delete/")
    assert response.status_code == 302 and response["Location"] == "/"
    assert not Document.objects.filter(pk=doc.id).exists()
    assert not DocumentUpdate.objects.filter(document_id=doc.id).exists()
    assert client.get(f"/d/{doc.id}/").status_code == 404


def test_delete_from_the_list_over_htmx_removes_the_row(client: Client, make_doc: MakeDoc) -> None:
    doc, other = make_doc("Bye"), make_doc("Stay")
    response = client.delete(f"/d/{doc.id}/delete/", headers=htmx(f"doc-{doc.id}"))
    assert response.status_code == 200
    assert response.content == b""  # the row is swapped for nothing
    assert list(Document.objects.values_list("id", flat=True)) == [other.id]


def test_delete_from_the_editor_over_htmx_goes_back_to_the_list(
    client: Client, make_doc: MakeDoc
) -> None:
    doc = make_doc("Bye")
    response = client.delete(f"/d/{doc.id}/delete/", headers=htmx("collab"))
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/"
    assert not Document.objects.exists()


def test_delete_asks_for_confirmation_in_the_list(client: Client, make_doc: MakeDoc) -> None:
    doc = make_doc("Bye")
    page = parse(client.get("/").content)
    buttons = [e for e in page.all if e.attrs.get("hx-delete") == f"/d/{doc.id}/delete/"]
    assert len(buttons) == 1
    assert "Bye" in buttons[0].attrs["hx-confirm"]


def test_delete_needs_post_or_delete(client: Client, make_doc: MakeDoc) -> None:
    doc = make_doc("Stay")
    assert client.get(f"/d/{doc.id}/delete/").status_code == 405
    assert Document.objects.filter(pk=doc.id).exists()


def test_delete_of_an_unknown_document_is_404(client: Client) -> None:
    assert client.post("/d/nope/delete/").status_code == 404


# -- the editor page ---------------------------------------------------------------------
def test_editor_page_has_every_element_of_the_contract(client: Client, make_doc: MakeDoc) -> None:
    doc = make_doc("Notes", "# Hi")
    response = client.get(f"/d/{doc.id}/")
    assert response.status_code == 200
    page = parse(response.content)
    for element_id in ["title", "editor", "preview", "presence", "status"]:
        assert element_id in page.by_id, element_id
    # The editing surface (static/js/surface.js) around the server-rendered text area.
    assert page.by_id["editor"].tag == "tandem-editor"
    status = page.by_id["status"].attrs
    assert status["data-state"] == "connecting"
    assert status["data-version"] == "1"
    assert page.by_id["title-input"].attrs["value"] == "Notes"
    connectors = [e for e in page.all if "ws-connect" in e.attrs]
    assert len(connectors) == 1
    assert connectors[0].attrs["ws-connect"] == f"/ws/d/{doc.id}/"
    assert "ws" in connectors[0].attrs["hx-ext"].split(",")


def test_editor_page_loads_htmx_and_its_websocket_extension_locally(
    client: Client, make_doc: MakeDoc
) -> None:
    doc = make_doc()
    page = parse(client.get(f"/d/{doc.id}/").content)
    sources = [e.attrs["src"] for e in page.all if e.tag == "script" and "src" in e.attrs]
    assert any("htmx" in s and "ws" not in s.rsplit("/", 1)[-1] for s in sources), sources
    assert any("hx-ws" in s or "/ws" in s for s in sources), sources
    assert all(s.startswith("/static/") for s in sources), sources


@pytest.mark.parametrize(
    "text",
    [
        "# Title\n\nSome *text*.\n",
        "\nstarts with a newline",
        "\n\ntwo newlines first",
        "emoji 😀👍🏽 and CJK 漢字 and e\u0301",
        "</textarea><script>alert('x')</script>",
        "",
    ],
)
def test_editor_page_renders_the_stored_text_exactly(
    client: Client, make_doc: MakeDoc, text: str
) -> None:
    doc = make_doc("T", text)
    body = client.get(f"/d/{doc.id}/").content.decode()
    page = parse(body)
    # The HTML parser drops one newline right after <textarea>: the page puts one there.
    # The client's shadow is that text area's defaultValue: the text is shipped once.
    assert fallback_text(page) == "\n" + text
    assert "initial-text" not in page.by_id
    assert "<script>alert" not in body


def fallback_text(page: Any) -> str:
    """The text of the text area inside #editor (what the page shows before its scripts
    run, and where static/js/surface.js reads the text from)."""
    editor = page.by_id["editor"]
    assert editor.tag == "tandem-editor"
    (area,) = [c for c in editor.children if c.tag == "textarea"]
    return area.text


def test_editor_page_ships_the_text_once(client: Client, make_doc: MakeDoc) -> None:
    text = "unique-marker-" + "x" * 1000
    doc = make_doc("T", text)
    body = client.get(f"/d/{doc.id}/").content.decode()
    assert body.count("unique-marker-") == 2  # the text area and the preview, nothing else


def test_editor_page_escapes_a_textarea_breakout(client: Client, make_doc: MakeDoc) -> None:
    doc = make_doc("T", "</textarea><img src=x onerror=alert(1)>")
    body = client.get(f"/d/{doc.id}/").content.decode()
    assert body.count("</textarea>") == 1
    assert "&lt;/textarea&gt;&lt;img src=x onerror=alert(1)&gt;" in body


def test_text_with_cr_line_ends_is_stored_and_shown_with_lf_only(client: Client) -> None:
    # What a script or an import sends; browsers turn CR and CRLF into LF in a text area,
    # so the stored text (the editors' shadow) must not have them either.
    response = client.post(
        "/api/documents/",
        data={"title": "T", "text": "one\r\ntwo\rthree\n"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    doc_id = response.json()["id"]
    assert store.read_document(doc_id)[0] == "one\ntwo\nthree\n"
    page = parse(client.get(f"/d/{doc_id}/").content)
    assert fallback_text(page) == "\none\ntwo\nthree\n"


def test_editor_page_title_is_the_document_title(client: Client, make_doc: MakeDoc) -> None:
    doc = make_doc("Quarterly <plan>")
    body = client.get(f"/d/{doc.id}/").content.decode()
    assert "<title>Quarterly &lt;plan&gt; · Tandem</title>" in body


# -- 404 and CSRF ------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/d/unknown-id/", "/d/" + "x" * 40 + "/", "/no/such/page"])
def test_unknown_address_is_a_real_404_page(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "404.html" in [t.name for t in response.templates]
    body = response.content.decode()
    assert "Nothing here" in body
    assert 'href="/"' in body  # a way back to the list
    assert "<html" in body


def test_csrf_is_enforced_on_every_post(make_doc: MakeDoc) -> None:
    doc = make_doc("Guarded")
    client = Client(enforce_csrf_checks=True)
    assert client.post("/d/new/").status_code == 403
    assert client.post(f"/d/{doc.id}/rename/", {"title": "Hacked"}).status_code == 403
    assert client.post(f"/d/{doc.id}/delete/").status_code == 403
    assert client.delete(f"/d/{doc.id}/delete/").status_code == 403
    doc.refresh_from_db()
    assert doc.title == "Guarded"
    assert Document.objects.count() == 1


def test_csrf_token_from_the_page_lets_posts_through(make_doc: MakeDoc) -> None:
    client = Client(enforce_csrf_checks=True)
    page = client.get("/")
    token = page.cookies["csrftoken"].value
    # htmx sends the token as a header (hx-headers on <body>); forms send it as a field.
    assert "X-CSRFToken" in parse(page.content).all[0].text or b"X-CSRFToken" in page.content
    response = client.post("/d/new/", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 302
    doc = Document.objects.get()
    response = client.post(f"/d/{doc.id}/rename/", {"title": "Mine", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    doc.refresh_from_db()
    assert doc.title == "Mine"


def test_editor_page_import_map_resolves_every_module_to_a_static_file(
    client: Client, make_doc: MakeDoc
) -> None:
    doc = make_doc("T", "text")
    page = parse(client.get(f"/d/{doc.id}/").content)
    (script,) = [e for e in page.all if e.tag == "script" and e.attrs.get("type") == "importmap"]
    imports = json.loads(script.text)["imports"]
    for name in ["@codemirror/state", "@codemirror/view", "@lezer/markdown", "/static/js/delta.js"]:
        assert imports[name].startswith("/static/"), name
    # Every package static/js/ imports from resolves to the one vendored bundle.
    bundle = imports["@codemirror/view"]
    assert bundle.startswith("/static/vendor/codemirror/codemirror.")
    assert {imports[name] for name in vendored_imports()} == {bundle}
    preloads = {e.attrs["href"] for e in page.all if e.attrs.get("rel") == "modulepreload"}
    assert set(imports.values()) <= preloads


def test_editor_template_renders_a_read_only_page(make_doc: MakeDoc) -> None:
    # A viewer may not edit (`can_edit` false): the page says so before any script runs.
    doc = make_doc("T", "text")
    context = {"document": doc, "text": "text", "version": 1, "blocks": [], "words": 1}
    context.update(updated_at=doc.updated_at, can_edit=True, protocol={})
    page = parse(render_to_string("editor/editor.html", {**context, "can_edit": False}))
    editor = page.by_id["editor"]
    assert "readonly" in editor.attrs
    (area,) = [c for c in editor.children if c.tag == "textarea"]
    assert "readonly" in area.attrs
    (note,) = [c for c in editor.children if c.attrs.get("class") == "readonly-note"]
    assert note.text.startswith("Read-only")
    page = parse(render_to_string("editor/editor.html", context))
    assert "readonly" not in page.by_id["editor"].attrs
    assert not [c for c in page.by_id["editor"].children if c.tag == "p"]


@given(st.text(alphabet=st.sampled_from("ab\n😀漢e\u0301"), max_size=400), st.integers(1, 50))
def test_text_chunks_join_to_the_text_and_cut_only_after_a_line(text: str, size: int) -> None:
    chunks = text_chunks(text, size)
    assert "".join(chunks) == text
    assert all(chunks)
    for chunk in chunks[:-1]:
        # Cut at the first line end once the chunk holds `size` characters.
        assert len(chunk) >= size
        assert chunk.find("\n", size - 1) == len(chunk) - 1


def test_a_big_document_page_ships_its_text_once_in_chunks_and_no_preview(
    client: Client, make_doc: MakeDoc
) -> None:
    line = "A line with 😀, 漢字 and e\u0301 <b>not markup</b> & more.\n"
    text = "\n" + line * (PAGE_PREVIEW_MAX_CHARS // len(line) + 10)
    assert len(text) > PAGE_PREVIEW_MAX_CHARS
    doc = make_doc("Big", text)
    body = client.get(f"/d/{doc.id}/").content.decode()
    page = parse(body)
    editor = page.by_id["editor"]
    (chunks,) = [c for c in editor.children if "editor-fallback" in c.attrs.get("class", "")]
    assert chunks.tag == "div"
    assert len(chunks.children) > 10
    assert "".join(c.text for c in chunks.children) == text
    assert body.count("<b>not markup</b>") == 0  # escaped
    assert "<textarea" not in body
    # No preview blocks and no word count: the room sends both when the editor connects.
    assert page.by_id["preview"].attrs.get("aria-busy") == "true"
    assert "counting words" in page.by_id["statusline"].text
