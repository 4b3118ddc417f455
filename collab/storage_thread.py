"""The one thread that reads and writes documents, and the group commit across rooms.

Every room reads and commits through one thread: one long-lived SQLite connection, and
never Django's thread-sensitive thread, which a sync view may be blocking while it waits
for a room (the API's text replacement), which would deadlock.

SQLite makes a commit durable with an fsync, and one thread can only do so many of those
a second. So appends are not written one by one: while the thread writes one batch, the
appends of every room that arrive meanwhile queue up, and the next batch writes them all
in one transaction. With a hundred busy documents that is a handful of commits per
tick of the event loop instead of a hundred.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from django.db import connection

from collab import store
from collab.log import StoredUpdate

T = TypeVar("T")
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tandem-store")


async def in_store_thread(fn: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(_executor, _guarded, fn, *args)


def _guarded(fn: Callable[..., T], *args: object) -> T:
    """Run `fn`; after a failure, drop the thread's database connection if it is broken.

    Django closes broken connections at the end of each request; this thread has no
    requests. Without this, a database restart broke every later call of the thread (a
    failure outside a transaction leaves the dead connection in place) until Tandem
    itself was restarted."""
    try:
        return fn(*args)
    except Exception:
        connection.close_if_unusable_or_obsolete()
        raise


@dataclass
class _Append:
    doc_id: str
    updates: Sequence[StoredUpdate]
    snapshot: bytes | None
    epoch: int | None
    done: asyncio.Future[None]


class _GroupCommit:
    """The appends queued on one event loop, written in batches by the store thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: list[_Append] = []
        self._writer: asyncio.Task[None] | None = None

    async def append(
        self,
        doc_id: str,
        updates: Sequence[StoredUpdate],
        snapshot: bytes | None,
        epoch: int | None,
    ) -> None:
        done: asyncio.Future[None] = self._loop.create_future()
        self._queue.append(_Append(doc_id, updates, snapshot, epoch, done))
        if self._writer is None or self._writer.done():
            self._writer = self._loop.create_task(self._write(), name="tandem group commit")
        await done

    async def _write(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            jobs = [(a.doc_id, a.updates, a.snapshot, a.epoch) for a in batch]
            try:
                errors = await in_store_thread(store.append_many, jobs)
            except BaseException as error:  # the thread itself failed, or we are cancelled
                for item in batch:
                    _fail(item.done, error)
                raise
            for item, failure in zip(batch, errors, strict=True):
                if failure is not None:
                    _fail(item.done, failure)
                elif not item.done.done():
                    item.done.set_result(None)


def _fail(future: asyncio.Future[None], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


_commits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _GroupCommit] = (
    weakref.WeakKeyDictionary()
)


async def append(
    doc_id: str,
    updates: Sequence[StoredUpdate],
    snapshot: bytes | None,
    epoch: int | None = None,
) -> None:
    """Make a room's updates durable; returns once they are committed (raises if not,
    LeaseLost among others when `epoch` is no longer the lease's)."""
    loop = asyncio.get_running_loop()
    commit = _commits.get(loop)
    if commit is None:
        commit = _commits[loop] = _GroupCommit(loop)
    await commit.append(doc_id, updates, snapshot, epoch)
