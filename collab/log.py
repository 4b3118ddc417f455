"""The update log as plain data: what storage loads and the sync engine starts from."""

from __future__ import annotations

from dataclasses import dataclass

from pycrdt import Doc

from collab.crdt import new_doc


@dataclass(frozen=True, slots=True)
class StoredUpdate:
    """One CRDT update of a document's log; `seq` is the version right after it."""

    seq: int
    data: bytes
    client_key: str = ""
    request_id: int | None = None
    author: str = ""
    # Characters (UTF-16 code units, as the browser counts) this update inserted and
    # deleted: the history panel sums them without replaying the log.
    inserted: int = 0
    deleted: int = 0


@dataclass(frozen=True, slots=True)
class DocumentLog:
    """A document's whole log (every update from seq 1, in order), plus the newest snapshot
    (the state as of `snapshot_version`), which makes building the current state cheap."""

    updates: list[StoredUpdate]
    snapshot_version: int = 0
    snapshot: bytes | None = None

    @property
    def version(self) -> int:
        return self.updates[-1].seq if self.updates else self.snapshot_version

    def build(self) -> Doc:
        """The current state, from the snapshot and the updates after it."""
        doc, _ = new_doc([self.snapshot] if self.snapshot else [])
        for update in self.updates:
            if update.seq > self.snapshot_version:
                doc.apply_update(update.data)
        return doc
