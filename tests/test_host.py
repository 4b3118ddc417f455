"""collab.host: two hosts in one event loop stand for two processes.

They share the database and the channel layer, as two Tandem processes share PostgreSQL
and Redis, and nothing else: a call from one reaches the other's room only as a channel
message. "Killing" a host cancels its tasks and forgets its rooms without a word to
anyone (no lease release, no group message), as kill -9 would.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from pycrdt import Text

from collab import store
from collab.crdt import TEXT_KEY
from collab.host import Host
from collab.log import DocumentLog
from collab.protocol import (
    JoinCall,
    LeaveCall,
    PreviewReply,
    ReplaceCall,
    Replaced,
    SyncCall,
    Synced,
    SyncRequest,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture(autouse=True)
def short_leases(settings: Any) -> None:
    settings.TANDEM_LEASE_SECONDS = 0.6


@database_sync_to_async
def new_document(text: str) -> str:
    return store.create_document("Host test", text).id


@database_sync_to_async
def log_of(doc_id: str) -> DocumentLog:
    return store.load_log(doc_id)


def sync(cid: str, rid: int, base: int, ops: list[dict[str, Any]]) -> SyncCall:
    return SyncCall(f"member-{cid}", "Tester", SyncRequest(cid, rid, base, ops))


def kill(host: Host) -> None:
    """What kill -9 leaves behind: a lease nobody renews and calls nobody answers."""
    for task in (host._listener, host._renewer):
        if task is not None:
            task.cancel()
    for room in host.rooms():
        room.sequencer.stop()
        room.broadcaster.closed = True
        room._sweeper.cancel()
        room.closed = True
    host._rooms.clear()


async def stop(*hosts: Host) -> None:
    for host in hosts:
        for room in host.rooms():
            room.close()
        kill(host)
    await asyncio.sleep(0.05)


async def test_a_second_process_reaches_the_owners_room_through_the_channel_layer() -> None:
    loop = asyncio.get_running_loop()
    a, b = Host(loop), Host(loop)
    doc = await new_document("abc")
    joined = await a.call(doc, JoinCall("member-a", "Ada"))
    assert isinstance(joined, PreviewReply) and "abc" in joined.html
    first = await a.call(doc, sync("tab-a-0001", 1, 1, [{"insert": "A"}]))
    second = await b.call(doc, sync("tab-b-0001", 1, 1, [{"retain": 3}, {"insert": "B"}]))
    assert isinstance(first, Synced) and isinstance(second, Synced)
    assert (first.version, second.version) == (2, 3)
    assert not b.rooms()  # B asked A's room; it never loaded one of its own
    room = a.local_room(doc)
    assert room is not None and room.engine.text == "AabcB"
    # The remote editor is in the owner's roster, and leaves it through the same way.
    assert await b.call(doc, JoinCall("member-b", "Bo")) is not None
    assert sorted(room.roster.names()) == ["Ada", "Bo"]
    await b.call(doc, LeaveCall("member-b"))
    assert room.roster.names() == ["Ada"]
    replaced = await b.call(doc, ReplaceCall("AabcB\nfrom the API", "API"))
    assert isinstance(replaced, Replaced) and replaced.version == 4
    assert (await log_of(doc)).version == 4
    await stop(a, b)


async def test_when_the_owner_dies_another_process_takes_over_and_nothing_doubles() -> None:
    loop = asyncio.get_running_loop()
    a, b = Host(loop), Host(loop)
    doc = await new_document("abc")
    await a.call(doc, JoinCall("member-a", "Ada"))
    acked = await b.call(doc, sync("tab-b-0001", 1, 1, [{"insert": "1"}]))
    assert isinstance(acked, Synced) and acked.version == 2
    kill(a)
    started = loop.time()
    # The answer to rid 1 was lost with A, as far as the editor knows: it resends rid 1,
    # then types on. B waits out A's lease, loads the document and answers both.
    again = await b.call(doc, sync("tab-b-0001", 1, 1, [{"insert": "1"}]), timeout=0.5)
    assert isinstance(again, Synced) and again.version == 2
    assert loop.time() - started < 5
    more = await b.call(doc, sync("tab-b-0001", 2, 2, [{"retain": 4}, {"insert": "2"}]))
    assert isinstance(more, Synced) and more.version == 3
    room = b.local_room(doc)
    assert room is not None and room.engine.text == "1abc2"
    log = await log_of(doc)
    assert [u.seq for u in log.updates] == [1, 2, 3]
    assert str(log.build().get(TEXT_KEY, type=Text)) == "1abc2"
    await stop(a, b)


async def test_a_paused_owner_that_lost_its_lease_cannot_append(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A's room keeps running while its lease lapses (a long pause: no renewals), and B
    takes the document over. A's next append is refused by the fence; the request that
    hit A is asked of B instead and lands there once."""
    loop = asyncio.get_running_loop()
    a, b = Host(loop), Host(loop)
    doc = await new_document("abc")
    await a.call(doc, JoinCall("member-a", "Ada"))
    assert a._renewer is not None
    a._renewer.cancel()  # paused: it renews nothing
    await asyncio.sleep(0.7)  # the lease (0.6 s) expires
    b_answer = await b.call(doc, sync("tab-b-0001", 1, 1, [{"insert": "B"}]), timeout=0.3)
    assert isinstance(b_answer, Synced)
    assert b.local_room(doc) is not None, "B took the document over"
    stale = a.local_room(doc)
    assert stale is not None  # A does not know yet
    answer = await a.call(doc, sync("tab-a-0001", 1, 1, [{"retain": 3}, {"insert": "A"}]))
    assert isinstance(answer, Synced)
    assert stale.closed and a.local_room(doc) is None
    assert "lost its lease" in caplog.text
    room = b.local_room(doc)
    assert room is not None
    text = room.engine.text
    assert sorted(text) == sorted("BabcA")
    log = await log_of(doc)
    assert [u.seq for u in log.updates] == [1, 2, 3]
    await stop(a, b)


async def test_on_redis_a_host_listening_never_holds_up_its_consumers(
    settings: Any, redis_url: str
) -> None:
    """channels-redis receives all of a process's channels through one Redis key, popped
    by whichever receive holds one lock. The host's own channel (where room calls and
    replies arrive) must be one of those: on a key of its own, its waiting receive held
    the lock for seconds at a time while the consumers' group messages sat unread."""
    from channels.layers import get_channel_layer

    from editor import conf

    settings.CHANNEL_LAYERS = {"default": conf.channel_layer(redis_url.rsplit("/", 1)[0] + "/9")}
    layer = get_channel_layer()
    loop = asyncio.get_running_loop()
    a, b = Host(loop), Host(loop)
    doc = await new_document("abc")
    consumer = await layer.new_channel()
    await layer.group_add(f"doc.{doc}", consumer)
    await a.call(doc, JoinCall(consumer, "Ada"))  # A runs the room and now listens
    await a.call(doc, sync("tab-a-0001", 1, 1, []))
    a_room = a.local_room(doc)
    assert a_room is not None
    a_room.roster.answered(consumer, 1)
    await asyncio.sleep(0.3)  # the listener's receive is waiting now
    for rid in (1, 2, 3):
        started = loop.time()
        answer = await b.call(doc, sync("tab-b-0001", rid, rid, [{"insert": "x"}]))
        assert isinstance(answer, Synced)
        while True:  # the news reaches the consumer's channel at once, not seconds later
            message = await asyncio.wait_for(layer.receive(consumer), 2)
            if message["type"] == "doc.changed" and message["version"] == answer.version:
                break
        assert loop.time() - started < 1.0
        await asyncio.sleep(0.3)
    await stop(a, b)
