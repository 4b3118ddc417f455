"""The JSON API: create, list, read, replace text, delete; and the downloads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient, Client

from collab import store
from collab.models import DocumentUpdate
from editor.models import Document
from tests.test_consumer_sync import Editor, apply

JSON = "application/json"


def post_json(client: Client, url: str, body: Any) -> Any:
    return client.post(url, data=json.dumps(body), content_type=JSON)


@pytest.mark.django_db
class TestCreate:
    def test_creates_a_document_with_text(self, client: Client) -> None:
        response = post_json(client, "/api/documents/", {"title": "Plan", "text": "# Plan\r\n"})
        assert response.status_code == 201
        body = response.json()
        assert body["title"] == "Plan"
        assert body["url"] == f"/d/{body['id']}/"
        assert body["version"] == 1
        # Stored with LF line endings, as the browser would have them.
        assert store.read_document(body["id"]) == ("# Plan\n", 1)

    def test_title_and_text_are_optional(self, client: Client) -> None:
        body = post_json(client, "/api/documents/", {}).json()
        assert body["title"] == "Untitled"
        assert store.read_document(body["id"]) == ("", 0)

    @pytest.mark.parametrize(
        ("body", "status", "message"),
        [
            ({"text": 5}, 400, '"text" must be a string'),
            ({"title": ["x"]}, 400, '"title" must be a string'),
            ({"title": "x" * 201}, 400, "longer than 200"),
            ([1, 2], 400, "JSON object"),
        ],
    )
    def test_bad_input_gets_a_clear_error_and_creates_nothing(
        self, client: Client, body: Any, status: int, message: str
    ) -> None:
        response = post_json(client, "/api/documents/", body)
        assert response.status_code == status
        assert message in response.json()["error"]
        assert Document.objects.count() == 0

    def test_refuses_a_body_that_is_not_json(self, client: Client) -> None:
        response = client.post("/api/documents/", data="title=x", content_type="text/plain")
        assert response.status_code == 415
        response = client.post("/api/documents/", data="{nope", content_type=JSON)
        assert response.status_code == 400
        assert Document.objects.count() == 0

    def test_needs_no_csrf_token_but_only_takes_json(self) -> None:
        client = Client(enforce_csrf_checks=True)
        assert post_json(client, "/api/documents/", {"title": "x"}).status_code == 201
        form = client.post("/api/documents/", data={"title": "x"})
        assert form.status_code == 415


@pytest.mark.django_db
def test_list_and_get(client: Client) -> None:
    a = store.create_document("A", "alpha")
    b = store.create_document("B", "beta")
    listed = client.get("/api/documents/").json()["documents"]
    assert [d["id"] for d in listed] == [b.id, a.id]
    got = client.get(f"/api/documents/{a.id}/").json()
    assert got["text"] == "alpha"
    assert got["version"] == 1
    assert got["title"] == "A"
    assert client.get("/api/documents/nope/").status_code == 404


@pytest.mark.django_db
def test_delete(client: Client) -> None:
    doc = store.create_document("A", "alpha")
    assert client.delete(f"/api/documents/{doc.id}/").status_code == 204
    assert not Document.objects.filter(pk=doc.id).exists()
    assert not DocumentUpdate.objects.filter(document_id=doc.id).exists()
    assert client.delete(f"/api/documents/{doc.id}/").status_code == 404


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_replace_text_is_a_minimal_merged_change_live_editors_see() -> None:
    doc = await database_sync_to_async(store.create_document)("A", "one\ntwo\nthree\n")
    editor = Editor(doc.id, "tab-a-0001")
    await editor.connect()
    await editor.sync(1, [])
    client = AsyncClient()
    response = await client.put(
        f"/api/documents/{doc.id}/text",
        data=json.dumps({"text": "one\n2\nthree\n"}),
        content_type=JSON,
    )
    assert response.status_code == 200
    assert response.json()["version"] == 2
    push = await editor.receive()
    assert (push["type"], push["base"], push["version"]) == ("push", 1, 2)
    # Only the changed word travels: "one\n" and "\nthree\n" are kept, not re-inserted.
    assert push["delta"][0] == {"retain": 4}
    assert apply("one\ntwo\nthree\n", push["delta"]) == "one\n2\nthree\n"
    await editor.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_replace_text_accepts_plain_text_and_refuses_bad_input() -> None:
    doc = await database_sync_to_async(store.create_document)("A", "x")
    client = AsyncClient()
    url = f"/api/documents/{doc.id}/text"
    response = await client.put(url, data="y\r\nz", content_type="text/plain")
    assert response.status_code == 200
    assert (await database_sync_to_async(store.read_document)(doc.id))[0] == "y\nz"
    bad = await client.put(url, data=json.dumps({"text": None}), content_type=JSON)
    assert bad.status_code == 400
    missing = await client.put(
        "/api/documents/nope/text", data=json.dumps({"text": ""}), content_type=JSON
    )
    assert missing.status_code == 404
    unchanged = await client.put(url, data="y\nz", content_type="text/plain")
    assert unchanged.json()["version"] == response.json()["version"]


@pytest.mark.django_db
class TestExport:
    def test_markdown_and_text(self, client: Client) -> None:
        doc = store.create_document("Café notes!", "# Hi 😀\n")
        md = client.get(f"/d/{doc.id}/export.md")
        assert md.status_code == 200
        assert md["Content-Type"] == "text/markdown; charset=utf-8"
        assert md["Content-Disposition"] == 'attachment; filename="cafe-notes.md"'
        assert md.content.decode() == "# Hi 😀\n"
        txt = client.get(f"/d/{doc.id}/export.txt")
        assert txt["Content-Type"] == "text/plain; charset=utf-8"
        assert txt.content.decode() == "# Hi 😀\n"

    def test_html_is_rendered_and_sanitised(self, client: Client) -> None:
        doc = store.create_document("T", "# Hi\n\n<script>alert(1)</script>\n\n[x](javascript:y)")
        html = client.get(f"/d/{doc.id}/export.html").content.decode()
        assert "<h1>Hi</h1>" in html
        assert "<title>T</title>" in html
        assert "<script>alert" not in html
        assert 'href="javascript' not in html.lower()
        # A web page of the document, not of the live preview's machinery.
        assert "data-len" not in html and 'class="block"' not in html and "<section" not in html

    def test_unknown_format_or_document_is_404(self, client: Client) -> None:
        doc = store.create_document("T", "x")
        assert client.get(f"/d/{doc.id}/export.pdf").status_code == 404
        assert client.get("/d/nope/export.md").status_code == 404
