"""collab/storage_errors.py: a storage failure said plainly, and not once per retry."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from django.db import OperationalError

from collab import storage_errors


def _wrapped(message: str) -> OperationalError:
    """A Django database error caused by a driver's, as Django raises them."""
    try:
        try:
            raise sqlite3.OperationalError(message)
        except sqlite3.OperationalError as cause:
            raise OperationalError(message) from cause
    except OperationalError as error:
        return error


@pytest.mark.parametrize(
    ("message", "meaning"),
    [
        ("database or disk is full", "the disk is full"),
        ('could not extend file "base/1/2": No space left on device', "the disk is full"),
        ("attempt to write a readonly database", "the database is read-only"),
        ("cannot execute INSERT in a read-only transaction", "the database is read-only"),
        ("disk I/O error", "a disk I/O error"),
        ("unable to open database file", "the database file cannot be opened"),
        ("connection refused", "the database is unreachable"),
        ("UNIQUE constraint failed: collab_documentupdate.seq", "a database error"),
    ],
)
def test_describe_names_the_cause(message: str, meaning: str) -> None:
    assert storage_errors.describe(_wrapped(message)) == meaning


def test_report_says_it_once_per_interval_with_how_many_were_left_out(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(storage_errors.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(storage_errors, "_last", {})
    log = logging.getLogger("tandem.test")
    full = _wrapped("database or disk is full")
    with caplog.at_level(logging.ERROR, logger="tandem.test"):
        for _ in range(50):
            storage_errors.report(log, "document d1", "could not save", full)
        storage_errors.report(log, "document d2", "could not save", full)  # another subject
        now[0] += storage_errors.REPEAT_SECONDS
        storage_errors.report(log, "document d1", "could not save", full)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0].startswith("document d1: could not save: the disk is full (OperationalError")
    assert "Nothing unsaved was acknowledged" in lines[0]
    assert lines[1].startswith("document d2: ")
    assert "49 more like it since the last report" in lines[2]
    assert all(r.exc_info is None for r in caplog.records)  # no traceback per retry
