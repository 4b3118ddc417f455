"""The live document list's socket: a nudge for every change, from anywhere."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from collab import store
from editor import documents
from editor.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

LOCAL = [(b"host", b"localhost:8000"), (b"origin", b"http://localhost:8000")]


async def test_a_list_page_is_nudged_on_create_rename_and_delete() -> None:
    comm = WebsocketCommunicator(application, "/ws/list/", headers=LOCAL)
    assert (await comm.connect())[0]
    await comm.receive_nothing(0.1)  # its group_add is done

    @database_sync_to_async
    def create_rename_delete() -> None:
        doc = store.create_document("Listed", "x")
        documents.tell_lists()
        documents.rename(doc, "Renamed")
        documents.delete(doc)

    await create_rename_delete()
    for _ in range(3):
        assert await comm.receive_from(3) == '{"type": "docs"}'
    await comm.disconnect()


async def test_a_foreign_page_gets_no_list_socket() -> None:
    headers = [(b"host", b"localhost:8000"), (b"origin", b"http://evil.example")]
    comm = WebsocketCommunicator(application, "/ws/list/", headers=headers)
    await comm.connect()
    closed = await comm.receive_output(3)
    assert closed["type"] == "websocket.close" and closed["code"] == 4403
