"""A room: the live copy of one open document, in the one process that holds its lease.

It puts together the sequencer (versions, durability), the roster (who is here) and the
broadcaster (what the group hears), and answers the calls of collab/protocol.py. Nothing
outside reaches into it: consumers and the API call it through the host (collab/host.py),
directly when it is in their process and over the channel layer when it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError

from collab import storage_errors, store
from collab.broadcaster import Broadcaster
from collab.carets import Caret
from collab.delta import transform_index
from collab.engine import DocumentEngine
from collab.ownership import LeaseLost
from collab.preview import PreviewState
from collab.protocol import (
    Done,
    JoinCall,
    LeaveCall,
    PresenceCall,
    PreviewCall,
    PreviewReply,
    ProtocolError,
    Refused,
    ReplaceCall,
    Replaced,
    RestoreCall,
    RoomCall,
    RoomClosed,
    RoomReply,
    SyncCall,
    Synced,
    group_name,
)
from collab.roster import HEARTBEAT_SECONDS, Roster
from collab.sequencer import RoomGone, Sequencer
from collab.storage_thread import in_store_thread

log = logging.getLogger("tandem.collab")

# Longer blocks are not rendered in the live preview (see PreviewState).
LIVE_PREVIEW_BLOCK_LIMIT = 100_000


def idle_unload_seconds() -> float:
    """A room with nobody in it is unloaded after this many seconds."""
    return float(getattr(settings, "TANDEM_ROOM_IDLE_SECONDS", 30.0))


class Room:
    def __init__(
        self,
        doc_id: str,
        engine: DocumentEngine,
        preview: PreviewState,
        *,
        epoch: int,
        fenced: bool = True,
        updates_since_snapshot: int = 0,
        on_close: Callable[[Room], None] = lambda room: None,
    ) -> None:
        """`epoch`: the lease this room was loaded under (appends are fenced with it
        unless `fenced` is false). `on_close` runs once when the room stops."""
        self.doc_id = doc_id
        self.group = group_name(doc_id)
        self.epoch = epoch
        self.engine = engine
        self.closed = False
        self._on_close = on_close
        self._calls = 0  # calls being answered (an API call keeps the room loaded)
        self._loop = asyncio.get_running_loop()
        self._unload_handle: asyncio.TimerHandle | None = None
        self.sequencer = Sequencer(
            doc_id,
            engine,
            epoch if fenced else None,
            updates_since_snapshot=updates_since_snapshot,
            on_commit=self._committed,
            on_failure=self._failed,
        )
        self.roster = Roster(self._presence_changed, self._drop_session)
        self.broadcaster = Broadcaster(
            self.group,
            epoch,
            engine,
            preview,
            self.roster,
            lambda: self.sequencer.durable_version,
            lambda: self.sequencer.last_change,
        )
        self._sweeper = self._loop.create_task(self._sweep(), name=f"roster {doc_id}")
        self._schedule_unload()

    @property
    def durable_version(self) -> int:
        return self.sequencer.durable_version

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    # -- calls ---------------------------------------------------------------------------

    async def call(self, call: RoomCall) -> RoomReply:
        """Answer one call. Raises RoomGone when the room stopped (ask again elsewhere)."""
        if self.closed:
            raise RoomGone(self.doc_id)
        self._calls += 1
        self._cancel_unload()
        try:
            return await self._answer(call)
        except ProtocolError as error:
            return Refused(error.code, error.message)
        finally:
            self._calls -= 1
            self._schedule_unload()

    async def _answer(self, call: RoomCall) -> RoomReply:
        if isinstance(call, SyncCall):
            request = call.request
            self.roster.attach(call.member, request.cid)
            answer = await self.sequencer.submit(request.cid, request, call.author)
            self.roster.answered(call.member, answer.version)
            length = self.engine.length_at(answer.version)
            if request.sel is not None and length is not None:
                # The selection is in the text the editor sent; the answer turns that
                # text into the one at answer.version. Clamped: a selection past the end
                # of the text sent (no page sends one) must not reach other editors.
                anchor, head = (
                    min(transform_index(answer.delta, i, True), length) for i in request.sel
                )
                if self.roster.set_caret(call.member, Caret(answer.version, anchor, head)):
                    self.broadcaster.carets_moved()
            return Synced(answer.version, answer.encode())
        if isinstance(call, JoinCall):
            self.roster.join(call.member, call.name, call.session, call.version)
            if call.epoch == self.epoch:
                return PreviewReply(self.epoch, -1, "")  # a heartbeat: it has our preview
            return self.broadcaster.full_preview()
        if isinstance(call, LeaveCall):
            self.roster.leave(call.member)
            return Done()
        if isinstance(call, PreviewCall):
            return self.broadcaster.full_preview()
        if isinstance(call, ReplaceCall):
            return Replaced(await self.sequencer.replace_text(call.text, call.author))
        if isinstance(call, RestoreCall):
            session = call.session or None
            return Replaced(await self.sequencer.replace_text(call.text, call.author, session))
        if isinstance(call, PresenceCall):
            return self.broadcaster.presence()
        raise TypeError(f"not a room call: {call!r}")

    # -- what the sequencer and the roster report ----------------------------------------

    def _committed(self) -> None:
        self.broadcaster.changed()

    def _presence_changed(self) -> None:
        self.broadcaster.presence_changed()
        self._schedule_unload()

    def _drop_session(self, session: str) -> None:
        self.engine.drop_session(session, cid=session)

    def _failed(self, error: BaseException) -> None:
        """A tick failed: the engine may hold changes that are not durable. Stop at once
        (before anything is awaited) so the next call loads the document afresh."""
        self.close()
        self._loop.create_task(self._report_failure(error))

    async def _report_failure(self, error: BaseException) -> None:
        if await self._deleted():  # (its lease row goes with it: checked first)
            log.info("document %s was deleted while being edited", self.doc_id)
        elif isinstance(error, LeaseLost):
            log.warning("room %s lost its lease (epoch %s); closing it", self.doc_id, self.epoch)
        elif isinstance(error, DatabaseError):
            storage_errors.report(log, f"document {self.doc_id}", "could not save", error)
        else:
            log.error("room %s failed; closing it", self.doc_id, exc_info=error)

    async def _deleted(self) -> bool:
        try:
            return not await in_store_thread(store.exists, self.doc_id)
        except Exception:
            return False  # storage itself is failing

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop now: waiting calls are told to ask again, the group hears it once."""
        if self.closed:
            return
        self.closed = True
        self.sequencer.stop()
        self.broadcaster.closed = True
        self._sweeper.cancel()
        self._cancel_unload()
        self._on_close(self)
        self._loop.create_task(self._tell_closed())

    async def _tell_closed(self) -> None:
        with contextlib.suppress(Exception):
            await get_channel_layer().group_send(self.group, RoomClosed(self.epoch).encode())

    def lost_lease(self) -> None:
        log.warning("room %s: its lease (epoch %s) is gone; closing it", self.doc_id, self.epoch)
        self.close()

    def idle(self) -> bool:
        return not self.roster and not self._calls and not self.sequencer.busy

    def _cancel_unload(self) -> None:
        if self._unload_handle is not None:
            self._unload_handle.cancel()
            self._unload_handle = None

    def _schedule_unload(self) -> None:
        if self.closed or not self.idle() or self._unload_handle is not None:
            return
        self._unload_handle = self._loop.call_later(
            idle_unload_seconds(), lambda: self._loop.create_task(self.unload())
        )

    async def unload(self) -> None:
        """Close an idle room once everything queued is durable."""
        self._unload_handle = None
        if not self.idle() or self.closed:
            return
        await self.sequencer.drain()
        if self.idle():
            self.close()

    async def _sweep(self) -> None:
        """Members of a process that died never leave: drop them when they go quiet."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            self.roster.sweep()
            self._schedule_unload()

    def describe(self) -> dict[str, Any]:
        return {"doc": self.doc_id, "epoch": self.epoch, "members": len(self.roster)}
