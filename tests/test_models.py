"""Documents: ids, ordering, and what creating one stores."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from collab import store
from collab.models import DocumentUpdate
from editor.models import Document, new_document_id

URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def test_ids_are_url_safe_random_and_at_least_80_bits() -> None:
    ids = {new_document_id() for _ in range(2000)}
    assert len(ids) == 2000
    for doc_id in ids:
        assert URL_SAFE.match(doc_id), doc_id
        # Base64url: 6 bits of randomness per character.
        assert len(doc_id) * 6 >= 80, doc_id
    # Every one of the 64 symbols shows up: the ids are not drawn from a small alphabet.
    assert len(set("".join(ids))) == 64
    # And the characters are spread evenly (2000 x 16 draws, 500 expected per symbol).
    counts = [sum(doc_id.count(c) for doc_id in ids) for c in set("".join(ids))]
    assert max(counts) < 2 * min(counts)


@pytest.mark.django_db
def test_a_new_document_gets_a_fresh_random_id() -> None:
    a = Document.objects.create(title="A")
    b = Document.objects.create(title="B")
    assert a.id != b.id
    assert URL_SAFE.match(a.id) and len(a.id) * 6 >= 80
    assert a.get_absolute_url() == f"/d/{a.id}/"


@pytest.mark.django_db
def test_documents_are_listed_most_recently_edited_first() -> None:
    now = timezone.now()
    for title, hours_ago in [("old", 3), ("newest", 0), ("middle", 1)]:
        doc = Document.objects.create(title=title)
        Document.objects.filter(pk=doc.pk).update(updated_at=now - timedelta(hours=hours_ago))
    assert [d.title for d in Document.objects.all()] == ["newest", "middle", "old"]


@pytest.mark.django_db
def test_create_document_stores_its_text_in_the_update_log(
    make_doc: Callable[..., Document],
) -> None:
    doc = make_doc("Notes", "# Hello 😀\n")
    assert doc.version == 1
    assert DocumentUpdate.objects.filter(document=doc).count() == 1
    assert store.read_document(doc.id) == ("# Hello 😀\n", 1)
    empty = make_doc("Empty")
    assert empty.version == 0
    assert store.read_document(empty.id) == ("", 0)


@pytest.mark.django_db
def test_deleting_a_document_deletes_its_history(make_doc: Callable[..., Document]) -> None:
    doc = make_doc("Gone", "text")
    doc.delete()
    assert not DocumentUpdate.objects.filter(document_id=doc.id).exists()
