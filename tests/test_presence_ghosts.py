"""No ghosts: whatever ends a connection, and whenever, takes it out of the roster.

The browser can go at any step: while the consumer joins, while it sends the preview, a
presence list, an answer or a push. Daphne then raises on the next send ("Attempt to
send on a closed protocol") and may or may not deliver a disconnect. A member whose
process died never says goodbye at all: the roster drops it when its heartbeats stop.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from collab import store
from collab.consumers import DocumentConsumer
from collab.host import get_host
from collab.roster import HEARTBEAT_SECONDS, MEMBER_TIMEOUT_SECONDS, Roster
from editor.asgi import application

FAIL_HEADER = b"x-test-fail-at-send"
ALL_GONE: list[bool] = [False]  # set: every browser with the header has gone


# -- the roster's heartbeat expiry (a fake clock) --------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_member_not_heard_of_for_the_timeout_is_dropped_and_one_that_beats_stays() -> None:
    clock = Clock()
    changes: list[int] = []
    dropped: list[str] = []
    roster = Roster(lambda: changes.append(1), dropped.append, clock=clock)
    roster.join("quiet", "Quiet Otter", "session-quiet", 1)
    roster.join("beating", "Brave Fox", "session-beat", 1)
    changes.clear()
    t0 = clock.now
    while clock.now < t0 + MEMBER_TIMEOUT_SECONDS + HEARTBEAT_SECONDS:
        clock.now += HEARTBEAT_SECONDS / 2
        roster.join("beating", "Brave Fox", "session-beat", 1)  # its heartbeat
        roster.sweep()
        expect = ["Brave Fox"] if clock.now - t0 > MEMBER_TIMEOUT_SECONDS else None
        if expect:
            assert roster.names() == expect
        else:
            assert sorted(roster.names()) == ["Brave Fox", "Quiet Otter"]
    assert changes == [1]  # one change: the quiet one left
    # Its page load's undo history goes after the grace, not before.
    assert dropped == []
    clock.now += 200
    roster.join("beating", "Brave Fox", "session-beat", 1)
    roster.sweep()
    assert dropped == ["session-quiet"]
    assert roster.names() == ["Brave Fox"]


def test_an_answer_counts_as_being_heard_of() -> None:
    clock = Clock()
    roster = Roster(lambda: None, lambda s: None, clock=clock)
    roster.join("m", "Kind Owl", None, -1)
    clock.now += MEMBER_TIMEOUT_SECONDS - 1
    roster.answered("m", 3)
    clock.now += MEMBER_TIMEOUT_SECONDS - 1
    roster.sweep()
    assert roster.names() == ["Kind Owl"]
    clock.now += 2
    roster.sweep()
    assert roster.names() == []


# -- connections that close at every step ----------------------------------------------


@database_sync_to_async
def new_document(text: str) -> str:
    return store.create_document("Ghosts", text).id


def _fail_at(consumer: DocumentConsumer) -> int | None:
    for key, value in consumer.scope.get("headers", []):
        if key == FAIL_HEADER:
            return int(value)
    return None


@pytest.fixture
def browsers_that_go_away(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection with the test header loses its browser before its n-th frame: that
    send raises, as Daphne's does on a closed protocol, and every later one too."""
    real_send = DocumentConsumer.send
    ALL_GONE[0] = False

    async def send(self: DocumentConsumer, *args: Any, **kwargs: Any) -> None:
        fail_at = _fail_at(self)
        if fail_at is not None:
            sent = getattr(self, "_test_sent", 0)
            self._test_sent = sent + 1  # type: ignore[attr-defined]
            if sent >= fail_at or ALL_GONE[0]:
                raise RuntimeError("Attempt to send on a closed protocol")
        await real_send(self, *args, **kwargs)

    monkeypatch.setattr(DocumentConsumer, "send", send)


def members(doc_id: str) -> list[str]:
    room = get_host().local_room(doc_id)
    return [] if room is None else sorted(room.roster.members)


async def settle(doc_id: str, expected: int, timeout: float = 5) -> list[str]:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(members(doc_id)) != expected and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    return members(doc_id)


async def one_client(doc_id: str, fail_at: int, say_goodbye: bool) -> WebsocketCommunicator:
    """Connect, sync once, and let the browser go before its `fail_at`-th frame (frames:
    preview, presence lists, the answer, pushes). Some never deliver a disconnect."""
    headers = [(b"host", b"localhost"), (FAIL_HEADER, str(fail_at).encode())]
    comm = WebsocketCommunicator(application, f"/ws/d/{doc_id}/", headers=headers)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    cid = f"ghost-{id(comm):x}"
    await comm.send_to(
        text_data=json.dumps(
            {"type": "sync", "cid": cid, "rid": 1, "base": 1, "ops": [{"insert": "x"}]}
        )
    )
    await asyncio.sleep(0.05 * (fail_at % 3))
    if say_goodbye:
        await comm.send_input({"type": "websocket.disconnect", "code": 1006})
    return comm


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_clients_closing_at_every_step_leave_no_ghost(
    browsers_that_go_away: None, settings: Any
) -> None:
    settings.TANDEM_ROOM_IDLE_SECONDS = 0.2
    doc_id = await new_document("abc")
    observer = WebsocketCommunicator(
        application, f"/ws/d/{doc_id}/", headers=[(b"host", b"localhost")]
    )
    assert (await observer.connect())[0]
    assert len(await settle(doc_id, 1)) == 1
    # 60 clients at once, failing at each of the first six frames, half of them with a
    # disconnect afterwards, half without (the consumer must notice by itself).
    clients = await asyncio.gather(
        *(one_client(doc_id, i % 6, say_goodbye=i % 2 == 0) for i in range(60))
    )
    # By now every one of them has gone (some before their first frame, some after a
    # few). One that went without a goodbye is noticed at the next frame sent to it
    # (else by Daphne's ping): the observer's edit makes news for everyone.
    ALL_GONE[0] = True
    await observer.send_to(
        text_data=json.dumps(
            {"type": "sync", "cid": "observer-1", "rid": 1, "base": 1, "ops": [{"insert": "o"}]}
        )
    )
    assert len(await settle(doc_id, 1)) == 1, "ghosts left in the roster"
    # The observer's presence list comes down to one person (it is paced: wait for it).
    last = ""
    deadline = asyncio.get_running_loop().time() + 3
    while last.count("data-name=") != 1 and asyncio.get_running_loop().time() < deadline:
        frame = await observer.receive_output(3)
        if 'id="presence"' in (frame.get("text") or ""):
            last = frame["text"]
    assert last.count("data-name=") == 1
    await observer.disconnect()
    assert await settle(doc_id, 0) == []
    # And the document is unloaded once nobody is in it.
    deadline = asyncio.get_running_loop().time() + 5
    while get_host().local_room(doc_id) is not None:
        assert asyncio.get_running_loop().time() < deadline, "the room was never unloaded"
        await asyncio.sleep(0.05)
    for comm in clients:
        comm.future.cancel()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_client_gone_before_its_connect_finished_leaves_no_ghost() -> None:
    # The disconnect arrives while connect() is still running (Channels hands the
    # consumer its messages in turn: it is handled once connect() returns).
    doc_id = await new_document("abc")
    comms = []
    for _ in range(20):
        comm = WebsocketCommunicator(
            application, f"/ws/d/{doc_id}/", headers=[(b"host", b"localhost")]
        )
        await comm.send_input({"type": "websocket.connect"})
        await comm.send_input({"type": "websocket.disconnect", "code": 1001})
        comms.append(comm)
    await asyncio.sleep(0.5)
    assert await settle(doc_id, 0) == []
    for comm in comms:
        comm.future.cancel()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_heartbeat_queued_before_a_leave_does_not_join_again(
    browsers_that_go_away: None,
) -> None:
    doc_id = await new_document("abc")
    # The browser is gone at its first frame (the preview): the consumer leaves.
    comm = WebsocketCommunicator(
        application, f"/ws/d/{doc_id}/", headers=[(b"host", b"localhost"), (FAIL_HEADER, b"0")]
    )
    assert (await comm.connect())[0]
    assert await settle(doc_id, 0) == []
    # A heartbeat that was already on its way must not bring it back as a ghost.
    await comm.send_input({"type": "consumer.heartbeat"})
    await asyncio.sleep(0.2)
    assert members(doc_id) == []
    layer: Any = get_channel_layer()
    assert not layer.groups.get(f"doc.{doc_id}"), "it is back in the document's group"
    assert not comm.future.done(), "the consumer crashed"
    comm.future.cancel()
