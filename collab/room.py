"""Rooms: the one live copy of each open document in this process.

A room owns the document's sync engine, applies queued sync requests in ticks, makes each
tick's updates durable in one transaction (a group commit), and only then answers. After
a tick it tells the document's channel-layer group what changed: one small message per
tick (consumers turn it into pushes) and, throttled, the HTML fragments that show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from collab import fragments, storage_thread, store
from collab.delta import compose
from collab.engine import Answer, DocumentEngine, ProtocolError, SyncRequest
from collab.log import StoredUpdate
from collab.preview import PreviewState
from collab.storage_thread import in_store_thread

log = logging.getLogger("tandem.collab")

# Fragments (preview, status line) go out at most this often per document, and in a big
# room at most once per this many seconds per editor: each goes to everyone, and a
# preview 0.2 s old is as good as 0.1 s to 200 people (10 per second to each of 200
# editors was half of all the bytes the server wrote).
FRAGMENT_INTERVAL = 0.1
FRAGMENT_SECONDS_PER_EDITOR = 0.001
FRAGMENT_MAX_INTERVAL = 1.0
# News of a change goes to every editor of the document (a push each), at most once per
# this many seconds per editor in the room: the fan-out then costs the same share of the
# CPU however many editors there are (10 editors: 2 ms apart; 200 editors: 40 ms apart,
# which is latency each keystroke can afford), and bursts travel as fewer, larger pushes.
FANOUT_SECONDS_PER_EDITOR = 0.0002
FANOUT_MAX_INTERVAL = 0.05
# Longer blocks are not rendered in the live preview (see PreviewState).
LIVE_PREVIEW_BLOCK_LIMIT = 100_000
# Presence (who is here) goes out at most this often per document.
PRESENCE_INTERVAL = 0.1
# A disconnected editor's session (its undo history) is kept this long for a reconnect.
SESSION_GRACE_SECONDS = 120.0
# A room with nobody in it is unloaded after this many seconds.
IDLE_UNLOAD_SECONDS: float = getattr(settings, "TANDEM_ROOM_IDLE_SECONDS", 30.0)


def _settle(
    future: asyncio.Future[Any], result: Any = None, error: BaseException | None = None
) -> None:
    """Resolve `future` unless it already is (or its waiter was cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def broadcast_interval(editors: int, per_editor: float, least: float, most: float) -> float:
    """The time between two broadcasts to a room of `editors`: `per_editor` seconds each,
    within [least, most]. A broadcast costs O(editors), so this keeps its share of the
    CPU the same in a room of 10 and of 300."""
    return min(most, max(least, per_editor * editors))


class Paced:
    """Runs `send` soon after each `schedule()`: at once if the last run began at least
    `interval()` ago, else when it has; everything scheduled while it waits or runs is
    covered by one more run (`send` reads the room's state when it runs)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        send: Callable[[], Awaitable[None]],
        interval: Callable[[], float],
    ) -> None:
        self._loop = loop
        self._send = send
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._due = False
        self._last = 0.0

    def schedule(self) -> None:
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run())
        else:
            self._due = True

    async def _run(self) -> None:
        while True:
            wait = self._last + self._interval() - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._due = False
            self._last = time.monotonic()
            await self._send()
            if not self._due:
                return


def group_name(doc_id: str) -> str:
    return f"doc.{doc_id}"


class RoomClosed(Exception):
    """The room stopped (its storage failed or the document was deleted): reconnect."""


@dataclass
class _Pending:
    session: Hashable
    request: SyncRequest
    author: str
    future: asyncio.Future[Answer]


@dataclass
class Member:
    name: str
    joined: float = field(default_factory=time.time)


class Room:
    def __init__(
        self,
        doc_id: str,
        engine: DocumentEngine,
        preview: PreviewState,
        updates_since_snapshot: int = 0,
    ) -> None:
        """`preview` has rendered the engine's text already (`render_full`)."""
        self.doc_id = doc_id
        self.group = group_name(doc_id)
        self.engine = engine
        self.members: dict[str, Member] = {}
        self.preview = preview
        # Only touched from the event loop; `preview` itself is updated in a worker thread.
        self._preview_blocks = list(preview.blocks)
        self.preview_generation = 0
        self.closed = False
        self._pending: list[_Pending] = []
        self._replacements: list[tuple[str, str, asyncio.Future[int]]] = []
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._ticker = self._loop.create_task(self._run(), name=f"room {doc_id}")
        # News of changes (pushes) and fragments go to everyone, paced by room size.
        self._fanout = Paced(self._loop, self._tell_group, self._fanout_interval)
        self._fragments = Paced(self._loop, self._broadcast_fragments, self._fragment_interval)
        self._unload_handle: asyncio.TimerHandle | None = None
        self._updates_since_snapshot = updates_since_snapshot
        self.last_change = timezone.now()
        self.users = 0  # acquisitions not yet released (consumers and API calls)
        self._presence_dirty = False
        self._presence_task: asyncio.Task[None] | None = None
        self._sessions: dict[str, int] = {}  # page-load id -> connections using it
        # The newest version that is on disk: editors are told of nothing newer.
        self.durable_version = engine.version
        # Push messages to durable_version, by the version they start from (one JSON
        # encoding per tick for all the editors at one version).
        self._pushes: dict[int, str] = {}
        self._session_drops: dict[str, asyncio.TimerHandle] = {}

    # -- requests --------------------------------------------------------------------

    async def submit(self, session: Hashable, request: SyncRequest, author: str = "") -> Answer:
        """Apply an editor's request in the next tick; the answer comes once it is durable."""
        if self.closed:
            raise RoomClosed(self.doc_id)
        future: asyncio.Future[Answer] = self._loop.create_future()
        self._pending.append(_Pending(session, request, author, future))
        self._wake.set()
        return await future

    async def replace_text(self, text: str, author: str = "") -> int:
        """Replace the whole text as one merged change; returns the new version."""
        if self.closed:
            raise RoomClosed(self.doc_id)
        future: asyncio.Future[int] = self._loop.create_future()
        self._replacements.append((text, author, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while not self.closed:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._tick()
            except Exception:
                # Stop taking work at once, before anything is awaited: an editor that
                # reconnects meanwhile must get a fresh room, not this one.
                self._stop()
                if await self._deleted():
                    log.info("document %s was deleted while being edited", self.doc_id)
                else:
                    log.exception("room %s failed; closing it", self.doc_id)
                with contextlib.suppress(Exception):
                    await get_channel_layer().group_send(self.group, {"type": "room.closed"})
                return

    async def _deleted(self) -> bool:
        try:
            return not await in_store_thread(store.exists, self.doc_id)
        except Exception:
            return False  # storage itself is failing

    async def _tick(self) -> None:
        batch, self._pending = self._pending, []
        replacements, self._replacements = self._replacements, []
        try:
            await self._apply(batch, replacements)
        finally:
            # Whatever went wrong, nobody waits for ever: an editor whose request was not
            # answered reconnects and resends it (requests are idempotent).
            for future in [i.future for i in batch] + [f for _, _, f in replacements]:
                _settle(future, error=RoomClosed(self.doc_id))

    async def _apply(
        self, batch: list[_Pending], replacements: list[tuple[str, str, asyncio.Future[int]]]
    ) -> None:
        answered: list[tuple[asyncio.Future[Answer], Answer]] = []
        replaced: list[tuple[asyncio.Future[int], int]] = []
        updates: list[StoredUpdate] = []
        for item in batch:
            try:
                answer, update = self.engine.handle(item.session, item.request, item.author)
            except ProtocolError as error:
                _settle(item.future, error=error)
                continue
            if update is not None:
                updates.append(update)
            answered.append((item.future, answer))
        for text, author, future in replacements:
            try:
                update = self.engine.replace_text(text, author)
            except ProtocolError as error:
                _settle(future, error=error)
                continue
            if update is not None:
                updates.append(update)
            replaced.append((future, self.engine.version))
        if updates:
            self._updates_since_snapshot += len(updates)
            snapshot = None
            if self._updates_since_snapshot >= store.SNAPSHOT_EVERY:
                snapshot = self.engine.encode_state()
            # Durable before anyone is answered: the group commit of this tick. If it
            # fails, the finally clause of _tick tells everyone in it to reconnect.
            await storage_thread.append(self.doc_id, updates, snapshot)
            if snapshot is not None:
                self._updates_since_snapshot = 0
            self.last_change = timezone.now()
            self.durable_version = updates[-1].seq
            self._pushes.clear()
        for answer_future, answer in answered:
            _settle(answer_future, self._to_durable(answer))
        for version_future, version in replaced:
            _settle(version_future, version)
        if updates:
            self._fanout.schedule()
            self._fragments.schedule()

    def _to_durable(self, answer: Answer) -> Answer:
        """An answer brought on to the durable version: the editors answered in one tick
        then all hold the tick's last version, so the pushes that follow start from one
        version (one encoding) and bring them nothing twice."""
        if answer.version >= self.durable_version:
            return answer
        rest = self.engine.changes(answer.version, self.durable_version)
        if rest is None:
            return answer
        delta = compose(answer.delta, rest) if answer.delta else rest
        return Answer(answer.rid, self.durable_version, delta)

    def push_message(self, since: int) -> tuple[int, str] | None:
        """A `push` (docs/protocol.md) bringing an editor at version `since` to the durable
        version: (that version, the JSON frame), or None when the engine no longer has
        the changes since then (the editor is poked instead and syncs)."""
        message = self._pushes.get(since)
        if message is None:
            delta = self.engine.changes(since, self.durable_version)
            if delta is None:
                return None
            message = json.dumps(
                {"type": "push", "base": since, "version": self.durable_version, "delta": delta},
                ensure_ascii=False,
            )
            self._pushes[since] = message
        return self.durable_version, message

    def _stop(self) -> None:
        """Storage failed: the engine may hold changes that are not durable. Drop the room
        so that the next connection reloads it from storage; whoever waits reconnects."""
        self.closed = True
        for item in self._pending:
            _settle(item.future, error=RoomClosed(self.doc_id))
        for _, _, future in self._replacements:
            _settle(future, error=RoomClosed(self.doc_id))
        self._pending, self._replacements = [], []
        registry.forget(self)

    # -- news of changes --------------------------------------------------------------

    def _fanout_interval(self) -> float:
        return broadcast_interval(
            len(self.members), FANOUT_SECONDS_PER_EDITOR, 0.0, FANOUT_MAX_INTERVAL
        )

    async def _tell_group(self) -> None:
        """The new durable version, to every consumer (each pushes it to its editor)."""
        if not self.closed:
            await get_channel_layer().group_send(
                self.group, {"type": "doc.changed", "version": self.durable_version}
            )

    # -- fragments -------------------------------------------------------------------

    def _fragment_interval(self) -> float:
        members = len(self.members)
        return broadcast_interval(
            members, FRAGMENT_SECONDS_PER_EDITOR, FRAGMENT_INTERVAL, FRAGMENT_MAX_INTERVAL
        )

    async def _broadcast_fragments(self) -> None:
        if self.closed:
            return
        text = self.engine.text
        base = self.preview_generation
        # Usually well under a millisecond, but a change that turns the rest of a large
        # document into a code block re-renders all of it: keep that off the event loop.
        preview_html = await asyncio.to_thread(self.preview.update, text)
        if preview_html is not None:
            self.preview_generation += 1
            self._preview_blocks = list(self.preview.blocks)
        status_html = fragments.statusline(
            self.preview.words, self.engine.version, self.last_change, swap_oob=True
        )
        await get_channel_layer().group_send(
            self.group,
            {
                "type": "doc.fragments",
                "html": status_html,
                "preview": preview_html or "",
                "preview_base": base,
                "preview_generation": self.preview_generation,
            },
        )

    def full_preview(self) -> tuple[int, str]:
        """The whole preview as the room has it now, for an editor that just joined."""
        return self.preview_generation, fragments.preview(self._preview_blocks, swap_oob=True)

    # -- presence --------------------------------------------------------------------

    async def join(self, channel_name: str, name: str) -> None:
        self.members[channel_name] = Member(name)
        self._presence_changed()

    async def rename_member(self, channel_name: str, name: str) -> None:
        if channel_name in self.members and self.members[channel_name].name != name:
            self.members[channel_name].name = name
            self._presence_changed()

    async def leave(self, channel_name: str, session: str | None) -> None:
        if session is not None:
            self.detach_session(session)
        if self.members.pop(channel_name, None) is not None:
            self._presence_changed()

    def _presence_changed(self) -> None:
        """Presence goes out at most every PRESENCE_INTERVAL: when 200 people arrive at
        once, that is a few broadcasts instead of 200 (each a copy per member)."""
        self._presence_dirty = True
        if self._presence_task is None or self._presence_task.done():
            self._presence_task = self._loop.create_task(self._send_presence())

    async def _send_presence(self) -> None:
        while self._presence_dirty and not self.closed:
            await asyncio.sleep(PRESENCE_INTERVAL)
            self._presence_dirty = False
            names = [m.name for m in self.members.values()]
            html = fragments.presence(names, swap_oob=True)
            await get_channel_layer().group_send(self.group, {"type": "doc.presence", "html": html})

    # An editor's session (its undo history) is keyed by its page-load id, so it outlives
    # a dropped connection: the editor that reconnects within the grace period can still
    # undo what it typed before.

    def attach_session(self, session: str) -> None:
        self._sessions[session] = self._sessions.get(session, 0) + 1
        handle = self._session_drops.pop(session, None)
        if handle is not None:
            handle.cancel()

    def detach_session(self, session: str) -> None:
        count = self._sessions.get(session, 0) - 1
        if count > 0:
            self._sessions[session] = count
            return
        self._sessions.pop(session, None)
        self._session_drops[session] = self._loop.call_later(
            SESSION_GRACE_SECONDS, self._drop_session, session
        )

    def _drop_session(self, session: str) -> None:
        self._session_drops.pop(session, None)
        if session not in self._sessions:
            self.engine.drop_session(session, cid=session)

    # -- lifetime --------------------------------------------------------------------

    def acquire(self) -> None:
        self.users += 1
        if self._unload_handle is not None:
            self._unload_handle.cancel()
            self._unload_handle = None

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0 and not self.closed:
            self._unload_handle = self._loop.call_later(
                IDLE_UNLOAD_SECONDS, lambda: self._loop.create_task(self.unload())
            )

    async def unload(self) -> None:
        """Close an idle room once everything queued is durable."""
        if self.users > 0 or self.closed:
            return
        while self._pending or self._replacements:
            await asyncio.sleep(0.01)
        if self.users > 0:
            return
        self.closed = True
        self._wake.set()
        registry.forget(self)


class RoomRegistry:
    """The rooms of this process, one per open document, loaded once on first use."""

    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}
        self._loading: dict[str, asyncio.Future[Room]] = {}

    def get_loaded(self, doc_id: str) -> Room | None:
        room = self._rooms.get(doc_id)
        if room is None or room.closed or room._loop is not _running_loop():
            return None
        return room

    async def acquire(self, doc_id: str) -> Room:
        """The document's room, loaded from storage if needed. Pair with `release`."""
        room = self.get_loaded(doc_id)
        if room is None:
            loading = self._loading.get(doc_id)
            if loading is None or loading.get_loop() is not _running_loop():
                loading = _running_loop().create_future()
                self._loading[doc_id] = loading
                try:
                    log_ = await in_store_thread(store.load_log, doc_id)
                    engine = DocumentEngine(log_)
                    # Rendering a large document takes a while: not on the event loop.
                    preview = PreviewState(block_limit=LIVE_PREVIEW_BLOCK_LIMIT)
                    await asyncio.to_thread(preview.render_full, engine.text)
                    room = Room(
                        doc_id,
                        engine,
                        preview,
                        updates_since_snapshot=log_.version - log_.snapshot_version,
                    )
                    self._rooms[doc_id] = room
                    loading.set_result(room)
                except BaseException as error:
                    loading.set_exception(error)
                    loading.exception()  # retrieved: waiters get it, nobody logs it twice
                    raise
                finally:
                    self._loading.pop(doc_id, None)
            else:
                room = await asyncio.shield(loading)
        room.acquire()
        return room

    def forget(self, room: Room) -> None:
        if self._rooms.get(room.doc_id) is room:
            del self._rooms[room.doc_id]

    def loaded(self) -> list[Room]:
        return [r for r in self._rooms.values() if not r.closed]


def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


registry = RoomRegistry()
