"""The sequencer: the one place where a document's versions are made.

It owns the document's sync engine, applies queued requests in ticks, makes each tick's
updates durable in one transaction (a group commit, fenced by the room's lease epoch),
writes a snapshot every so often, and only then answers. If a tick fails (storage, a
lost lease, a bug) it stops at once: whoever waits is told to ask again, and the room
around it is dropped so that the next call loads the document afresh from storage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from collab import storage_thread, store
from collab.delta import compose
from collab.engine import DocumentEngine, NeedsRebuild, RebuildJob, Rebuilt
from collab.log import StoredUpdate
from collab.protocol import Answer, ProtocolError, SyncRequest, too_old

# Rebuilding an old base (collab/engine.py) runs here, never on the event loop: one
# thread for the whole process, so old bases from any number of editors take at most
# one core's share while everyone else's requests go on.
_REBUILDS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tandem-rebuild")
# A request is rebuilt again if the document moved further than the history while it
# was being rebuilt; after this many rounds it is refused (`too_old`).
REBUILD_ROUNDS = 4  # a replay (a resent request) may need two rebuilds


class RoomGone(Exception):
    """The room stopped (storage failed, its lease was lost, it was unloaded): ask the
    document's room again; requests are idempotent, so resending is safe."""


def settle(
    future: asyncio.Future[Any], result: Any = None, error: BaseException | None = None
) -> None:
    """Resolve `future` unless it already is (or its waiter was cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


@dataclass(eq=False)
class _Request:
    session: Hashable
    request: SyncRequest
    author: str
    future: asyncio.Future[Answer]
    # Rebuilds of old bases done for it in the rebuild thread (engine.handle's offload).
    rebuilt: dict[tuple[int, int], Rebuilt] = field(default_factory=dict)
    rounds: int = 0


@dataclass
class _Replacement:
    text: str
    author: str
    future: asyncio.Future[int]
    session: Hashable | None = None  # a restore made on an editor's behalf (its undo)


class Sequencer:
    def __init__(
        self,
        doc_id: str,
        engine: DocumentEngine,
        epoch: int | None,
        *,
        updates_since_snapshot: int,
        on_commit: Callable[[], None],
        on_failure: Callable[[BaseException], None],
    ) -> None:
        """`epoch`: the lease every append is fenced with (None: unfenced, for tests).
        `on_commit` runs after each tick that made the document move on; `on_failure`
        after a tick failed and the sequencer stopped."""
        self.doc_id = doc_id
        self.engine = engine
        self.epoch = epoch
        self.stopped = False
        # The newest version that is on disk: nobody is told of anything newer.
        self.durable_version = engine.version
        self.last_change = timezone.now()
        self._updates_since_snapshot = updates_since_snapshot
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._requests: list[_Request] = []
        self._replacements: list[_Replacement] = []
        self._rebuilding: set[_Request] = set()  # waiting for the rebuild thread
        self._rebuild_tasks: set[asyncio.Task[None]] = set()
        self._ticking = False
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name=f"sequencer {doc_id}")

    @property
    def busy(self) -> bool:
        """Work queued, waiting for a rebuild, or a tick under way (its save may be
        pending even though whoever asked has gone): a room unloads only once this is
        false."""
        return self._ticking or bool(self._requests or self._replacements or self._rebuilding)

    async def submit(self, session: Hashable, request: SyncRequest, author: str) -> Answer:
        """Apply a request in the next tick; the answer comes once it is durable."""
        if self.stopped:
            raise RoomGone(self.doc_id)
        future: asyncio.Future[Answer] = self._loop.create_future()
        self._requests.append(_Request(session, request, author, future))
        self._wake.set()
        return await future

    async def replace_text(self, text: str, author: str, session: Hashable | None = None) -> int:
        """Replace the whole text as one merged change; returns the new version. With
        `session`, the change is that editor session's own (its undo takes it back)."""
        if self.stopped:
            raise RoomGone(self.doc_id)
        future: asyncio.Future[int] = self._loop.create_future()
        self._replacements.append(_Replacement(text, author, future, session))
        self._wake.set()
        return await future

    def stop(self) -> None:
        """Take no more work; whoever waits asks again elsewhere."""
        self.stopped = True
        waiting = [*self._requests, *self._rebuilding]
        for future in self._futures(waiting, self._replacements):
            settle(future, error=RoomGone(self.doc_id))
        self._requests, self._replacements, self._rebuilding = [], [], set()
        self._wake.set()

    @staticmethod
    def _futures(
        requests: list[_Request], replacements: list[_Replacement]
    ) -> list[asyncio.Future[Any]]:
        return [r.future for r in requests] + [r.future for r in replacements]

    async def drain(self) -> None:
        """Return once everything queued so far is answered."""
        while self.busy and not self.stopped:
            await asyncio.sleep(0.01)

    async def _run(self) -> None:
        while not self.stopped:
            await self._wake.wait()
            self._wake.clear()
            if self.stopped:
                return
            self._ticking = True
            try:
                await self._tick()
            except Exception as error:
                # Stop taking work at once, before anything is awaited: an editor that
                # asks again meanwhile must reach a fresh room, not this one.
                self.stop()
                self._on_failure(error)
                return
            finally:
                self._ticking = False

    async def _tick(self) -> None:
        requests, self._requests = self._requests, []
        replacements, self._replacements = self._replacements, []
        try:
            await self._apply(requests, replacements)
        except BaseException as error:
            # Whoever waits learns why (a storage failure is said to the editor).
            gone = RoomGone(self.doc_id)
            gone.__cause__ = error
            waiting = [item for item in requests if item not in self._rebuilding]
            for future in self._futures(waiting, replacements):
                settle(future, error=gone)
            raise
        finally:
            # Whatever went wrong, nobody waits for ever: an editor whose request was not
            # answered asks again (requests are idempotent). One waiting for its rebuild
            # is answered once that is done.
            left = [item for item in requests if item not in self._rebuilding]
            for future in self._futures(left, replacements):
                settle(future, error=RoomGone(self.doc_id))

    async def _apply(self, requests: list[_Request], replacements: list[_Replacement]) -> None:
        answered: list[tuple[asyncio.Future[Answer], Answer]] = []
        replaced: list[tuple[asyncio.Future[int], int]] = []
        updates: list[StoredUpdate] = []
        for item in requests:
            try:
                answer, update = self.engine.handle(
                    item.session, item.request, item.author, item.rebuilt
                )
            except NeedsRebuild as need:
                self._rebuild(item, need.job)
                continue
            except ProtocolError as error:
                settle(item.future, error=error)
                continue
            if update is not None:
                updates.append(update)
            answered.append((item.future, answer))
        for rep in replacements:
            try:
                update = self.engine.replace_text(rep.text, rep.author, rep.session)
            except ProtocolError as error:
                settle(rep.future, error=error)
                continue
            if update is not None:
                updates.append(update)
            replaced.append((rep.future, self.engine.version))
        if updates:
            self._updates_since_snapshot += len(updates)
            snapshot = None
            if self._updates_since_snapshot >= store.SNAPSHOT_EVERY:
                snapshot = self.engine.encode_state()
            # Durable before anyone is answered: this tick's group commit, fenced by the
            # lease. If it fails, _tick's finally clause tells everyone to ask again.
            await storage_thread.append(self.doc_id, updates, snapshot, self.epoch)
            if snapshot is not None:
                self._updates_since_snapshot = 0
                self.engine.remember_checkpoint(updates[-1].seq, snapshot)
            self.last_change = timezone.now()
            self.durable_version = updates[-1].seq
        for answer_future, answer in answered:
            settle(answer_future, self._to_durable(answer))
        for version_future, version in replaced:
            settle(version_future, version)
        if updates:
            self._on_commit()

    def _rebuild(self, item: _Request, job: RebuildJob) -> None:
        """Run `job` in the rebuild thread, then queue `item` again with its result."""
        item.rounds += 1
        if item.rounds > REBUILD_ROUNDS:
            settle(item.future, error=too_old(job.after, self.engine.version))
            return
        self._rebuilding.add(item)
        task = self._loop.create_task(self._rebuilt(item, job), name=f"rebuild {self.doc_id}")
        self._rebuild_tasks.add(task)  # (the loop keeps only a weak reference)
        task.add_done_callback(self._rebuild_tasks.discard)

    async def _rebuilt(self, item: _Request, job: RebuildJob) -> None:
        try:
            result = await self._loop.run_in_executor(_REBUILDS, job.run)
        except Exception as error:
            settle(item.future, error=error)
            return
        finally:
            self._rebuilding.discard(item)
        if self.stopped or item.future.done():
            return  # the room stopped meanwhile (its waiter was told to ask again)
        item.rebuilt[job.after, job.upto] = result
        self._requests.append(item)
        self._wake.set()

    def _to_durable(self, answer: Answer) -> Answer:
        """An answer brought on to the durable version: the editors answered in one tick
        then all hold the tick's last version, so the news that follows starts from one
        version (one encoding) and brings them nothing twice."""
        if answer.version >= self.durable_version:
            return answer
        rest = self.engine.changes(answer.version, self.durable_version)
        if rest is None:
            return answer
        delta = compose(answer.delta, rest) if answer.delta else rest
        return Answer(answer.rid, self.durable_version, delta)
