"""Persistence of CRDT updates: the append-only log and its snapshots (never rewritten).

Plain synchronous Django ORM code; the room calls it from a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from django.db import connection, models, transaction
from django.utils import timezone
from pycrdt import Text

from collab import ownership
from collab.crdt import TEXT_KEY, text_update
from collab.delta import utf16_len
from collab.log import DocumentLog, StoredUpdate
from collab.models import DocumentSnapshot, DocumentUpdate
from editor.models import Document

# A snapshot is written once this many updates have been added since the last one.
SNAPSHOT_EVERY = 500


def _stored(row: DocumentUpdate) -> StoredUpdate:
    return StoredUpdate(
        seq=row.seq,
        data=bytes(row.data),
        client_key=row.client_key,
        request_id=row.request_id,
        author=row.author,
        inserted=row.inserted,
        deleted=row.deleted,
    )


def load_log(doc_id: str, *, full: bool = True) -> DocumentLog:
    """A document's newest snapshot and its log: the whole log, or (full=False) only the
    updates after the snapshot, which is all that building the current state needs."""
    # One read transaction, so the snapshot and the rows are of the same moment.
    with transaction.atomic():
        snap = DocumentSnapshot.objects.filter(document_id=doc_id).order_by("-version").first()
        since = snap.version if snap else 0
        rows = DocumentUpdate.objects.filter(document_id=doc_id).order_by("seq")
        if not full:
            rows = rows.filter(seq__gt=since)
        updates = [_stored(r) for r in rows]
    return DocumentLog(
        updates=updates, snapshot_version=since, snapshot=bytes(snap.data) if snap else None
    )


def load_updates(doc_id: str, upto: int) -> list[bytes]:
    """Every update from the start up to version `upto`: the state an editor at `upto` had."""
    rows = DocumentUpdate.objects.filter(document_id=doc_id, seq__lte=upto).order_by("seq")
    return [bytes(data) for data in rows.values_list("data", flat=True)]


def find_request(doc_id: str, client_key: str, request_id: int) -> StoredUpdate | None:
    row = DocumentUpdate.objects.filter(
        document_id=doc_id, client_key=client_key, request_id=request_id
    ).first()
    return _stored(row) if row else None


def append(
    doc_id: str,
    updates: Sequence[StoredUpdate],
    snapshot: bytes | None = None,
    epoch: int | None = None,
) -> None:
    """Make `updates` durable in one transaction (a group commit), with an optional snapshot
    of the state after the last of them. With `epoch`, only while the document's lease
    still has that epoch (ownership.fence; raises LeaseLost)."""
    with transaction.atomic():
        _write([(doc_id, updates, snapshot, epoch)])


def _write(jobs: Sequence[Job]) -> None:
    """The statements of a group commit, inside the caller's transaction: each statement
    once for every job (executemany: on PostgreSQL one pipelined round trip, where a
    statement per document was a round trip each and the most of a commit's time)."""
    jobs = [job for job in jobs if job[1]]
    if not jobs:
        return
    fenced = [(doc_id, epoch) for doc_id, _, _, epoch in jobs if epoch is not None]
    if fenced:
        ownership.fence_many(fenced)
    # Every keystroke passes here: plain SQL, not the ORM's per-row model machinery.
    created = connection.ops.adapt_datetimefield_value(timezone.now())
    rows = [
        (
            doc_id,
            u.seq,
            u.data,
            u.client_key,
            u.request_id,
            u.author,
            created,
            u.inserted,
            u.deleted,
        )
        for doc_id, updates, _, _ in jobs
        for u in updates
    ]
    with connection.cursor() as cursor:
        cursor.executemany(_sql()["insert"], rows)
        cursor.executemany(
            _sql()["touch"],
            [(updates[-1].seq, created, doc_id) for doc_id, updates, _, _ in jobs],
        )
    for doc_id, updates, snapshot, _ in jobs:
        if snapshot is not None:
            DocumentSnapshot.objects.create(
                document_id=doc_id, version=updates[-1].seq, data=snapshot
            )


@cache
def _sql() -> dict[str, str]:
    """The two statements of `append`, with table and column names from the models."""
    q = connection.ops.quote_name
    fields = (
        "document",
        "seq",
        "data",
        "client_key",
        "request_id",
        "author",
        "created_at",
        "inserted",
        "deleted",
    )
    columns = ", ".join(q(_column(DocumentUpdate, name)) for name in fields)
    table, doc_table = DocumentUpdate._meta.db_table, Document._meta.db_table
    version, updated_at, pk = (_column(Document, n) for n in ("version", "updated_at", "id"))
    return {
        "insert": f"INSERT INTO {q(table)} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})",
        "touch": f"UPDATE {q(doc_table)} SET {q(version)} = %s, {q(updated_at)} = %s "
        f"WHERE {q(pk)} = %s",
    }


def _column(model: type[models.Model], name: str) -> str:
    field = model._meta.get_field(name)
    column = getattr(field, "column", None)
    assert isinstance(column, str), (model, name)
    return column


Job = tuple[str, Sequence[StoredUpdate], "bytes | None", "int | None"]


def append_many(jobs: Sequence[Job]) -> list[Exception | None]:
    """Several `append`s in one transaction: one commit (one fsync) for all of them.
    Returns, per job, None or the error that kept it from being written. One job's failure
    never takes the others down: if anything in the batch fails (a lease lost, a document
    deleted meanwhile, at once or at commit), the batch is rolled back and every job is
    written again on its own. No savepoint per job: on PostgreSQL each costs two round
    trips, and failures are rare."""
    if len(jobs) == 1:
        return [_append_alone(jobs[0])]
    try:
        with transaction.atomic():
            _write(jobs)
    except Exception:
        return [_append_alone(job) for job in jobs]
    return [None] * len(jobs)


def _append_alone(job: Job) -> Exception | None:
    try:
        append(*job)
    except Exception as error:
        return error
    return None


def updates_since_snapshot(doc_id: str) -> int:
    snap = DocumentSnapshot.objects.filter(document_id=doc_id).order_by("-version").first()
    latest = Document.objects.filter(pk=doc_id).values_list("version", flat=True).first() or 0
    return latest - (snap.version if snap else 0)


def exists(doc_id: str) -> bool:
    return Document.objects.filter(pk=doc_id).exists()


def create_document(title: str, text: str = "", author: str = "") -> Document:
    """A new document whose log starts with one update holding `text` (by `author`)."""
    with transaction.atomic():
        doc = Document.objects.create(title=title, version=1 if text else 0)
        if text:
            DocumentUpdate.objects.create(
                document=doc,
                seq=1,
                data=text_update(text),
                inserted=utf16_len(text),
                author=author,
            )
    return doc


def read_document(doc_id: str) -> tuple[str, int]:
    """The committed text of a document and its version, of the same moment.

    Committed state only: everything acknowledged to any editor, nothing that a crash
    could still take back. A page's shadow text and version come from here.
    """
    log = load_log(doc_id, full=False)
    return str(log.build().get(TEXT_KEY, type=Text)), log.version
