"""The sync engine of one document: sync requests in, answers and CRDT updates out.

No Channels, no Django, no asyncio, no I/O (the shape of h11): the room adapter feeds it
parsed messages, persists the `StoredUpdate` it returns, then sends the `Answer`. It is
not thread-safe: call it from one thread at a time (the room's lock or event loop).

How it works (docs/sync.md has the full story):

- The room's authoritative pycrdt Doc is built from the log; the whole log stays in
  memory (seq 1..version), so a replica at any version can be rebuilt from it.
- Each session (one connection) has a *replica*: its own Doc and writer id, holding
  exactly the text that editor holds as its shadow, at a version of the log, plus an
  UndoManager that tracks only that replica's own transactions (per-editor undo).
- A request is applied to the replica first (its ops, then an undo/redo), the replica
  is brought up to the room, and the size limits are checked; only then is the room
  changed, by merging that one complete update. So a request that fails leaves the room
  as it was, and the replica, which may hold half of it, is thrown away.
- The answer is the UTF-16 delta from the text the client sent (shadow + ops) to the
  replica's new text, composed from the replica's text events (undo/redo, catch-up).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from pycrdt import Text, UndoManager, merge_updates

from collab.crdt import TEXT_KEY, new_doc
from collab.delta import Delta, DeltaError, apply, check_insert, compose, diff, validate
from collab.log import DocumentLog, StoredUpdate
from collab.offsets import Converted, TrackedText, utf8_to_utf16, utf16_to_utf8

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # UTF-8 size of the whole text
MAX_INSERT_BYTES = 4 * 1024 * 1024  # UTF-8 size inserted by one request
CAPTURE_TIMEOUT_MS = 500  # one editor's changes this close together undo as one
MAX_COUNTER = 2**53 - 1  # rid and base must stay exact in JavaScript
ACTIONS = ("", "undo", "redo")
# Catch-up merges at most this many log updates into one (merge_updates grows faster than
# linearly); a replica further behind than this takes the room's diff instead.
MERGE_BATCH = 100
# The engine remembers the text at each of this many recent versions and the UTF-16
# change that made it: an idle editor is brought up to date with the composed changes
# (a push), and a replica catching up to its editor's base takes the text from here,
# so neither computes pycrdt text events (which cost O(items before the change) each).
HISTORY_VERSIONS = 512
_CID = re.compile(r"[A-Za-z0-9_-]{8,64}")


class ProtocolError(Exception):
    """A request the engine refused; nothing was changed. `code` is the protocol's."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """A `sync` message of docs/protocol.md, validated in shape; its ops are checked
    against the text (positions) when it is handled."""

    cid: str
    rid: int
    base: int
    ops: list[dict[str, Any]]
    action: str = ""
    sel: tuple[int, int] | None = None

    @classmethod
    def parse(cls, message: object) -> SyncRequest:
        """Raises ProtocolError("bad_request") naming the first thing that is wrong."""
        if not isinstance(message, dict):
            raise _bad("a message must be a JSON object")
        if message.get("type") != "sync":
            raise _bad('"type" must be "sync"')
        cid = message.get("cid")
        if not isinstance(cid, str) or not _CID.fullmatch(cid):
            raise _bad('"cid" must be 8-64 characters of A-Z a-z 0-9 _ -')
        rid = _counter(message, "rid", 1)
        base = _counter(message, "base", 0)
        try:
            ops = validate(message.get("ops", []))
        except DeltaError as exc:
            raise _bad(f'"ops": {exc}') from exc
        action = message.get("action", "")
        if action not in ACTIONS:
            raise _bad('"action" must be "", "undo" or "redo"')
        return cls(cid, rid, base, ops, action, _selection(message.get("sel")))


def _bad(message: str) -> ProtocolError:
    return ProtocolError("bad_request", message)


def _counter(message: dict[str, Any], key: str, lowest: int) -> int:
    value = message.get(key)
    if type(value) is not int or not lowest <= value <= MAX_COUNTER:
        raise _bad(f'"{key}" must be an integer from {lowest} to 2**53-1')
    return value


def _selection(sel: object) -> tuple[int, int] | None:
    if sel is None:
        return None
    if (
        not isinstance(sel, list)
        or len(sel) != 2
        or any(type(v) is not int or not 0 <= v <= MAX_COUNTER for v in sel)
    ):
        raise _bad('"sel" must be [start, end], two integers >= 0')
    return sel[0], sel[1]


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to a sync request: `delta` turns the text the client sent into the
    document at `version` (undo/redo and everyone else's changes included)."""

    rid: int
    version: int
    delta: list[dict[str, Any]]

    def to_message(self) -> dict[str, Any]:
        return {"type": "ack", "rid": self.rid, "version": self.version, "delta": self.delta}


# ---------------------------------------------------------------- replicas


def _merged(updates: Sequence[bytes]) -> bytes:
    return updates[0] if len(updates) == 1 else merge_updates(*updates)


def _apply_utf8(ytext: Text, ops: Delta) -> None:
    """Apply a UTF-8 byte delta to a pycrdt Text (inside the caller's transaction)."""
    pos = 0
    for op in ops:
        if "retain" in op:
            pos += op["retain"]
        elif "delete" in op:
            del ytext[pos : pos + op["delete"]]
        else:
            ytext.insert(pos, op["insert"])
            pos += len(op["insert"].encode("utf-8"))


class _Replica:
    """One editor's mirror: a Doc equal to a prefix of the log (after every answer), the
    same text as that editor's shadow, and an undo manager for its own changes only."""

    __slots__ = ("doc", "origin", "text", "undo", "version", "ytext")

    def __init__(
        self,
        updates: Iterable[bytes],
        version: int,
        text: TrackedText | None,
        timestamp: Callable[[], int],
    ) -> None:
        self.doc, self.ytext = new_doc(updates)
        self.version = version
        self.text = text if text is not None else TrackedText.of(str(self.ytext))
        self.origin = ("tandem-editor", self.doc.client_id)
        self.undo = UndoManager(
            scopes=[self.ytext], capture_timeout_millis=CAPTURE_TIMEOUT_MS, timestamp=timestamp
        )
        self.undo.include_origin(self.origin)

    def edit(self, ops: Converted, action: str) -> tuple[bytes | None, Delta]:
        """Apply the client's ops (one transaction, this editor's origin), then its undo or
        redo. Returns the one update holding all of it (None if nothing changed) and the
        UTF-16 delta of the undo/redo (relative to the text with the ops applied)."""
        captured: list[bytes] = []
        subscription = self.doc.observe(lambda event: captured.append(event.update))
        try:
            if ops.delta:
                # No text observer here: we know the result, and pycrdt computes an event's
                # delta by walking the text from its start.
                with self.doc.transaction(origin=self.origin):
                    _apply_utf8(self.ytext, ops.delta)
                self.text = ops.text
            done: Delta = []
            if action == "undo":
                done = self.follow(self.undo.undo)
            elif action == "redo":
                done = self.follow(self.undo.redo)
        finally:
            self.doc.unobserve(subscription)
        return (_merged(captured) if captured else None), done

    def follow(self, change: Callable[[], object]) -> Delta:
        """Run `change` (an undo, a redo, an applied update), keep the shadow in step with
        the text events it causes, and return their effect as one UTF-16 delta."""
        events: list[Delta] = []
        # The event's delta is only valid during the callback: copy it out there.
        subscription = self.ytext.observe(lambda event: events.append(event.delta))  # type: ignore[attr-defined]
        try:
            change()
        finally:
            self.ytext.unobserve(subscription)
        result: Delta = []
        for raw in events:
            converted = utf8_to_utf16(self.text, raw)
            self.text = converted.text
            result = compose(result, converted.delta) if result else converted.delta
        return result

    def advance(self, updates: Sequence[bytes], text: TrackedText) -> None:
        """Apply updates whose resulting text is known (`text`): no text events needed."""
        for i in range(0, len(updates), MERGE_BATCH):
            self.doc.apply_update(_merged(updates[i : i + MERGE_BATCH]))
        self.text = text

    def apply(self, updates: Sequence[bytes]) -> Delta:
        """Apply updates (merged into few: pycrdt's merge slows down on long runs) and
        return the text's change."""
        result: Delta = []
        for i in range(0, len(updates), MERGE_BATCH):
            change = self.follow(
                partial(self.doc.apply_update, _merged(updates[i : i + MERGE_BATCH]))
            )
            result = compose(result, change) if result else change
        return result


# ---------------------------------------------------------------- the engine


class DocumentEngine:
    """The sync engine of one document (see the module docstring and docs/sync.md)."""

    def __init__(self, log: DocumentLog, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._updates: list[StoredUpdate] = list(log.updates)
        self._first = self._check_log(log)  # the oldest version a replica can be built at
        self._snapshot = (log.snapshot_version, log.snapshot) if log.snapshot is not None else None
        self._room = log.build()
        self._ytext = self._room.get(TEXT_KEY, type=Text)
        self._text = TrackedText.of(str(self._ytext))
        # Recent history (HISTORY_VERSIONS): the text at each version, and the change
        # (UTF-16 delta) from the version before, where the engine saw it happen.
        self._texts: dict[int, TrackedText] = {self.version: self._text}
        self._changes: dict[int, Delta] = {}
        self._clock = clock
        self._replicas: dict[Hashable, _Replica] = {}
        # Per page load (cid): the last rid seen and the seq its update was stored at.
        self._requests: dict[str, tuple[int, int | None]] = {}
        for update in self._updates:
            if update.client_key and update.request_id is not None:
                known = self._requests.get(update.client_key)
                if known is None or known[0] < update.request_id:
                    self._requests[update.client_key] = (update.request_id, update.seq)

    @staticmethod
    def _check_log(log: DocumentLog) -> int:
        first = log.updates[0].seq - 1 if log.updates else log.snapshot_version
        if first and (log.snapshot is None or log.snapshot_version != first):
            raise ValueError("the log must start at seq 1 or right after its snapshot")
        for i, update in enumerate(log.updates):
            if update.seq != first + i + 1:
                raise ValueError(f"the log skips from seq {first + i} to {update.seq}")
        return first

    # ------------------------------------------------------------ reading

    @property
    def version(self) -> int:
        """The seq of the newest update (0 for an empty document)."""
        return self._first + len(self._updates)

    @property
    def text(self) -> str:
        """The current text (cached until the next change)."""
        return self._text.text

    @property
    def oldest_base(self) -> int:
        """The oldest version a client may sync from (0 unless the log was cut)."""
        return self._first

    def changes(self, after: int, upto: int) -> Delta | None:
        """The UTF-16 delta from the text at version `after` to the text at `upto`, or None
        when that is no longer (or was never) in the recent history."""
        if not self._first <= after <= upto <= self.version:
            return None
        result: Delta = []
        for version in range(after + 1, upto + 1):
            change = self._changes.get(version)
            if change is None:
                return None
            result = compose(result, change) if result else change
        return result

    def session_version(self, session: Hashable) -> int | None:
        replica = self._replicas.get(session)
        return replica.version if replica is not None else None

    def encode_state(self) -> bytes:
        """The whole document state as one update (for a snapshot)."""
        return self._room.get_update()

    def drop_session(self, session: Hashable) -> None:
        self._replicas.pop(session, None)

    # ------------------------------------------------------------ syncing

    def handle(
        self, session: Hashable, request: SyncRequest, author: str = ""
    ) -> tuple[Answer, StoredUpdate | None]:
        """Apply one sync request of `session` and answer it. Persist the returned update
        (if any) before sending the answer. Raises ProtocolError, changing nothing."""
        if not self._first <= request.base <= self.version:
            raise ProtocolError(
                "bad_base",
                f"version {request.base} is not between {self._first} and {self.version}",
            )
        last = self._requests.get(request.cid)
        if last is not None and request.rid < last[0]:
            raise ProtocolError("stale", f"rid {request.rid} is older than {last[0]}")
        if last is not None and request.rid == last[0]:
            return self._replay(session, request, last[1]), None
        return self._apply(session, request, author)

    def _apply(
        self, session: Hashable, request: SyncRequest, author: str
    ) -> tuple[Answer, StoredUpdate | None]:
        replica = self._replica_at(session, request.base)
        sent = self._convert(replica, request)
        if sent.inserted_utf8 > MAX_INSERT_BYTES:
            raise ProtocolError("too_large", "one request may insert at most 4 MiB")
        self._check_size(self._text.utf8_len + sent.text.utf8_len - replica.text.utf8_len)
        try:
            own, done = replica.edit(sent, request.action)
            caught_up = replica.apply(self._missing(replica, request.base))
            self._check_size(replica.text.utf8_len)  # exact: the replica is the room-to-be
        except BaseException:
            self._forget(session, replica)  # it may hold changes the room never got
            raise
        # Everything that could fail has run: only now does the room change.
        stored = None
        if own is not None:
            if request.base == self.version:
                # The editor was up to date: its ops and undo/redo are the room's change.
                self._room.apply_update(own)
                change = compose(request.ops, done)
            else:
                change = self._apply_observed(own)
            stored = StoredUpdate(self.version + 1, own, request.cid, request.rid, author)
            self._updates.append(stored)
            self._record(replica.text, change)
        self._requests[request.cid] = (request.rid, stored.seq if stored else None)
        self._install(session, replica)
        answer = compose(done, caught_up) if done else caught_up
        return Answer(request.rid, self.version, answer), stored

    def _replay(self, session: Hashable, request: SyncRequest, seq: int | None) -> Answer:
        """A request seen before (its answer was lost): answer it from what it stored.

        The replica becomes the prefix at `base` plus the stored update; the answer turns
        the text the client sent into the current text."""
        replica = self._replica_at(session, request.base)
        sent = self._convert(replica, request)
        try:
            if seq is not None and seq > request.base:
                replica.apply([self._update(seq).data])
            # Equal unless the request also undid or redid something.
            before, after = sent.text.text, replica.text.text
            fix = [] if before == after else diff(before, after)
            caught_up = replica.apply(self._missing(replica, request.base, skip=seq))
        except BaseException:
            self._forget(session, replica)
            raise
        self._install(session, replica)
        return Answer(request.rid, self.version, compose(fix, caught_up) if fix else caught_up)

    def replace_text(self, text: str, author: str = "") -> StoredUpdate | None:
        """Make the document hold `text` (the HTTP API's "replace text"), as one change made
        with a small diff, so live editors' concurrent edits merge instead of being
        overwritten. CR and CRLF become LF. Returns the update to persist, or None if the
        text is unchanged."""
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        try:
            check_insert(text)
        except DeltaError as exc:
            raise _bad(str(exc)) from exc
        if text == self.text:
            return None
        change16 = diff(self.text, text)
        change = utf16_to_utf8(self._text, change16)
        self._check_size(change.text.utf8_len)
        scratch, ytext = new_doc([self._room.get_update()])
        captured: list[bytes] = []
        subscription = scratch.observe(lambda event: captured.append(event.update))
        with scratch.transaction(origin="tandem-replace-text"):
            _apply_utf8(ytext, change.delta)
        scratch.unobserve(subscription)
        update = _merged(captured)
        self._room.apply_update(update)
        stored = StoredUpdate(self.version + 1, update, "", None, author)
        self._updates.append(stored)
        self._record(change.text, change16)
        return stored

    def verify(self) -> None:
        """Check the cached texts against the Docs, and the history against itself
        (O(document) per replica and version: for tests)."""
        if str(self._ytext) != self._text.text:
            raise RuntimeError("the room's cached text is out of step with its Doc")
        if self._texts.get(self.version) is not self._text:
            raise RuntimeError("the history does not end at the current text")
        for version, change in self._changes.items():
            before = self._texts.get(version - 1)
            if before is not None and apply(before.text, change) != self._texts[version].text:
                raise RuntimeError(f"the recorded change to version {version} is wrong")
        for session, replica in self._replicas.items():
            if str(replica.ytext) != replica.text.text:
                raise RuntimeError(f"the shadow of session {session!r} is out of step")

    # ------------------------------------------------------------ helpers

    def _apply_observed(self, update: bytes) -> Delta:
        """Apply `update` to the room and return its change to the text, in UTF-16."""
        events: list[Delta] = []
        subscription = self._ytext.observe(lambda event: events.append(event.delta))  # type: ignore[attr-defined]
        try:
            self._room.apply_update(update)
        finally:
            self._ytext.unobserve(subscription)
        text = self._text
        result: Delta = []
        for raw in events:
            converted = utf8_to_utf16(text, raw)
            text = converted.text
            result = compose(result, converted.delta) if result else converted.delta
        return result

    def _record(self, text: TrackedText, change: Delta) -> None:
        """The room's text moved to `text` by `change` (the new version's entry)."""
        self._text = text
        self._texts[self.version] = text
        self._changes[self.version] = change
        self._texts.pop(self.version - HISTORY_VERSIONS, None)
        self._changes.pop(self.version - HISTORY_VERSIONS, None)

    def _convert(self, replica: _Replica, request: SyncRequest) -> Converted:
        try:
            return utf16_to_utf8(replica.text, request.ops)
        except DeltaError as exc:
            raise _bad(f"ops do not fit the text at version {request.base}: {exc}") from exc

    @staticmethod
    def _check_size(utf8_len: int) -> None:
        if utf8_len > MAX_DOCUMENT_BYTES:
            raise ProtocolError("too_large", "a document may hold at most 16 MiB of text")

    def _timestamp(self) -> int:
        return int(self._clock() * 1000)

    def _update(self, seq: int) -> StoredUpdate:
        return self._updates[seq - 1 - self._first]

    def _range(self, after: int, upto: int) -> list[StoredUpdate]:
        """The updates with after < seq <= upto."""
        return self._updates[after - self._first : upto - self._first]

    def _data(self, after: int, upto: int) -> list[bytes]:
        return [u.data for u in self._range(after, upto)]

    def _missing(self, replica: _Replica, base: int, skip: int | None = None) -> list[bytes]:
        """What the room has that `replica` (the log up to `base`, plus perhaps one update
        of its own or update `skip`) lacks: the log's tail, or the room's diff when long."""
        if self.version - base > MERGE_BATCH:
            return [self._room.get_update(replica.doc.get_state())]
        return [u.data for u in self._range(base, self.version) if u.seq != skip]

    def _replica_at(self, session: Hashable, base: int) -> _Replica:
        """The session's replica moved to `base`, or a new one built there (not installed
        until the request succeeds)."""
        replica = self._replicas.get(session)
        if replica is not None and replica.version <= base:
            # Still a prefix of the log: catching up keeps its undo history.
            try:
                known = self._texts.get(base)
                if known is not None:
                    replica.advance(self._data(replica.version, base), known)
                else:
                    replica.apply(self._data(replica.version, base))
            except BaseException:
                self._forget(session, replica)
                raise
            replica.version = base
            return replica
        if base == self.version:  # the usual case: copy the room
            return _Replica([self._room.get_update()], base, self._text, self._timestamp)
        return _Replica(self._prefix(base), base, None, self._timestamp)

    def _prefix(self, base: int) -> list[bytes]:
        """Updates that build the document as of `base`."""
        if self._snapshot is not None and self._snapshot[0] <= base:
            version, data = self._snapshot
            return [data, *self._data(version, base)]
        return self._data(self._first, base)

    def _install(self, session: Hashable, replica: _Replica) -> None:
        replica.version = self.version
        self._replicas[session] = replica

    def _forget(self, session: Hashable, replica: _Replica) -> None:
        if self._replicas.get(session) is replica:
            del self._replicas[session]
