"""The history and import API, the version pages, and restore (merged live, undoable)."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient, Client

from collab import history, store
from collab.models import DocumentUpdate, NamedVersion
from editor.models import Document
from tests.test_consumer_sync import Editor, apply

JSON = "application/json"


def post_json(client: Client, url: str, body: Any, **extra: Any) -> Any:
    return client.post(url, data=json.dumps(body), content_type=JSON, **extra)


def edited(text: str, *more: str) -> Document:
    """A document whose versions 1.. hold `text`, then each of `more` (via the engine)."""
    doc = store.create_document("Doc", text)
    from collab.engine import DocumentEngine

    engine = DocumentEngine(store.load_log(doc.id))
    for new in more:
        update = engine.replace_text(new, "Bo")
        assert update is not None
        store.append(doc.id, [update])
    return doc


@pytest.mark.django_db
class TestVersions:
    def test_lists_sessions_newest_first_with_authors_and_counts(self, client: Client) -> None:
        doc = edited("one", "one two", "two")
        body = client.get(f"/api/documents/{doc.id}/versions").json()
        assert body["next"] is None
        [session] = body["versions"]  # all within a few minutes: one session
        assert session["version"] == 3
        assert session["authors"] == ["Bo", history.UNKNOWN_AUTHOR]
        assert (session["inserted"], session["deleted"]) == (3 + 4, 4)
        assert session["label"] is None
        assert set(session) >= {"version", "time", "authors", "inserted", "deleted", "label"}

    def test_pages_with_before_and_limit(self, client: Client) -> None:
        doc = edited("a", "ab", "abc")
        NamedVersion.objects.create(document=doc, version=1, label="First")
        NamedVersion.objects.create(document=doc, version=2, label="Second")
        url = f"/api/documents/{doc.id}/versions"
        first = client.get(url, {"limit": 2}).json()
        assert [v["version"] for v in first["versions"]] == [3, 2]
        assert first["next"] == 2
        second = client.get(url, {"limit": 2, "before": first["next"]}).json()
        assert [(v["version"], v["label"]) for v in second["versions"]] == [(1, "First")]
        assert second["next"] is None

    def test_named_filter_lists_only_named_versions(self, client: Client) -> None:
        doc = edited("a", "ab", "abc")
        NamedVersion.objects.create(document=doc, version=2, label="Draft")
        body = client.get(f"/api/documents/{doc.id}/versions", {"named": "1"}).json()
        assert [(v["version"], v["label"], v["inserted"]) for v in body["versions"]] == [
            (2, "Draft", 2)
        ]

    @pytest.mark.parametrize(
        ("query", "message"),
        [({"limit": "0"}, '"limit"'), ({"limit": "x"}, '"limit"'), ({"before": "-1"}, '"before"')],
    )
    def test_bad_paging_is_a_clear_400(self, client: Client, query: Any, message: str) -> None:
        doc = edited("a")
        response = client.get(f"/api/documents/{doc.id}/versions", query)
        assert response.status_code == 400
        assert message in response.json()["error"]

    def test_names_the_current_version(self, client: Client) -> None:
        doc = edited("a", "ab")
        url = f"/api/documents/{doc.id}/versions"
        response = post_json(client, url, {"label": "  Sent to Ann "})
        assert response.status_code == 201
        assert response.json() == {"version": 2, "label": "Sent to Ann", "previous": None}
        assert client.get(url).json()["versions"][0]["label"] == "Sent to Ann"
        again = post_json(client, url, {"label": "Final"})  # a rename, and says so
        assert again.json() == {"version": 2, "label": "Final", "previous": "Sent to Ann"}

    @pytest.mark.parametrize(
        ("body", "status", "message"),
        [
            ({"label": ""}, 400, "must not be empty"),
            ({"label": 3}, 400, "must be a string"),
            ({"label": "x", "version": 9}, 404, "versions 1 to 2"),
        ],
    )
    def test_bad_labels_change_nothing(
        self, client: Client, body: Any, status: int, message: str
    ) -> None:
        doc = edited("a", "ab")
        response = post_json(client, f"/api/documents/{doc.id}/versions", body)
        assert response.status_code == status
        assert message in response.json()["error"]
        assert not NamedVersion.objects.exists()

    def test_text_at_a_version(self, client: Client) -> None:
        doc = edited("one", "one two", "two")
        url = f"/api/documents/{doc.id}/"
        assert client.get(url, {"version": "2"}).json()["text"] == "one two"
        assert client.get(url, {"version": "0"}).json()["text"] == ""
        missing = client.get(url, {"version": "4"})
        assert missing.status_code == 404
        assert "versions 0 to 3" in missing.json()["error"]
        assert client.get(url, {"version": "x"}).status_code == 400


@pytest.mark.django_db
class TestAccess:
    def _guest(self, doc: Document, kind: str) -> Client:
        from editor import links

        tokens = links.tokens(doc)
        return Client(HTTP_AUTHORIZATION=f"Bearer {tokens[kind]}", REMOTE_ADDR="10.0.0.9")

    def test_a_viewer_browses_history_but_cannot_restore_or_name(self, settings: Any) -> None:
        settings.TANDEM_TRUST_LOOPBACK = False
        doc = edited("a", "ab")
        viewer = self._guest(doc, "view")
        assert viewer.get(f"/api/documents/{doc.id}/versions").status_code == 200
        assert viewer.get(f"/d/{doc.id}/v/1/").status_code == 200
        assert viewer.get(f"/d/{doc.id}/history/").status_code == 200
        assert viewer.get(f"/d/{doc.id}/live").status_code == 200
        named = post_json(viewer, f"/api/documents/{doc.id}/versions", {"label": "x"})
        restored = post_json(viewer, f"/api/documents/{doc.id}/restore", {"version": 1})
        assert (named.status_code, restored.status_code) == (403, 403)
        assert "view-only" in restored.json()["error"]

    def test_nobody_without_a_link_sees_history(self, settings: Any) -> None:
        settings.TANDEM_TRUST_LOOPBACK = False
        doc = edited("a")
        stranger = Client(REMOTE_ADDR="10.0.0.9")
        assert stranger.get(f"/api/documents/{doc.id}/versions").status_code == 403
        assert stranger.get(f"/d/{doc.id}/v/1/").status_code == 403
        assert stranger.get(f"/d/{doc.id}/live").status_code == 403


@pytest.mark.django_db
class TestPages:
    def test_a_past_version_renders_read_only(self, client: Client) -> None:
        doc = edited("# Old title", "# New title")
        page = client.get(f"/d/{doc.id}/v/1/").content.decode()
        assert "<h1" in page and "Old title" in page and "New title" not in page
        assert 'id="editor"' not in page
        assert client.get(f"/d/{doc.id}/v/7/").status_code == 404

    def test_the_changes_view_marks_insertions_and_deletions(self, client: Client) -> None:
        doc = edited("keep this gone", "keep this new")
        page = client.get(f"/d/{doc.id}/v/1/", {"against": "current"}).content.decode()
        assert "<del>gone</del>" in page and "<ins>new</ins>" in page
        against = client.get(f"/d/{doc.id}/v/2/", {"against": "1"}).content.decode()
        assert "<del>gone</del>" in against and "<ins>new</ins>" in against

    def test_the_panel_lists_sessions_and_pages(self, client: Client) -> None:
        doc = edited("a", "ab")
        page = client.get(f"/d/{doc.id}/history/").content.decode()
        assert 'id="history-list"' in page and 'data-version="2"' in page and "Bo" in page

    def test_the_editor_page_has_the_history_button(self, client: Client) -> None:
        doc = edited("a")
        assert 'id="history-button"' in client.get(f"/d/{doc.id}/").content.decode()


# ---------------------------------------------------------------- import and export


def upload(client: Client, *files: tuple[str, bytes], **extra: Any) -> Any:
    data = {"files": [SimpleUploadedFile(name, content) for name, content in files]}
    return client.post("/api/documents/import", data, **extra)


@pytest.mark.django_db
class TestImport:
    def test_imports_each_file_as_a_document_named_after_it(self, client: Client) -> None:
        response = upload(
            client,
            ("Meeting notes.md", "\ufeff# Notes\r\nline\r".encode()),
            ("todo.txt", b"buy milk\n"),
        )
        assert response.status_code == 201
        docs = response.json()["documents"]
        assert [d["title"] for d in docs] == ["Meeting notes", "todo"]
        assert store.read_document(docs[0]["id"])[0] == "# Notes\nline\n"  # BOM, CRLF, CR
        assert store.read_document(docs[1]["id"])[0] == "buy milk\n"
        first = DocumentUpdate.objects.get(document_id=docs[1]["id"], seq=1)
        assert first.author == "Import of todo.txt"

    @pytest.mark.parametrize(
        ("name", "content", "message"),
        [
            ("a.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary"),
            ("b.md", "caf\xe9".encode("latin-1"), "not UTF-8"),
            ("c.pdf", b"%PDF", "only .md, .markdown and .txt"),
        ],
    )
    def test_refuses_files_it_cannot_read_with_a_reason(
        self, client: Client, name: str, content: bytes, message: str
    ) -> None:
        response = upload(client, (name, content))
        assert response.status_code == 400
        assert message in response.json()["errors"][0]["error"]
        assert Document.objects.count() == 0

    def test_a_bad_file_does_not_stop_the_good_ones(self, client: Client) -> None:
        response = upload(client, ("good.md", b"ok"), ("bad.md", b"\xff\xfe\x00"))
        assert response.status_code == 207
        body = response.json()
        assert [d["title"] for d in body["documents"]] == ["good"]
        assert body["errors"][0]["file"] == "bad.md"

    def test_refuses_a_file_over_the_limit(self, client: Client, settings: Any) -> None:
        from editor import imports

        big = b"x" * (imports.MAX_IMPORT_BYTES + 1)
        response = upload(client, ("big.md", big))
        assert "larger than 10 MB" in response.json()["errors"][0]["error"]

    def test_refuses_a_cross_site_upload(self, client: Client) -> None:
        response = upload(client, ("a.md", b"x"), HTTP_ORIGIN="https://evil.example")
        assert response.status_code == 403
        assert "another site" in response.json()["error"]
        assert Document.objects.count() == 0

    def test_needs_files(self, client: Client) -> None:
        response = client.post("/api/documents/import", {})
        assert response.status_code == 400
        assert '"files"' in response.json()["error"]

    def test_a_guest_cannot_import(self, settings: Any) -> None:
        settings.TANDEM_TRUST_LOOPBACK = False
        response = upload(Client(REMOTE_ADDR="10.0.0.9"), ("a.md", b"x"))
        assert response.status_code == 403

    def test_exports_the_library_as_a_zip_of_markdown(self, client: Client) -> None:
        store.create_document("Plan", "# Plan\n")
        store.create_document("Plan", "second")
        response = client.get("/export.zip")
        assert response["Content-Type"] == "application/zip"
        archive = zipfile.ZipFile(BytesIO(response.content))
        assert sorted(archive.namelist()) == ["plan-2.md", "plan.md"]
        assert {archive.read(n).decode() for n in archive.namelist()} == {"# Plan\n", "second"}


# ---------------------------------------------------------------- restore, live


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_restore_is_merged_live_and_the_restorer_can_undo_it() -> None:
    doc = await database_sync_to_async(edited)("one\ntwo\n")
    a, b = Editor(doc.id, "tab-a-restore"), Editor(doc.id, "tab-b-restore")
    for editor in (a, b):
        await editor.connect()
        await editor.sync(1, [])
    answer = await a.sync(1, [{"retain": 8}, {"insert": "three\n"}])
    assert answer["version"] == 2
    await b.receive()  # the push of A's change
    client = AsyncClient()
    response = await client.post(
        f"/api/documents/{doc.id}/restore",
        data=json.dumps({"version": 1, "cid": a.cid, "name": "Ann"}),
        content_type=JSON,
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["version"], body["restored"], body["text"]) == (3, 1, "one\ntwo\n")
    # Both editors see it at once (a push), and the log was not rewritten.
    for editor in (a, b):
        push = await editor.receive()
        assert (push["type"], push["version"]) == ("push", 3)
        assert apply("one\ntwo\nthree\n", push["delta"]) == "one\ntwo\n"
    rows = await database_sync_to_async(
        lambda: list(DocumentUpdate.objects.filter(document=doc).values_list("seq", "author"))
    )()
    assert rows[-1] == (3, "Ann") and len(rows) == 3
    # A's undo takes the restore back (it was made as A's own change).
    undone = await a.sync(3, [], action="undo")
    assert apply("one\ntwo\n", undone["delta"]) == "one\ntwo\nthree\n"
    assert await database_sync_to_async(store.read_document)(doc.id) == ("one\ntwo\nthree\n", 4)
    await a.close()
    await b.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_restore_of_an_unknown_version_or_a_bad_cid_changes_nothing() -> None:
    doc = await database_sync_to_async(edited)("one")
    client = AsyncClient()
    url = f"/api/documents/{doc.id}/restore"
    missing = await client.post(url, data=json.dumps({"version": 5}), content_type=JSON)
    assert missing.status_code == 404
    bad = await client.post(url, data=json.dumps({"version": 0, "cid": "x"}), content_type=JSON)
    assert bad.status_code == 400
    assert await database_sync_to_async(store.read_document)(doc.id) == ("one", 1)
