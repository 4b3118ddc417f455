"""A document's history, read from its log: versions grouped into sessions, the text at
any version, and named versions.

Plain synchronous Django ORM code (call it from a worker thread). Nothing here replays
the whole log: the text at a version is the newest snapshot at or before it plus at most
SNAPSHOT_EVERY updates, and the panel's summaries come from the per-update counts stored
when each update was made (`DocumentUpdate.inserted` / `deleted`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Sum
from pycrdt import merge_updates

from collab.crdt import new_doc
from collab.models import DocumentSnapshot, DocumentUpdate, NamedVersion
from editor.models import Document

# Edits closer together than this belong to one session of the panel.
SESSION_GAP = timedelta(minutes=5)
# A session never spans a multiple of this version, so one long session is still listed
# in pieces a page can afford, and the boundaries do not move as the document grows.
SESSION_MAX_UPDATES = 1000
LABEL_MAX = 100
PAGE_DEFAULT = 20
PAGE_MAX = 100
_BATCH = 2000  # rows read per query while grouping
UNKNOWN_AUTHOR = "Someone"


class UnknownVersion(Exception):
    """The document has no such version (or its log no longer reaches back to it)."""


class BadLabel(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Row:
    """What the panel needs of one update (never its data)."""

    seq: int
    author: str
    time: datetime
    inserted: int
    deleted: int


@dataclass(slots=True)
class Session:
    """Consecutive updates `first`..`version` (newest), one entry of the panel."""

    version: int
    first: int
    time: datetime  # of the newest update
    authors: list[str] = field(default_factory=list)
    inserted: int = 0
    deleted: int = 0
    label: str = ""

    def add(self, row: Row) -> None:
        self.first = row.seq
        self.inserted += row.inserted
        self.deleted += row.deleted
        name = row.author or UNKNOWN_AUTHOR
        if name not in self.authors:
            self.authors.append(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "first": self.first,
            "time": self.time.isoformat(),
            "authors": self.authors,
            "inserted": self.inserted,
            "deleted": self.deleted,
            "label": self.label or None,
        }


def breaks_between(newer: Row, older: Row, labels: dict[int, str]) -> bool:
    """Whether a session ends right after `older` (and `newer` starts the next one). Only
    the pair decides, so grouping a page at a time gives what grouping all at once does."""
    return (
        newer.time - older.time > SESSION_GAP
        or older.seq in labels
        or older.seq % SESSION_MAX_UPDATES == 0
    )


def group(
    rows: Iterable[Row], labels: dict[int, str], limit: int
) -> tuple[list[Session], int | None]:
    """Rows (newest first, consecutive) grouped into at most `limit` sessions, and the
    `before` of the next page (None when the rows ran out)."""
    sessions: list[Session] = []
    previous: Row | None = None
    for row in rows:
        if previous is None or breaks_between(previous, row, labels):
            if len(sessions) == limit:
                return sessions, sessions[-1].first
            sessions.append(Session(row.seq, row.seq, row.time, label=labels.get(row.seq, "")))
        sessions[-1].add(row)
        previous = row
    return sessions, None


def _rows(doc_id: str, before: int | None) -> Iterator[Row]:
    """The document's updates below `before`, newest first, read in batches."""
    query = DocumentUpdate.objects.filter(document_id=doc_id).order_by("-seq")
    fields = ("seq", "author", "created_at", "inserted", "deleted")
    cursor = before
    while True:
        batch = query if cursor is None else query.filter(seq__lt=cursor)
        found = list(batch.values_list(*fields)[:_BATCH])
        for seq, author, time, inserted, deleted in found:
            yield Row(seq, author, time, inserted, deleted)
        if len(found) < _BATCH:
            return
        cursor = found[-1][0]


def page_size(value: object) -> int:
    if value in (None, ""):
        return PAGE_DEFAULT
    try:
        limit = int(str(value))
    except ValueError:
        raise ValueError(f'"limit" must be a whole number from 1 to {PAGE_MAX}') from None
    if not 1 <= limit <= PAGE_MAX:
        raise ValueError(f'"limit" must be a whole number from 1 to {PAGE_MAX}')
    return limit


def sessions(
    doc_id: str, before: int | None = None, limit: int = PAGE_DEFAULT
) -> tuple[list[Session], int | None]:
    """A page of the panel: sessions of versions below `before`, newest first."""
    with transaction.atomic():
        labels = labels_below(doc_id, before)
        return group(_rows(doc_id, before), labels, limit)


def labels_below(doc_id: str, before: int | None) -> dict[int, str]:
    query = NamedVersion.objects.filter(document_id=doc_id)
    if before is not None:
        query = query.filter(version__lt=before)
    return dict(query.values_list("version", "label"))


def named_sessions(
    doc_id: str, before: int | None = None, limit: int = PAGE_DEFAULT
) -> tuple[list[Session], int | None]:
    """Only named versions, newest first; each sums the changes since the named one
    before it."""
    query = NamedVersion.objects.filter(document_id=doc_id).order_by("-version")
    if before is not None:
        query = query.filter(version__lt=before)
    named = list(query[: limit + 1])
    more = len(named) > limit
    named = named[:limit]
    result: list[Session] = []
    for i, item in enumerate(named):
        after = named[i + 1].version if i + 1 < len(named) else 0
        if i + 1 == len(named) and more:
            after = query.filter(version__lt=item.version).values_list("version", flat=True)[0]
        updates = DocumentUpdate.objects.filter(
            document_id=doc_id, seq__gt=after, seq__lte=item.version
        )
        totals = updates.aggregate(inserted=Sum("inserted"), deleted=Sum("deleted"))
        authors = list(
            dict.fromkeys(
                a or UNKNOWN_AUTHOR
                for a in updates.order_by("-seq").values_list("author", flat=True)[:500]
            )
        )
        time = (
            updates.filter(seq=item.version).values_list("created_at", flat=True).first()
            or item.created_at
        )
        result.append(
            Session(
                item.version,
                after + 1,
                time,
                authors,
                totals["inserted"] or 0,
                totals["deleted"] or 0,
                item.label,
            )
        )
    return result, (named[-1].version if more and named else None)


def latest_version(doc_id: str) -> int:
    version = Document.objects.filter(pk=doc_id).values_list("version", flat=True).first()
    if version is None:
        raise UnknownVersion("No document has this id.")
    return version


def text_at(doc_id: str, version: int) -> str:
    """The text of the document at `version`: the newest snapshot at or before it, plus
    the updates after that snapshot up to `version`."""
    with transaction.atomic():
        latest = latest_version(doc_id)
        if not 0 <= version <= latest:
            raise UnknownVersion(f"This document has versions 0 to {latest}, not {version}.")
        snap = (
            DocumentSnapshot.objects.filter(document_id=doc_id, version__lte=version)
            .order_by("-version")
            .first()
        )
        since = snap.version if snap else 0
        rows = DocumentUpdate.objects.filter(
            document_id=doc_id, seq__gt=since, seq__lte=version
        ).order_by("seq")
        data = [bytes(d) for d in rows.values_list("data", flat=True)]
    if len(data) != version - since:
        raise UnknownVersion(f"The log no longer reaches back to version {version}.")
    updates = ([bytes(snap.data)] if snap else []) + data
    _doc, ytext = new_doc([merge_updates(*updates)] if len(updates) > 1 else updates)
    return str(ytext)


def clean_label(value: object) -> str:
    """A version's name: printable, one line, 1 to LABEL_MAX characters."""
    if not isinstance(value, str):
        raise BadLabel('"label" must be a string.')
    label = "".join(c for c in value[: LABEL_MAX * 4] if unicodedata.category(c)[0] != "C")
    label = " ".join(label.split())
    if not label:
        raise BadLabel('"label" must not be empty.')
    if len(label) > LABEL_MAX:
        raise BadLabel(f'"label" is longer than {LABEL_MAX} characters.')
    return label


def label_of(doc_id: str, version: int) -> str | None:
    """The name of `version`, if it has one."""
    return (
        NamedVersion.objects.filter(document_id=doc_id, version=version)
        .values_list("label", flat=True)
        .first()
    )


def name_version(doc_id: str, version: int, label: str, author: str = "") -> NamedVersion:
    """Name `version` (naming it again renames it)."""
    named, _ = NamedVersion.objects.update_or_create(
        document_id=doc_id, version=version, defaults={"label": label, "author": author}
    )
    return named
