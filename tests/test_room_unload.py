"""A room unloading while a save is pending loses nothing.

A room unloads once it is idle: nobody in its roster, no call being answered, nothing
queued. A tick whose save is still pending is not idle, even when whoever asked has gone
(the editor closed the tab, its call was cancelled): the unload waits for the save. The
danger it guards against: the store thread is one queue, and a save can wait there behind
other documents' commits; a room closed meanwhile gives its lease back, the next editor
loads the document afresh from a log that does not have the save yet, and the pending save
is then refused by the lease fence. The edit would be gone for good, since the editor who
made it is not there to send it again.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from channels.db import database_sync_to_async
from pycrdt import Text

from collab import store
from collab.crdt import TEXT_KEY
from collab.host import Host
from collab.protocol import SyncCall, Synced, SyncRequest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture(autouse=True)
def quick_unload(settings: Any) -> None:
    settings.TANDEM_ROOM_IDLE_SECONDS = 0.05
    settings.TANDEM_LEASE_SECONDS = 5.0


@database_sync_to_async
def new_document(text: str) -> str:
    return store.create_document("Unload test", text).id


@database_sync_to_async
def stored_text(doc_id: str) -> str:
    return str(store.load_log(doc_id).build().get(TEXT_KEY, type=Text))


def sync(cid: str, rid: int, base: int, ops: list[dict[str, Any]]) -> SyncCall:
    return SyncCall(f"member-{cid}", "Tester", SyncRequest(cid, rid, base, ops))


class HeldStore:
    """Holds every commit that includes `doc_id` in the store thread until released: a
    slow disk under another document's save."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, doc_id: str) -> None:
        self.doc_id = doc_id
        self.entered = threading.Event()
        self.released = threading.Event()
        real = store.append_many

        def held(jobs: Sequence[store.Job]) -> list[Exception | None]:
            if any(job[0] == doc_id for job in jobs):
                self.entered.set()
                self.released.wait(10)
            return real(jobs)

        monkeypatch.setattr(store, "append_many", held)


async def _until(check: Any, seconds: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_room_does_not_unload_under_a_pending_save(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    host = Host(loop)
    slow, doc = await new_document("other"), await new_document("abc")
    for doc_id in (slow, doc):  # loaded first: loading goes through the store thread too
        assert isinstance(await host.call(doc_id, sync("tab-z-0001", 1, 1, [])), Synced)
    room = host.local_room(doc)
    assert room is not None
    held = HeldStore(monkeypatch, slow)
    # Another document's save holds the store thread ...
    other = loop.create_task(host.call(slow, sync("tab-o-0001", 1, 1, [{"insert": "o"}])))
    await asyncio.to_thread(held.entered.wait, 5)
    # ... so this one's save waits behind it; then its editor goes away for good.
    typed = loop.create_task(host.call(doc, sync("tab-a-0001", 1, 1, [{"insert": "X"}])))
    await _until(lambda: room.engine.version == 2)  # applied; its save is pending
    typed.cancel()
    await asyncio.sleep(0.3)  # several times the idle time: the unload has fired
    unloaded_early = room.closed
    # Another editor opens the document meanwhile; then the disk catches up.
    late = loop.create_task(host.call(doc, sync("tab-b-0001", 1, 1, [])))
    await asyncio.sleep(0.05)
    held.released.set()
    answer = await late
    assert isinstance(await other, Synced)
    assert await stored_text(doc) == "Xabc", "the pending save was lost"
    assert isinstance(answer, Synced) and answer.version == 2
    assert not unloaded_early
    # And once the save is done, the idle room does unload.
    await _until(lambda: room.closed)
    for r in host.rooms():
        r.close()
    await asyncio.sleep(0.05)
