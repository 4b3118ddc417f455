"""Durable CRDT state: an append-only log of updates per document plus compacted snapshots."""

from __future__ import annotations

from django.db import models


class DocumentUpdate(models.Model):
    """One CRDT update. `seq` is the document's version right after it was applied."""

    document = models.ForeignKey("editor.Document", on_delete=models.CASCADE, related_name="+")
    seq = models.PositiveBigIntegerField()
    data = models.BinaryField()
    # The request that produced it (page load id and request counter), so that a request
    # resent after a lost answer is recognised instead of applied twice.
    client_key = models.CharField(max_length=64, blank=True, default="")
    request_id = models.PositiveBigIntegerField(null=True)
    author = models.CharField(max_length=80, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # UTF-16 code units inserted and deleted, counted when the update was made (the
    # history panel's +N / -M without a replay). 0 for updates stored before they were.
    inserted = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["document", "seq"], name="update_seq_unique"),
        ]
        indexes = [models.Index(fields=["document", "client_key", "request_id"])]
        ordering = ["seq"]


class DocumentSnapshot(models.Model):
    """The whole document state as of `version`, so loading need not replay the whole log.

    The log is kept: an editor coming back with an old base is rebased from it.
    """

    document = models.ForeignKey("editor.Document", on_delete=models.CASCADE, related_name="+")
    version = models.PositiveBigIntegerField()
    data = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["document", "version"], name="snapshot_unique"),
        ]
        ordering = ["-version"]


class DocumentLease(models.Model):
    """Which process runs the document's room (its one sequencer), until when.

    `expires` is in seconds since 1970 by the database's clock (never a process's own);
    `epoch` grows with every change of hands, and every append checks it in the same
    transaction (collab/ownership.py), so a process that lost the lease cannot write.
    """

    document = models.OneToOneField(
        "editor.Document", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    owner = models.CharField(max_length=200, blank=True, default="")
    channel = models.CharField(max_length=200, blank=True, default="")
    epoch = models.PositiveBigIntegerField(default=0)
    expires = models.FloatField(default=0.0)


class NamedVersion(models.Model):
    """A version someone named ("Save version"): it stands out in the history panel."""

    document = models.ForeignKey("editor.Document", on_delete=models.CASCADE, related_name="+")
    version = models.PositiveBigIntegerField()
    label = models.CharField(max_length=100)
    author = models.CharField(max_length=80, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["document", "version"], name="named_version_unique"),
        ]
        ordering = ["-version"]
