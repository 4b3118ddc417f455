"""Documents: what the list shows. The text itself lives in the CRDT log (collab.models)."""

from __future__ import annotations

import secrets

from django.db import models

TITLE_MAX_LENGTH = 200


def new_document_id() -> str:
    """A random, URL-safe id of 96 bits (16 characters)."""
    return secrets.token_urlsafe(12)


class Document(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_document_id, editable=False)
    title = models.CharField(max_length=TITLE_MAX_LENGTH, default="Untitled")
    created_at = models.DateTimeField(auto_now_add=True)
    # When the text or the title last changed; the list sorts by it.
    updated_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The sequence number of the newest CRDT update (the sync protocol's version).
    version = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return f"/d/{self.id}/"


class ShareLink(models.Model):
    """One share link of a document: an edit link or a view link.

    The link's secret is never stored: only its SHA-256 (`secret_hash`). The owner's
    dialog can show a link again because the secret is derived from `id` under the
    server's secret key (see editor.links).
    """

    EDIT = "edit"
    VIEW = "view"
    KINDS = [(EDIT, "edit"), (VIEW, "view")]

    # Random (never reused), so a grant cookie naming a reset link can never match a new one.
    id = models.CharField(primary_key=True, max_length=32, editable=False)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="share_links")
    kind = models.CharField(max_length=4, choices=KINDS)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["document", "kind"], name="one_link_per_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} link of {self.document_id}"
