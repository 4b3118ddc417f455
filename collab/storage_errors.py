"""What a storage failure means, said plainly and once in a while, not as a traceback
every time an editor's request is asked again.

During a storage outage (a full disk, a read-only or unreachable database) every write
fails, and so does every claim of a document (the lease is a row): each editor's request
is asked again of a fresh room up to collab/host.MAX_TRIES times, and again after the
editor reconnects. The log gets one line per document (or subject) and kind of failure every
REPEAT_SECONDS, with how many were left out, and says that nothing is lost: nothing
unsaved was acknowledged, and the editors resend.
"""

from __future__ import annotations

import logging
import math
import time

REPEAT_SECONDS = 10.0
_MAX_REMEMBERED = 1000

# Substrings of SQLite's and PostgreSQL's messages (lower case), and what they mean.
_KINDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("database or disk is full", "no space left on device", "could not extend file"),
        "the disk is full",
    ),
    (
        ("readonly database", "read-only file system", "read-only transaction"),
        "the database is read-only",
    ),
    (("disk i/o error", "input/output error"), "a disk I/O error"),
    (("unable to open database file",), "the database file cannot be opened"),
    (
        ("could not connect", "connection refused", "server closed the connection"),
        "the database is unreachable",
    ),
)

_last: dict[tuple[str, str], tuple[float, int]] = {}  # (subject, meaning) -> (at, left out)


def describe(error: BaseException) -> str:
    """What `error` (a database error, or one caused by it) means for the owner."""
    text = " ".join(f"{type(e).__name__}: {e}" for e in _chain(error)).lower()
    for needles, meaning in _KINDS:
        if any(needle in text for needle in needles):
            return meaning
    return "a database error"


def _chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 5:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def report(log: logging.Logger, subject: str, action: str, error: BaseException) -> None:
    """Log that `action` failed for `subject` ("document <id>", "leases") because of
    `error`: at most once per REPEAT_SECONDS for one subject and meaning."""
    meaning = describe(error)
    key = (subject, meaning)
    now = time.monotonic()
    logged_at, left_out = _last.get(key, (-math.inf, 0))
    if now - logged_at < REPEAT_SECONDS:
        _last[key] = (logged_at, left_out + 1)
        return
    if len(_last) >= _MAX_REMEMBERED:
        _last.clear()
    _last[key] = (now, 0)
    more = f"; {left_out} more like it since the last report" if left_out else ""
    log.error(
        "%s: %s: %s (%s: %s)%s. Nothing unsaved was acknowledged: editors keep their "
        "edits and send them again until they are saved.",
        subject,
        action,
        meaning,
        type(error).__name__,
        str(error).strip() or "no message",
        more,
    )


def editor_notice(meaning: str) -> str:
    """What an editor's page says while its edits cannot be saved."""
    return (
        f"Not saved yet: the server cannot save right now ({meaning}). Your edits are kept "
        "in this page and sent again until they are saved."
    )
