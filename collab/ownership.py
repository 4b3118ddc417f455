"""Leases: at most one process runs a document's room (its one sequencer) at a time.

A lease is a row per document (`DocumentLease`): the owning process, its channel for
room calls, an `epoch` that grows each time the lease changes hands, and an expiry in
seconds by the database's clock, so that the processes' own clocks never matter.

- `claim` takes the lease when nobody holds it, it expired, or we hold it already; the
  epoch grows either way, so an older room of the same document (even in this process)
  is fenced off.
- `renew` extends every lease of this process in one statement and says which it still
  holds; the host renews well within the lease time while rooms are open.
- `fence` runs inside the transaction that appends a document's updates: the append
  commits only if the lease still has the epoch the room was loaded with. A process
  that paused past its expiry (GC, SIGSTOP, a VM migration) and lost the lease meanwhile
  can therefore never append, whatever its clock says.

Plain synchronous ORM/SQL code, called from the store thread. `now` may be given (tests
use a fake clock); otherwise it is read from the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction

from collab.models import DocumentLease


class LeaseLost(Exception):
    """An append was refused: this room's lease changed hands (or its document is gone)."""


class DocumentMissing(Exception):
    """There is no such document (deleted meanwhile)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease we hold: the room loaded under it appends with this epoch."""

    doc_id: str
    epoch: int
    expires: float


@dataclass(frozen=True, slots=True)
class Holder:
    """Someone else's live lease: send room calls to `channel`."""

    owner: str
    channel: str
    epoch: int
    expires: float


def db_now() -> float:
    """The database's clock, in seconds since 1970."""
    if connection.vendor == "postgresql":
        sql = "SELECT extract(epoch from clock_timestamp())"
    elif connection.vendor == "sqlite":
        sql = "SELECT (julianday('now') - 2440587.5) * 86400.0"
    else:  # any other database Django supports: its CURRENT_TIMESTAMP, through Django
        sql = "SELECT CURRENT_TIMESTAMP"
    with connection.cursor() as cursor:
        cursor.execute(sql)
        value = cursor.fetchone()[0]
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value)


def _table() -> str:
    return connection.ops.quote_name(DocumentLease._meta.db_table)


def claim(
    doc_id: str, owner: str, channel: str, ttl: float, now: float | None = None
) -> Lease | Holder:
    """Take the document's lease, or learn who holds it. Raises DocumentMissing."""
    table = _table()
    try:
        with transaction.atomic():
            now = db_now() if now is None else now
            with connection.cursor() as cursor:
                # The row exists from the first claim on; both SQLite and PostgreSQL know
                # this form of insert-if-missing.
                cursor.execute(
                    f"INSERT INTO {table} (document_id, owner, channel, epoch, expires) "
                    "VALUES (%s, '', '', 0, 0) ON CONFLICT (document_id) DO NOTHING",
                    [doc_id],
                )
                cursor.execute(
                    f"UPDATE {table} SET owner = %s, channel = %s, epoch = epoch + 1, "
                    "expires = %s WHERE document_id = %s AND (expires <= %s OR owner = %s)",
                    [owner, channel, now + ttl, doc_id, now, owner],
                )
                taken = cursor.rowcount == 1
                cursor.execute(
                    f"SELECT owner, channel, epoch, expires FROM {table} WHERE document_id = %s",
                    [doc_id],
                )
                row = cursor.fetchone()
    except IntegrityError:
        raise DocumentMissing(doc_id) from None
    if row is None:
        raise DocumentMissing(doc_id)
    if taken:
        return Lease(doc_id, int(row[2]), float(row[3]))
    return Holder(row[0], row[1], int(row[2]), float(row[3]))


def holder(doc_id: str, now: float | None = None) -> Holder | None:
    """The live lease of the document, if any process holds one."""
    with transaction.atomic():
        now = db_now() if now is None else now
        row = DocumentLease.objects.filter(document_id=doc_id, expires__gt=now).first()
    if row is None:
        return None
    return Holder(row.owner, row.channel, row.epoch, row.expires)


def renew(owner: str, ttl: float, now: float | None = None) -> dict[str, int]:
    """Extend all of `owner`'s leases; returns {document: epoch} of those it still holds.
    A lease that expired but was not taken by anyone is still ours (its epoch is)."""
    table = _table()
    with transaction.atomic():
        now = db_now() if now is None else now
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET expires = %s WHERE owner = %s", [now + ttl, owner])
            cursor.execute(f"SELECT document_id, epoch FROM {table} WHERE owner = %s", [owner])
            return {doc_id: int(epoch) for doc_id, epoch in cursor.fetchall()}


def expire_all() -> int:
    """Expire every lease (epochs are kept, so fences still hold): for the only process,
    at its start, when every lease left is a dead process's. Returns how many."""
    return DocumentLease.objects.filter(expires__gt=0).update(expires=0)


def release(doc_id: str, owner: str, epoch: int) -> None:
    """Give the lease up at once (a room unloaded cleanly): the next claim needs no wait."""
    DocumentLease.objects.filter(document_id=doc_id, owner=owner, epoch=epoch).update(expires=0)


def fence_many(leases: list[tuple[str, int]]) -> None:
    """`fence` for several documents in one statement per document, sent at once
    (executemany); raises LeaseLost if any lease moved on (the caller then writes each
    document alone to learn which)."""
    if len(leases) == 1:
        fence(*leases[0])
        return
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {_table()} SET epoch = epoch WHERE document_id = %s AND epoch = %s",
            leases,
        )
        if cursor.rowcount != len(leases):
            raise LeaseLost(f"{len(leases) - cursor.rowcount} of {len(leases)} leases moved on")


def fence(doc_id: str, epoch: int) -> None:
    """Inside an append's transaction: refuse it unless the lease still has `epoch`.

    The no-op UPDATE also locks the lease row until the commit (PostgreSQL), so a claim
    by another process waits for this append and then sees it in the log it loads."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_table()} SET epoch = epoch WHERE document_id = %s AND epoch = %s",
            [doc_id, epoch],
        )
        if cursor.rowcount != 1:
            raise LeaseLost(f"document {doc_id}: the lease is no longer at epoch {epoch}")
