"""collab.ownership: leases judged by one clock (a fake one here), and the append fence."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from collab import ownership, store
from collab.log import StoredUpdate
from collab.ownership import DocumentMissing, Holder, Lease, LeaseLost
from editor.models import Document

pytestmark = pytest.mark.django_db(transaction=True)

TTL = 5.0


def _doc() -> str:
    return store.create_document("Lease test", "abc").id


def _update(seq: int, text: str) -> StoredUpdate:
    from collab.crdt import text_update

    return StoredUpdate(seq=seq, data=text_update(text))


def test_the_first_claim_takes_the_lease_and_the_next_learns_who_holds_it() -> None:
    doc = _doc()
    lease = ownership.claim(doc, "a", "chan-a", TTL, now=100.0)
    assert lease == Lease(doc, 1, 105.0)
    holder = ownership.claim(doc, "b", "chan-b", TTL, now=104.9)
    assert holder == Holder("a", "chan-a", 1, 105.0)
    assert ownership.holder(doc, now=104.9) == holder


def test_an_expired_lease_is_taken_over_with_a_new_epoch_and_the_old_owner_is_fenced() -> None:
    doc = _doc()
    old = ownership.claim(doc, "a", "chan-a", TTL, now=100.0)
    assert isinstance(old, Lease)
    assert ownership.holder(doc, now=105.0) is None  # expired at 105: nobody holds it
    new = ownership.claim(doc, "b", "chan-b", TTL, now=105.0)
    assert new == Lease(doc, 2, 110.0)
    # The old owner woke up (it was paused) and tries to append what it had queued.
    with pytest.raises(LeaseLost):
        store.append(doc, [_update(2, "from a")], epoch=old.epoch)
    assert store.load_log(doc).version == 1  # nothing of it landed
    store.append(doc, [_update(2, "from b")], epoch=new.epoch)
    assert store.load_log(doc).version == 2


def test_renewal_extends_every_lease_of_an_owner_and_reports_the_lost_ones() -> None:
    d1, d2 = _doc(), _doc()
    ownership.claim(d1, "a", "chan-a", TTL, now=0.0)
    ownership.claim(d2, "a", "chan-a", TTL, now=0.0)
    assert ownership.renew("a", TTL, now=4.0) == {d1: 1, d2: 1}
    assert ownership.holder(d1, now=8.9) is not None  # renewed until 9
    ownership.claim(d2, "b", "chan-b", TTL, now=9.5)  # d2 expired and was taken
    assert ownership.renew("a", TTL, now=9.6) == {d1: 1}  # d1: expired, but still ours


def test_an_expired_lease_nobody_took_is_still_its_owners_to_append_with() -> None:
    doc = _doc()
    lease = ownership.claim(doc, "a", "chan-a", TTL, now=0.0)
    assert isinstance(lease, Lease)
    # Long past the expiry, but no other process claimed it: the epoch still fences.
    store.append(doc, [_update(2, "late")], epoch=lease.epoch)
    assert store.load_log(doc).version == 2


def test_a_release_lets_the_next_claim_take_it_at_once() -> None:
    doc = _doc()
    lease = ownership.claim(doc, "a", "chan-a", TTL, now=0.0)
    assert isinstance(lease, Lease)
    ownership.release(doc, "a", lease.epoch)
    assert ownership.claim(doc, "b", "chan-b", TTL, now=0.1) == Lease(doc, 2, 5.1)
    ownership.release(doc, "a", lease.epoch)  # a stale release changes nothing
    assert isinstance(ownership.claim(doc, "c", "chan-c", TTL, now=0.2), Holder)


def test_claiming_again_in_the_same_process_fences_its_older_room() -> None:
    doc = _doc()
    first = ownership.claim(doc, "a", "chan-a", TTL, now=0.0)
    second = ownership.claim(doc, "a", "chan-a", TTL, now=1.0)
    assert isinstance(first, Lease) and isinstance(second, Lease)
    assert second.epoch == first.epoch + 1
    with pytest.raises(LeaseLost):
        store.append(doc, [_update(2, "stale room")], epoch=first.epoch)


def test_a_deleted_document_has_no_lease_to_claim() -> None:
    doc = _doc()
    Document.objects.filter(pk=doc).delete()
    with pytest.raises(DocumentMissing):
        ownership.claim(doc, "a", "chan-a", TTL, now=0.0)


def test_the_database_clock_is_used_when_no_clock_is_given() -> None:
    doc = _doc()
    lease = ownership.claim(doc, "a", "chan-a", TTL)
    assert isinstance(lease, Lease)
    now = ownership.db_now()
    assert now < lease.expires <= now + TTL


def test_two_claims_at_once_give_the_lease_to_exactly_one() -> None:
    """Threads with their own database connections race to claim one document."""
    doc = _doc()
    results: list[Lease | Holder] = []
    barrier = threading.Barrier(4)

    def race(owner: str) -> None:
        try:
            barrier.wait()
            # Each waits for the others' commits (busy_timeout), as on the server.
            results.append(ownership.claim(doc, owner, f"chan-{owner}", TTL, now=50.0))
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(f"p{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 4
    leases = [r for r in results if isinstance(r, Lease)]
    assert len(leases) == 1
    winner = leases[0]
    assert all(
        isinstance(r, Holder) and r.epoch == winner.epoch for r in results if r is not winner
    )


def test_a_group_commit_fences_every_document_and_a_lost_lease_fails_only_its_own() -> None:
    """store.append_many fences all documents in one go; one whose lease moved on is
    refused alone, and every other document of the batch is written."""
    docs = [_doc() for _ in range(3)]
    leases = [ownership.claim(d, "a", "chan-a", TTL, now=0.0) for d in docs]
    assert all(isinstance(lease, Lease) for lease in leases)
    epochs = [lease.epoch for lease in leases if isinstance(lease, Lease)]
    ownership.claim(docs[1], "b", "chan-b", TTL, now=100.0)  # expired: b took docs[1]
    jobs: list[store.Job] = [
        (d, [_update(2, f"from a {i}")], None, epoch)
        for i, (d, epoch) in enumerate(zip(docs, epochs, strict=True))
    ]
    errors = store.append_many(jobs)
    assert errors[0] is None and errors[2] is None
    assert isinstance(errors[1], LeaseLost)
    assert [store.load_log(d).version for d in docs] == [2, 1, 2]
    # All leases still current: one batch, every fence passes.
    again = [
        (d, [_update(3, "more")], None, e) for d, e in ((docs[0], epochs[0]), (docs[2], epochs[2]))
    ]
    assert store.append_many(again) == [None, None]
