"""Floods and clients that stop reading (collab/flow.py), through the real ASGI app.

Each test here fails without FlowControl in collab/routing.py (checked by taking it out):
a flood is applied whole and never closed, a gone client's queue is still applied, and
the outbound backlog grows without a close.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async

from collab import flow, store
from collab.protocol import CLOSE_RETRY, CLOSE_TOO_MANY
from tests.test_consumer_sync import Editor, new_document

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def request(editor: Editor, rid: int, base: int = 1) -> dict[str, Any]:
    return {"type": "sync", "cid": editor.cid, "rid": rid, "base": base, "ops": [{"insert": "x"}]}


@database_sync_to_async
def stored_text(doc_id: str) -> str:
    return store.read_document(doc_id)[0]


async def settled_text(doc_id: str) -> str:
    """The stored text once the room stopped applying (what a gone client left behind)."""
    text = await stored_text(doc_id)
    for _ in range(20):
        await asyncio.sleep(0.1)
        again = await stored_text(doc_id)
        if again == text:
            return text
        text = again
    return text


async def test_a_flood_that_ignores_the_one_in_flight_rule_is_closed_and_dropped() -> None:
    doc_id = await new_document("-")
    a = Editor(doc_id, "tab-flood-01")
    await a.connect()
    for rid in range(1, 201):
        await a.send(request(a, rid))
    assert await a.close_code(5) == CLOSE_TOO_MANY
    # At most what was queued when it overflowed (the rest was dropped, not applied).
    assert len(await settled_text(doc_id)) - 1 <= flow.LIMITS.max_pending + 1


async def test_a_gone_clients_queued_frames_are_dropped_at_once() -> None:
    doc_id = await new_document("-")
    a = Editor(doc_id, "tab-gone-001")
    await a.connect()
    for rid in range(1, flow.LIMITS.max_pending):  # under the limit: no close
        await a.send(request(a, rid))
    await a.close()
    assert len(await settled_text(doc_id)) - 1 <= 1


async def test_a_client_that_keeps_the_rule_never_trips_the_limits() -> None:
    doc_id = await new_document("-")
    a = Editor(doc_id, "tab-good-001")
    await a.connect()
    base = 1
    for i in range(150):  # more than the burst: paced, never closed
        if i % 25 == 0:  # a rename may come with a request in flight
            await a.send({"type": "hello", "name": f"Ada {i}"})
        answer = await a.sync(base, [{"insert": "x"}])
        assert answer["type"] == "ack", answer
        base = answer["version"]
    assert await stored_text(doc_id) == "x" * 150 + "-"
    await a.close()


async def test_requests_beyond_the_rate_are_paced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flow, "LIMITS", flow.Limits(rate=20.0, burst=5.0))
    doc_id = await new_document("-")
    a = Editor(doc_id, "tab-rate-001")
    await a.connect()
    start, base = time.monotonic(), 1
    for _ in range(25):
        answer = await a.sync(base, [])
        base = answer["version"]
    # 5 at once, then 20 at 20/s.
    assert time.monotonic() - start >= 0.9
    await a.close()


class FakeTransport:
    """Twisted's TCP write buffer, as flow.write_backlog reads it."""

    def __init__(self) -> None:
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0


class FakeProtocol:
    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.sent: list[dict[str, Any]] = []


async def daphne_send(protocol: FakeProtocol, message: dict[str, Any]) -> None:
    """Like Daphne's `handle_reply`: every byte sent stays buffered (nobody reads)."""
    protocol.sent.append(message)
    if message["type"] == "websocket.send":
        protocol.transport._tempDataLen += len(message["text"])


def _unread_connection(protocol: FakeProtocol, max_backlog: int) -> flow._Connection:
    """A connection whose client sends nothing, over Daphne's send to `protocol`."""

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        raise AssertionError

    limits = flow.Limits(max_backlog=max_backlog)
    return flow._Connection(receive, functools.partial(daphne_send, protocol), limits)


async def test_a_client_that_stops_reading_is_closed_before_its_backlog_grows_far() -> None:
    protocol = FakeProtocol()
    connection = _unread_connection(protocol, max_backlog=10_000)
    await connection.send({"type": "websocket.send", "text": "p" * 50_000})  # a big preview
    for _ in range(100):
        await connection.send({"type": "websocket.send", "text": "d" * 1_000})
    backlog = protocol.transport._tempDataLen
    assert backlog <= 50_000 + 10_000 + 1_000  # the big frame, then max_backlog behind it
    assert protocol.sent[-1] == {
        "type": "websocket.close",
        "code": CLOSE_RETRY,
        "reason": "not reading: reconnect and resync",
    }
    await connection.send({"type": "websocket.send", "text": "late"})
    assert protocol.transport._tempDataLen == backlog  # nothing more piles up


async def test_a_client_that_reads_slowly_but_keeps_up_stays() -> None:
    protocol = FakeProtocol()
    connection = _unread_connection(protocol, max_backlog=10_000)
    await connection.send({"type": "websocket.send", "text": "p" * 50_000})  # a big preview
    for _ in range(1000):  # read more slowly than it comes, but it catches up
        await connection.send({"type": "websocket.send", "text": "d" * 1_000})
        protocol.transport._tempDataLen = max(0, protocol.transport._tempDataLen - 1_100)
    assert all(m["type"] == "websocket.send" for m in protocol.sent)


async def test_the_socket_is_found_behind_the_security_headers_wrapper() -> None:
    """The live view's stream reaches the consumer through editor/headers.py, whose send
    wraps Daphne's: the slow-reader rule must still find the socket behind it."""
    from editor.headers import SecurityHeaders

    protocol = FakeProtocol()
    daphne = functools.partial(daphne_send, protocol)
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(send)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    await SecurityHeaders(app)({"type": "http"}, receive, daphne)
    assert seen[0] is not daphne
    assert flow.daphne_transport(seen[0]) is protocol.transport
