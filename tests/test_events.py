"""The live view's Server-Sent Events stream, driven through Channels' communicator."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import ApplicationCommunicator

from collab import events as events_module
from collab import store
from collab.events import event
from collab.protocol import group_name
from editor.asgi import application
from tests.test_consumer_sync import Editor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


class Stream:
    """One EventSource, as the server sees it."""

    def __init__(self, doc_id: str, last_id: str | None = None) -> None:
        headers = [(b"host", b"localhost")]
        if last_id is not None:
            headers.append((b"last-event-id", last_id.encode()))
        scope = {
            "type": "http",
            "method": "GET",
            "path": f"/d/{doc_id}/events",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 5000),
        }
        self.comm = ApplicationCommunicator(application, scope)
        self.buffer = ""

    async def open(self) -> dict[str, Any]:
        await self.comm.send_input({"type": "http.request", "body": b""})
        start = await self.comm.receive_output(3)
        assert start["type"] == "http.response.start"
        return start

    async def next_event(self, timeout: float = 3) -> dict[str, str]:
        """The next event (comments are kept apart as {"comment": ...})."""
        while "\n\n" not in self.buffer:
            message = await self.comm.receive_output(timeout)
            assert message["type"] == "http.response.body"
            self.buffer += message["body"].decode()
            if not message.get("more_body"):
                self.buffer += "\n\n" if self.buffer and "\n\n" not in self.buffer else ""
                if not self.buffer:
                    return {"end": "1"}
        raw, self.buffer = self.buffer.split("\n\n", 1)
        fields: dict[str, str] = {}
        for line in raw.split("\n"):
            if line.startswith(":"):
                fields["comment"] = line[1:].strip()
                continue
            key, _, value = line.partition(": ")
            fields[key] = fields[key] + "\n" + value if key in fields else value
        return fields

    async def close(self) -> None:
        await self.comm.send_input({"type": "http.disconnect"})
        await self.comm.wait(3)


async def test_an_event_puts_every_line_on_a_data_line() -> None:
    assert event("<p>a</p>\n<p>b</p>", "3.4") == b"id: 3.4\ndata: <p>a</p>\ndata: <p>b</p>\n\n"


async def test_streams_the_preview_then_each_change_once_then_lets_go() -> None:
    doc = await database_sync_to_async(store.create_document)("Live", "# Hello\n")
    stream = Stream(doc.id)
    start = await stream.open()
    assert dict(start["headers"])[b"content-type"].startswith(b"text/event-stream")
    first = await stream.next_event()
    assert 'id="preview"' in first["data"] and "Hello" in first["data"]
    assert 'id="presence"' in first["data"]
    writer = Editor(doc.id, "tab-live-0001")
    await writer.connect()
    await writer.sync(1, [{"retain": 8}, {"insert": "\nnew words\n"}])
    seen = ""
    for _ in range(6):  # presence (the writer came) and the change, in some order
        news = await stream.next_event()
        seen += news.get("data", "")
        if "new words" in seen:
            break
    assert "new words" in seen
    assert news["id"].count(".") == 1
    await writer.close()
    await stream.close()
    layer = get_channel_layer()
    assert not layer.groups.get(group_name(doc.id))  # type: ignore[attr-defined]


async def test_resuming_with_the_last_id_sends_only_what_was_missed() -> None:
    doc = await database_sync_to_async(store.create_document)("Live", "text")
    stream = Stream(doc.id)
    await stream.open()
    first = await stream.next_event()
    await stream.close()
    # Nothing changed since: no preview again, just who is here.
    same = Stream(doc.id, last_id=first["id"])
    await same.open()
    again = await same.next_event()
    assert again["id"] == first["id"] and 'id="preview"' not in again["data"]
    await same.close()
    # Another state than the room's (a room since reloaded, missed diffs): the whole preview.
    stale = Stream(doc.id, last_id="999.0")
    await stale.open()
    catch_up = await stale.next_event()
    assert 'id="preview"' in catch_up["data"] and "text" in catch_up["data"]
    await stale.close()


async def test_a_comment_keeps_an_idle_stream_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "KEEPALIVE_SECONDS", 0.05)
    doc = await database_sync_to_async(store.create_document)("Live", "x")
    stream = Stream(doc.id)
    await stream.open()
    await stream.next_event()
    assert (await stream.next_event())["comment"] == "keepalive"
    await stream.close()


async def test_no_access_and_no_document_are_refused(settings: Any) -> None:
    settings.TANDEM_TRUST_LOOPBACK = False
    doc = await database_sync_to_async(store.create_document)("Live", "x")
    stream = Stream(doc.id)
    start = await stream.open()
    assert start["status"] == 403
    settings.TANDEM_TRUST_LOOPBACK = True
    missing = Stream("no-such-document")
    assert (await missing.open())["status"] == 404


async def test_a_deleted_document_ends_the_stream() -> None:
    doc = await database_sync_to_async(store.create_document)("Live", "x")
    stream = Stream(doc.id)
    await stream.open()
    await stream.next_event()
    from editor import documents

    await database_sync_to_async(documents.delete)(doc)
    said = []
    for _ in range(5):
        news = await stream.next_event()
        if news.get("event") == "closed":
            break
        said.append(news.get("data", ""))
    assert news.get("event") == "closed"
    assert 'id="live-state"' in said[-1] and "This document was deleted." in said[-1]
    await asyncio.wait_for(stream.comm.wait(), 3)
