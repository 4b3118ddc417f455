"""collab/store.py against whichever database the run uses.

Plain pytest-django tests: in the default run they use SQLite; tests/test_postgres.py
runs this module (and the other storage tests) again with TANDEM_DATABASE_URL pointing
at a real PostgreSQL, so that no SQLite-only SQL reaches the hot path unnoticed.
"""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection
from pycrdt import Text

from collab import store
from collab.crdt import TEXT_KEY, new_doc
from collab.log import StoredUpdate
from collab.models import DocumentSnapshot, DocumentUpdate
from editor.models import Document

pytestmark = pytest.mark.django_db(transaction=True)


class Writer:
    """A pycrdt replica whose edits become the next updates of a stored document."""

    def __init__(self, doc_id: str) -> None:
        log = store.load_log(doc_id)
        self.doc_id = doc_id
        self.doc, self.text = new_doc(u.data for u in log.updates)
        self.version = log.version

    def edit(
        self,
        insert: str,
        at: int | None = None,
        client_key: str = "",
        request_id: int | None = None,
        author: str = "",
    ) -> StoredUpdate:
        captured: list[bytes] = []
        sub = self.doc.observe(lambda event: captured.append(event.update))
        self.text.insert(len(self.text) if at is None else at, insert)
        self.doc.unobserve(sub)
        self.version += 1
        return StoredUpdate(self.version, captured[0], client_key, request_id, author)

    def snapshot(self) -> bytes:
        return self.doc.get_update()


def text_of(doc_id: str) -> str:
    return store.read_document(doc_id)[0]


def test_the_run_uses_the_database_it_was_given() -> None:
    # Guards the PostgreSQL rerun: it must really be on PostgreSQL.
    import os

    expected = "postgresql" if os.environ.get("TANDEM_DATABASE_URL") else "sqlite"
    assert connection.vendor == expected


def test_create_document_with_and_without_text() -> None:
    empty = store.create_document("Empty")
    full = store.create_document("Full", "héllo\n✓ 😀")
    assert store.read_document(empty.id) == ("", 0)
    assert store.read_document(full.id) == ("héllo\n✓ 😀", 1)
    assert store.exists(full.id) and not store.exists("no-such-document")


def test_append_is_durable_in_order_with_its_request_and_author() -> None:
    doc = store.create_document("Log", "a")
    writer = Writer(doc.id)
    updates = [
        writer.edit("b", client_key="page-1", request_id=7, author="Ann"),
        writer.edit("c", client_key="page-1", request_id=8, author="Ann"),
        writer.edit("!", at=0),
    ]
    store.append(doc.id, updates)
    assert store.read_document(doc.id) == ("!abc", 4)
    assert Document.objects.get(pk=doc.id).version == 4
    log = store.load_log(doc.id)
    assert [u.seq for u in log.updates] == [1, 2, 3, 4]
    assert log.updates[1] == updates[0]
    assert store.find_request(doc.id, "page-1", 8) == updates[1]
    assert store.find_request(doc.id, "page-1", 9) is None
    assert store.find_request(doc.id, "page-2", 8) is None
    # The state an editor at version 2 had.
    _doc, text = new_doc(store.load_updates(doc.id, 2))
    assert str(text) == "ab"


def test_append_touches_the_document_for_the_list() -> None:
    doc = store.create_document("Touched")
    before = Document.objects.get(pk=doc.id).updated_at
    store.append(doc.id, [Writer(doc.id).edit("x")])
    after = Document.objects.get(pk=doc.id)
    assert after.updated_at > before and after.version == 1


def test_a_taken_seq_is_refused_and_nothing_of_the_batch_is_written() -> None:
    doc = store.create_document("Clash", "a")
    writer = Writer(doc.id)
    fresh, clash = writer.edit("b"), StoredUpdate(1, b"\x00\x00")
    with pytest.raises(IntegrityError):
        store.append(doc.id, [fresh, clash])
    assert store.read_document(doc.id) == ("a", 1)
    assert DocumentUpdate.objects.filter(document_id=doc.id).count() == 1


def test_snapshots_bound_what_loading_reads() -> None:
    doc = store.create_document("Snap", "0")
    writer = Writer(doc.id)
    store.append(doc.id, [writer.edit("1"), writer.edit("2")], snapshot=writer.snapshot())
    store.append(doc.id, [writer.edit("3")])
    assert DocumentSnapshot.objects.filter(document_id=doc.id).get().version == 3
    assert store.updates_since_snapshot(doc.id) == 1
    partial = store.load_log(doc.id, full=False)
    assert (partial.snapshot_version, [u.seq for u in partial.updates]) == (3, [4])
    full = store.load_log(doc.id)
    assert [u.seq for u in full.updates] == [1, 2, 3, 4]
    assert str(partial.build().get(TEXT_KEY, type=Text)) == "0123"
    assert str(full.build().get(TEXT_KEY, type=Text)) == "0123"
    assert store.read_document(doc.id) == ("0123", 4)


def test_group_commit_of_many_documents_with_one_bad_job() -> None:
    docs = [store.create_document(f"D{i}", f"{i}") for i in range(5)]
    jobs: list[store.Job] = [(d.id, [Writer(d.id).edit("+")], None, None) for d in docs]
    jobs.insert(2, (docs[0].id, [StoredUpdate(1, b"\x00\x00")], None, None))  # seq 1 is taken
    errors = store.append_many(jobs)
    assert [e is None for e in errors] == [True, True, False, True, True, True]
    assert isinstance(errors[2], IntegrityError)
    assert [store.read_document(d.id) for d in docs] == [(f"{i}+", 2) for i in range(5)]


def test_group_commit_when_a_document_was_deleted_meanwhile() -> None:
    kept, gone = store.create_document("Kept"), store.create_document("Gone")
    jobs: list[store.Job] = [
        (gone.id, [Writer(gone.id).edit("x")], None, None),
        (kept.id, [Writer(kept.id).edit("y")], None, None),
    ]
    Document.objects.filter(pk=gone.id).delete()
    errors = store.append_many(jobs)
    assert errors[0] is not None and errors[1] is None
    assert store.read_document(kept.id) == ("y", 1)
    assert not DocumentUpdate.objects.filter(document_id=gone.id).exists()


def test_deleting_a_document_deletes_its_log_and_snapshots() -> None:
    doc = store.create_document("Bye", "text")
    writer = Writer(doc.id)
    store.append(doc.id, [writer.edit("!")], snapshot=writer.snapshot())
    Document.objects.filter(pk=doc.id).delete()
    assert not DocumentUpdate.objects.filter(document_id=doc.id).exists()
    assert not DocumentSnapshot.objects.filter(document_id=doc.id).exists()


def test_large_updates_round_trip() -> None:
    doc = store.create_document("Big")
    writer = Writer(doc.id)
    big = "x" * (4 * 1024 * 1024)
    store.append(doc.id, [writer.edit(big)])
    assert store.read_document(doc.id) == (big, 1)
