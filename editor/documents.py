"""Changes to a document's metadata that live editors must hear about at once."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from collab import fragments
from collab.protocol import LIST_GROUP, AccessRevoked, DocDeleted, DocsChanged, DocTitle, group_name
from editor import links
from editor.models import Document


def _tell_editors(doc_id: str, message: dict[str, object]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group_name(doc_id), message)


def tell_lists() -> None:
    """Every open document list asks for its list again (collab/listing.py)."""
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(LIST_GROUP, DocsChanged().encode())


def rename(doc: Document, title: str) -> None:
    doc.title = title
    doc.updated_at = timezone.now()  # a rename is an edit: the list shows it first
    doc.save(update_fields=["title", "updated_at"])
    _tell_editors(doc.id, DocTitle(fragments.title(doc, swap_oob=True)).encode())
    tell_lists()


def delete(doc: Document) -> None:
    doc_id = doc.id
    doc.delete()
    # Every open editor closes with 4404 and says the document is gone.
    _tell_editors(doc_id, DocDeleted().encode())
    tell_lists()


def reset_links(doc: Document) -> dict[str, str]:
    """New share links for `doc`. The old ones stop working at once, and every guest
    connected to it is disconnected (the owner stays)."""
    tokens = links.reset(doc)
    _tell_editors(doc.id, AccessRevoked().encode())
    return tokens
