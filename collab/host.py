"""The host: this process's rooms, and the way to any document's room in any process.

`get_host().call(doc_id, call)` answers a room call (collab/protocol.py) wherever the
document's room runs:

- in this process: the room is called directly (no channel layer, no encoding: the
  single-process default costs what a method call costs);
- in another process (it holds the document's lease): the call goes to that process's
  channel and the reply comes back on a channel of our own;
- nowhere: this process claims the lease (collab/ownership.py), loads the room from
  storage and tells the document's group (`room.opened`).

A call that finds no room (it stopped, was unloaded, or its process died: no reply
within the lease time) is asked again: the lease of a dead process expires and the
next call takes the document over. Every call is idempotent (sync requests carry their
`(cid, rid)`), so asking again never applies anything twice.

One host per event loop (tests run many loops in one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import weakref
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError

from collab import ownership, storage_errors, store
from collab.engine import DocumentEngine
from collab.ownership import Holder, Lease
from collab.preview import PreviewState
from collab.protocol import (
    CALL,
    REPLY,
    NotHere,
    ProtocolError,
    Refused,
    RoomCall,
    RoomOpened,
    RoomReply,
    encode_call,
    encode_reply,
    group_name,
    parse_call,
    parse_reply,
)
from collab.render_thread import in_render_thread
from collab.room import LIVE_PREVIEW_BLOCK_LIMIT, Room
from collab.sequencer import RoomGone
from collab.storage_thread import in_store_thread

log = logging.getLogger("tandem.collab")

# Asking again: at most this many tries, and a short pause when the room was not found
# (a lease that has not expired yet, a room that is still closing). A call to another
# process that has no reply after CALL_TIMEOUT is asked again (of whoever holds the
# lease by then: a dead owner's lease expires after TANDEM_LEASE_SECONDS); the tries and
# pauses together outlast a lease several times over.
MAX_TRIES = 8
RETRY_PAUSE = 0.2
CALL_TIMEOUT = 2.0


def lease_seconds() -> float:
    return float(getattr(settings, "TANDEM_LEASE_SECONDS", 5.0))


class RoomUnavailable(Exception):
    """No room could answer (storage failing, or no process could take the document).
    `problem`: what storage said, plainly ("the disk is full"), if that was the cause."""

    def __init__(self, doc_id: str, problem: str = "") -> None:
        super().__init__(doc_id, problem)
        self.problem = problem


class Host:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # Who we are in the lease table; unique per host, readable in a log.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._rooms: dict[str, Room] = {}
        self._loading: dict[str, asyncio.Future[Room | Holder]] = {}
        self._holders: dict[str, Holder] = {}  # where other processes' rooms are
        # Where other processes send us room calls, and their replies to ours: one
        # channel and one receive loop for both, never cancelled. (A timeout on a
        # receive of a channel per call would cancel receives all the time, which the
        # Redis layers take badly: the pub/sub layer unsubscribes the channel, the list
        # layer broke its connection.)
        self._channel: str | None = None
        self._waiting: dict[str, asyncio.Future[RoomReply]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None

    # -- calling a room ------------------------------------------------------------------

    async def call(
        self, doc_id: str, call: RoomCall, timeout: float | None = None, *, load: bool = True
    ) -> RoomReply:
        """The document's room's reply to `call`. Raises DocumentMissing (deleted) or
        RoomUnavailable (nobody could answer; the caller should retry later). With
        `load=False` a document whose room runs nowhere is not loaded for this call: the
        reply is then NotHere (a goodbye to a room that is gone needs no room)."""
        if timeout is None:
            timeout = CALL_TIMEOUT
        problem = ""  # what storage said, if that is why no room answered
        for attempt in range(MAX_TRIES):
            try:
                target = await self._locate(doc_id) if load else await self._find(doc_id)
            except DatabaseError as error:
                # Storage is failing (a full disk, a database that went away): nobody can
                # claim or load the document now. Ask again after a pause; in the end the
                # caller hears RoomUnavailable (an editor reconnects and resends).
                storage_errors.report(log, f"document {doc_id}", "cannot open it", error)
                problem = storage_errors.describe(error)
                await asyncio.sleep(RETRY_PAUSE * attempt)
                continue
            if target is None:
                return NotHere()
            if isinstance(target, Room):
                try:
                    return await target.call(call)
                except RoomGone as gone:
                    # It stopped under us: the next try loads it afresh.
                    if isinstance(gone.__cause__, DatabaseError):
                        problem = storage_errors.describe(gone.__cause__)
            else:
                reply = await self._remote_call(target, doc_id, call, timeout)
                if reply is not None and not isinstance(reply, NotHere):
                    return reply
                self._holders.pop(doc_id, None)
            await asyncio.sleep(RETRY_PAUSE * attempt)
        raise RoomUnavailable(doc_id, problem)

    def local_room(self, doc_id: str) -> Room | None:
        room = self._rooms.get(doc_id)
        return room if room is not None and not room.closed else None

    def rooms(self) -> list[Room]:
        return [r for r in self._rooms.values() if not r.closed]

    async def _find(self, doc_id: str) -> Room | Holder | None:
        """Where the document's room runs, if it runs anywhere; loads nothing."""
        found: Room | Holder | None = self.local_room(doc_id) or self._holders.get(doc_id)
        if found is None:
            found = await in_store_thread(ownership.holder, doc_id)
            if found is not None and found.channel == self._channel:
                return None  # our own lease, of a room that closed: nothing to tell
        return found

    async def _locate(self, doc_id: str) -> Room | Holder:
        room = self.local_room(doc_id)
        if room is not None:
            return room
        holder = self._holders.get(doc_id)
        if holder is not None:
            return holder
        loading = self._loading.get(doc_id)
        if loading is not None:
            return await asyncio.shield(loading)
        loading = self.loop.create_future()
        self._loading[doc_id] = loading
        try:
            target = await self._claim(doc_id)
            if isinstance(target, Holder):
                self._holders[doc_id] = target
            loading.set_result(target)
            return target
        except BaseException as error:
            if not loading.done():
                loading.set_exception(error)
                loading.exception()  # retrieved: waiters get it, nobody logs it twice
            raise
        finally:
            self._loading.pop(doc_id, None)

    async def _claim(self, doc_id: str) -> Room | Holder:
        channel = await self._ensure_listening()
        claimed = await in_store_thread(
            ownership.claim, doc_id, self.owner, channel, lease_seconds()
        )
        if isinstance(claimed, Holder):
            log.debug("document %s runs in %s (epoch %s)", doc_id, claimed.owner, claimed.epoch)
            return claimed
        try:
            room = await self._load(doc_id, claimed)
        except BaseException:
            with contextlib.suppress(Exception):
                await in_store_thread(ownership.release, doc_id, self.owner, claimed.epoch)
            raise
        self._rooms[doc_id] = room
        log.info("document %s: room loaded here (epoch %s)", doc_id, claimed.epoch)
        self._ensure_renewing()
        await get_channel_layer().group_send(group_name(doc_id), RoomOpened(room.epoch).encode())
        return room

    async def _load(self, doc_id: str, lease: Lease) -> Room:
        log_ = await in_store_thread(store.load_log, doc_id)
        engine = DocumentEngine(log_)
        # Rendering a large document takes a while: not on the event loop.
        preview = PreviewState(block_limit=LIVE_PREVIEW_BLOCK_LIMIT)
        await in_render_thread(preview.render_full, engine.text)
        return Room(
            doc_id,
            engine,
            preview,
            epoch=lease.epoch,
            updates_since_snapshot=log_.version - log_.snapshot_version,
            on_close=self._closed,
        )

    def _closed(self, room: Room) -> None:
        if self._rooms.get(room.doc_id) is room:
            del self._rooms[room.doc_id]
        # Give the lease back at once, so the next claim (here or elsewhere) need not
        # wait for it to expire. A lease already lost is left alone (its epoch moved).
        self._spawn(self._release(room.doc_id, room.epoch))

    async def _release(self, doc_id: str, epoch: int) -> None:
        with contextlib.suppress(Exception):
            await in_store_thread(ownership.release, doc_id, self.owner, epoch)

    async def _remote_call(
        self, holder: Holder, doc_id: str, call: RoomCall, timeout: float
    ) -> RoomReply | None:
        """The reply of another process's room, or None if none came in time."""
        reply_to = await self._ensure_listening()
        call_id = secrets.token_hex(8)
        waiting: asyncio.Future[RoomReply] = self.loop.create_future()
        self._waiting[call_id] = waiting
        try:
            await get_channel_layer().send(
                holder.channel, encode_call(doc_id, reply_to, call_id, call)
            )
            return await asyncio.wait_for(waiting, timeout)
        except TimeoutError:
            log.warning("no reply from %s for document %s; asking again", holder.owner, doc_id)
            return None
        finally:
            self._waiting.pop(call_id, None)

    # -- answering other processes' calls -----------------------------------------------

    async def _ensure_listening(self) -> str:
        if self._channel is None:
            # The default prefix on purpose: channels-redis's list layer receives all of
            # a process's channels through one Redis key, popped by whichever receive
            # holds its lock; a channel of another prefix made that receive block on
            # the wrong key for seconds while the consumers' messages waited.
            self._channel = await get_channel_layer().new_channel()
            self._listener = self.loop.create_task(self._listen(self._channel), name="host")
        return self._channel

    async def _listen(self, channel: str) -> None:
        layer = get_channel_layer()
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room calls: receive failed; retrying")
                await asyncio.sleep(1.0)
                continue
            kind = message.get("type")
            if kind == CALL:
                self._spawn(self._answer(message))
            elif kind == REPLY:
                call_id, reply = parse_reply(message)
                waiting = self._waiting.get(call_id)
                if waiting is not None and not waiting.done():
                    waiting.set_result(reply)

    async def _answer(self, message: dict[str, Any]) -> None:
        doc_id, reply_to, call_id, call = parse_call(message)
        room = self.local_room(doc_id)
        reply: RoomReply
        if room is None:
            reply = NotHere()
        else:
            try:
                reply = await room.call(call)
            except RoomGone:
                reply = NotHere()
            except ProtocolError as error:
                reply = Refused(error.code, error.message)
        with contextlib.suppress(Exception):
            await get_channel_layer().send(reply_to, encode_reply(call_id, reply))

    # -- keeping leases ------------------------------------------------------------------

    def _ensure_renewing(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = self.loop.create_task(self._renew(), name="lease renewal")

    async def _renew(self) -> None:
        """Renew our leases well within their time; close a room whose lease is gone."""
        while self._rooms:
            await asyncio.sleep(lease_seconds() / 3)
            try:
                held = await in_store_thread(ownership.renew, self.owner, lease_seconds())
            except DatabaseError as error:
                storage_errors.report(log, "leases", "cannot renew them (retrying)", error)
                continue
            except Exception:
                log.exception("renewing leases failed; retrying")
                continue
            for doc_id, room in list(self._rooms.items()):
                if held.get(doc_id) != room.epoch:
                    room.lost_lease()

    def release_all(self) -> None:
        """At shutdown (from a thread with database access): give every lease back."""
        for room in list(self._rooms.values()):
            with contextlib.suppress(Exception):
                ownership.release(room.doc_id, self.owner, room.epoch)

    def _spawn(self, coroutine: Any) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


_hosts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Host] = weakref.WeakKeyDictionary()


def get_host() -> Host:
    """The host of the running event loop."""
    loop = asyncio.get_running_loop()
    host = _hosts.get(loop)
    if host is None:
        host = _hosts[loop] = Host(loop)
    return host


def all_hosts() -> list[Host]:
    return list(_hosts.values())
