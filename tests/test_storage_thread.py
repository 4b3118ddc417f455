"""collab.storage_thread and store.append_many: the group commit across rooms."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async

from collab import storage_thread, store
from collab.crdt import text_update
from collab.log import StoredUpdate
from editor.models import Document

pytestmark = pytest.mark.django_db(transaction=True)


def _update(seq: int, text: str) -> StoredUpdate:
    return StoredUpdate(seq, text_update(text), f"client-{seq}", seq, "test")


def test_append_many_writes_every_document_in_one_transaction() -> None:
    a = store.create_document("A")
    b = store.create_document("B")
    errors = store.append_many(
        [(a.id, [_update(1, "x")], None, None), (b.id, [_update(1, "y")], None, None)]
    )
    assert errors == [None, None]
    assert store.read_document(a.id) == ("x", 1)
    assert store.read_document(b.id) == ("y", 1)


def test_one_failing_job_does_not_take_the_others_down() -> None:
    a = store.create_document("A", "first")  # seq 1 is taken
    b = store.create_document("B")
    errors = store.append_many(
        [(a.id, [_update(1, "clash")], None, None), (b.id, [_update(1, "y")], None, None)]
    )
    assert errors[0] is not None and errors[1] is None
    assert store.read_document(a.id) == ("first", 1)
    assert store.read_document(b.id) == ("y", 1)


def test_a_document_deleted_meanwhile_fails_alone() -> None:
    """Foreign keys are checked at commit: the batch is written again job by job."""
    a = store.create_document("A")
    b = store.create_document("B")
    gone = a.id
    Document.objects.filter(pk=gone).delete()
    errors = store.append_many(
        [(gone, [_update(1, "x")], None, None), (b.id, [_update(1, "y")], None, None)]
    )
    assert errors[0] is not None and errors[1] is None
    assert store.read_document(b.id) == ("y", 1)


@pytest.mark.asyncio
async def test_appends_from_many_rooms_share_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Appends arriving while the store thread writes are written together next."""
    docs = [await database_sync_to_async(store.create_document)(f"D{i}") for i in range(20)]
    batches: list[int] = []
    real = store.append_many

    def counting(jobs: Any) -> list[Exception | None]:
        batches.append(len(jobs))
        return real(jobs)

    monkeypatch.setattr(store, "append_many", counting)
    await asyncio.gather(
        *(
            storage_thread.append(d.id, [_update(1, f"text {i}")], None, None)
            for i, d in enumerate(docs)
        )
    )
    assert sum(batches) == 20 and len(batches) < 20
    for i, d in enumerate(docs):
        assert await database_sync_to_async(store.read_document)(d.id) == (f"text {i}", 1)


@pytest.mark.asyncio
async def test_a_failed_append_raises_in_its_room_only() -> None:
    good = await database_sync_to_async(store.create_document)("Good")
    taken = await database_sync_to_async(store.create_document)("Taken", "first")
    results = await asyncio.gather(
        storage_thread.append(good.id, [_update(1, "ok")], None, None),
        storage_thread.append(taken.id, [_update(1, "clash")], None, None),
        return_exceptions=True,
    )
    assert results[0] is None and isinstance(results[1], Exception)
    assert await database_sync_to_async(store.read_document)(good.id) == ("ok", 1)


def test_a_read_in_another_thread_is_not_refused_while_a_commit_is_open() -> None:
    """A consumer's access check reads while the store thread writes. With the WAL
    journal it reads the last commit at once; the test database must behave the same
    (Django's default in-memory one failed it with "database table is locked")."""
    import threading

    from django.db import connection, transaction

    doc = store.create_document("Busy", "abc")
    writing = threading.Event()
    done = threading.Event()
    seen: list[object] = []

    def reader() -> None:
        writing.wait(5)
        try:
            seen.append(Document.objects.filter(pk=doc.id).exists())
            seen.append(Document.objects.get(pk=doc.id).title)
        except Exception as error:  # the failure under test, reported below
            seen.append(error)
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=reader)
    thread.start()
    with transaction.atomic():
        Document.objects.filter(pk=doc.id).update(title="Being written")
        writing.set()
        assert done.wait(5), "the reader waited for the writer"
    thread.join(5)
    assert seen == [True, "Busy"]
