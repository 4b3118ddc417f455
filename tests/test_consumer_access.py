"""The WebSocket consumer asks editor.access: no grant closes with 4403, a viewer follows
but cannot change anything, and resetting the links disconnects the guests at once."""

from __future__ import annotations

import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from collab.models import DocumentUpdate
from editor import documents, links
from editor.asgi import application
from editor.credentials import owner_key
from editor.models import Document
from tests.test_consumer_sync import Editor, new_document, stored

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture(autouse=True)
def _guests(settings: Any) -> None:
    settings.TANDEM_TRUST_LOOPBACK = False  # this machine is a guest like any other


class Guest(Editor):
    """An editor page that came through a share link (or as the owner, by its key)."""

    def __init__(self, doc_id: str, cid: str, token: str) -> None:
        super().__init__(doc_id, cid)
        self.token = token

    async def connect(self) -> None:
        headers = [(b"host", b"localhost"), (b"authorization", f"Bearer {self.token}".encode())]
        self.comm = WebsocketCommunicator(application, f"/ws/d/{self.doc_id}/", headers=headers)
        connected, _ = await self.comm.connect()
        assert connected


@database_sync_to_async
def tokens(doc_id: str) -> dict[str, str]:
    return links.tokens(Document.objects.get(pk=doc_id))


@database_sync_to_async
def reset(doc_id: str) -> None:
    documents.reset_links(Document.objects.get(pk=doc_id))


@database_sync_to_async
def log_length(doc_id: str) -> int:
    return DocumentUpdate.objects.filter(document_id=doc_id).count()


async def test_no_grant_closes_with_4403_and_says_why() -> None:
    doc_id = await new_document("secret")
    comm = WebsocketCommunicator(application, f"/ws/d/{doc_id}/", headers=[(b"host", b"localhost")])
    connected, _ = await comm.connect()
    assert connected
    close = await comm.receive_output(3)
    assert close["type"] == "websocket.close" and close["code"] == 4403
    assert "link" in close["reason"]


async def test_a_link_to_another_document_closes_with_4403() -> None:
    doc_id, other = await new_document("a"), await new_document("b")
    guest = Guest(other, "tab-g-0001", (await tokens(doc_id))["edit"])
    await guest.connect()
    assert await guest.close_code() == 4403


async def test_a_viewer_follows_but_its_changes_are_refused_and_nothing_is_logged() -> None:
    doc_id = await new_document("abc")
    view = (await tokens(doc_id))["view"]
    viewer = Guest(doc_id, "tab-v-0001", view)
    await viewer.connect()
    before = await log_length(doc_id)
    # Following the document (a sync without ops) is what a viewer does all the time.
    assert (await viewer.sync(1, []))["type"] == "ack"
    refused = await viewer.sync(1, [{"retain": 3}, {"insert": "!"}])
    assert refused["type"] == "error" and refused["code"] == "read_only"
    assert refused["rid"] == viewer.rid
    for action in ("undo", "redo"):
        answer = await viewer.sync(1, [], action=action)
        assert (answer["type"], answer["code"]) == ("error", "read_only")
    assert await stored(doc_id) == ("abc", 1)
    assert await log_length(doc_id) == before
    await viewer.close()


async def test_an_editor_link_edits() -> None:
    doc_id = await new_document("abc")
    editor = Guest(doc_id, "tab-e-0001", (await tokens(doc_id))["edit"])
    await editor.connect()
    answer = await editor.sync(1, [{"retain": 3}, {"insert": "d"}])
    assert answer["type"] == "ack"
    assert await stored(doc_id) == ("abcd", 2)
    undone = await editor.sync(2, [], action="undo")  # an editor's own undo is allowed
    assert undone["type"] == "ack"
    assert await stored(doc_id) == ("abc", 3)
    await editor.close()


async def test_resetting_links_closes_guests_within_a_second_and_the_owner_stays() -> None:
    doc_id = await new_document("abc")
    both = await tokens(doc_id)
    editor = Guest(doc_id, "tab-e-0001", both["edit"])
    viewer = Guest(doc_id, "tab-v-0001", both["view"])
    owner = Guest(doc_id, "tab-o-0001", owner_key())
    for page in (editor, viewer, owner):
        await page.connect()
        await page.sync(1, [])
    started = time.monotonic()
    await reset(doc_id)
    assert await editor.close_code(timeout=1) == 4403
    assert await viewer.close_code(timeout=1) == 4403
    assert time.monotonic() - started < 1
    # The owner is still connected and editing.
    answer = await owner.sync(1, [{"insert": "x"}])
    assert answer["type"] == "ack"
    # And the old links no longer connect.
    again = Guest(doc_id, "tab-e-0002", both["edit"])
    await again.connect()
    assert await again.close_code() == 4403
    await owner.close()


async def test_changes_made_through_an_edit_link_record_the_link() -> None:
    doc_id = await new_document("a")
    guest = Guest(doc_id, "tab-via-link-1", (await tokens(doc_id))["edit"])
    await guest.connect()
    await guest.send({"type": "hello", "name": "Gus"})
    await guest.sync(1, [{"retain": 1}, {"insert": "b"}])
    owner = Guest(doc_id, "tab-via-owner", owner_key())
    await owner.connect()
    await owner.send({"type": "hello", "name": "Olga"})
    await owner.sync(1, [{"insert": "c"}])
    authors = await database_sync_to_async(
        lambda: list(
            DocumentUpdate.objects.filter(document_id=doc_id).values_list("author", flat=True)
        )
    )()
    link_id = await database_sync_to_async(
        lambda: Document.objects.get(pk=doc_id).share_links.get(kind="edit").pk  # type: ignore[attr-defined]
    )()
    assert authors[1:] == [f"Gus (edit link {link_id[:6]})", "Olga"]
    await guest.close()
    await owner.close()
