"""The sync engine of one document: sync requests in, answers and CRDT updates out.

No Channels, no Django, no asyncio, no I/O (the shape of h11): the room adapter feeds it
parsed messages, persists the `StoredUpdate` it returns, then sends the `Answer`. It is
not thread-safe: call it from one thread at a time (the room's lock or event loop).

How it works (docs/sync.md has the full story):

- The room's authoritative pycrdt Doc is built from the log; the whole log stays in
  memory (seq 1..version), so the document at any version can be rebuilt from it.
- The engine remembers the text at each recent version and the UTF-16 change that made
  it (HISTORY_VERSIONS). A request whose base is that recent (nearly all of them) is
  rebased with operational transformation: its ops are transformed past the changes
  since its base and applied to the room's Doc, and the answer is those changes
  transformed past its ops. No text events, no per-editor Doc: the cost of a keystroke
  does not grow with the number of editors or with how far the document has moved.
- A request from an older base (an editor that was offline for a long time) is merged
  by the CRDT instead: its ops are made on a scratch Doc built at its base, and that
  update is merged into the room, as Yjs merges any offline edit.
- Each session (a page load) has an UndoManager on the room's Doc that tracks only the
  transactions made under its origin: per-editor undo, through everyone else's edits.
- Everything that can be refused (shape, positions, sizes) is checked before the room's
  Doc changes, so a request that fails changes nothing.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from pycrdt import Doc, Text, UndoManager, merge_updates

from collab.crdt import TEXT_KEY, new_doc
from collab.delta import (
    Delta,
    DeltaError,
    apply,
    check_insert,
    compose,
    counts,
    diff,
    normalize,
    transform,
)
from collab.log import DocumentLog, StoredUpdate
from collab.offsets import Converted, TrackedText, utf8_to_utf16, utf16_to_utf8
from collab.protocol import (
    MAX_DOCUMENT_BYTES,
    MAX_INSERT_BYTES,
    Answer,
    ProtocolError,
    SyncRequest,
    bad_request,
    too_old,
)

CAPTURE_TIMEOUT_MS = 500  # one editor's changes this close together undo as one
# The engine remembers the text at each of this many recent versions and the UTF-16
# change that made it: requests from those versions are rebased by transformation, and
# idle editors are brought up to date with the composed changes (a push). Neither needs
# pycrdt's text events, which cost O(items before the change) each (0.45 ms at the end
# of a 4 000-item text).
HISTORY_VERSIONS = 512
# A base older than the history is rebuilt by replaying the log from the newest
# checkpoint at or before it (the snapshot the room was loaded from, or one of the last
# CHECKPOINTS the sequencer wrote since) up to the version asked for. More updates than
# this and the request is refused with `too_old` (the client resyncs from the current
# text): what one request can cost stays bounded whatever the log's length.
MAX_REBUILD_UPDATES = 4096
CHECKPOINTS = 8


# ---------------------------------------------------------------- pycrdt helpers


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


@contextmanager
def _capture(doc: Doc, ytext: Text | None = None) -> Iterator[tuple[list[bytes], list[Delta]]]:
    """Collect the updates of `doc`'s transactions and, if `ytext` is given, its text
    events (UTF-8 deltas; pycrdt computes one by walking the text, so only when needed)."""
    updates: list[bytes] = []
    events: list[Delta] = []
    doc_sub = doc.observe(lambda event: updates.append(event.update))
    text_sub = None
    if ytext is not None:
        # An event's delta is only valid during the callback: copy it out there.
        text_sub = ytext.observe(lambda event: events.append(event.delta))  # type: ignore[attr-defined]
    try:
        yield updates, events
    finally:
        doc.unobserve(doc_sub)
        if ytext is not None and text_sub is not None:
            ytext.unobserve(text_sub)


def _utf16_events(text: TrackedText, events: Sequence[Delta]) -> tuple[TrackedText, Delta]:
    """Text events (UTF-8 offsets, one after another) as one UTF-16 delta on `text`,
    and the text after them."""
    result: Delta = []
    for raw in events:
        converted = utf8_to_utf16(text, raw)
        text = converted.text
        result = compose(result, converted.delta) if result else converted.delta
    return text, result


Rebuilt = tuple[TrackedText, Delta]  # the text at `after`, and the change to `upto`


@dataclass(frozen=True, slots=True)
class RebuildJob:
    """Rebuilding the text at `after` and the change from it to `upto`, from the log: plain
    data (immutable bytes), so any thread may run it (it builds its own scratch Doc)."""

    after: int
    upto: int
    prefix: tuple[bytes, ...]  # builds the document as of `after`
    updates: tuple[bytes, ...]  # after < seq <= upto

    def run(self) -> Rebuilt:
        """Exact: the scratch Doc's text event for the updates since `after` is the change.
        The updates are applied one by one inside one transaction (one event), not merged
        first: merge_updates and a merged apply are each one long call into pycrdt that
        holds the GIL (57 ms for 4,000 updates), many short calls let other threads run."""
        scratch, ytext = new_doc(self.prefix)
        before = TrackedText.of(str(ytext))
        if not self.updates:
            return before, []
        with _capture(scratch, ytext) as (_, events), scratch.transaction():
            for update in self.updates:
                scratch.apply_update(update)
        return before, _utf16_events(before, events)[1]


class NeedsRebuild(Exception):
    """`handle(..., offload=...)` needs `job` run first (in another thread); nothing was
    changed. Hand the result back in `offload` and call `handle` again."""

    def __init__(self, job: RebuildJob) -> None:
        super().__init__(f"rebuild {job.after}..{job.upto}")
        self.job = job


@dataclass(slots=True)
class _UndoClock:
    """The undo managers' clock (ms), with a skew added (see replace_text). Its own object:
    an undo manager (Rust) holding a bound method of the engine made a reference cycle
    the garbage collector cannot see through, so no engine was ever freed after its
    room unloaded (found by bench/soak.py)."""

    clock: Callable[[], float]
    skew_ms: int = 0

    def now(self) -> int:
        return int(self.clock() * 1000) + self.skew_ms


@dataclass(slots=True)
class _Session:
    """One page load's identity in the room's Doc: the origin of its transactions, and
    an undo manager that tracks only those."""

    origin: tuple[str, int]
    undo: UndoManager


@dataclass(slots=True)
class _Change:
    """A request's effect so far: the room's new text, the change to it (UTF-16, on the
    text before), the answer (UTF-16, on the text the client sent) and the updates."""

    text: TrackedText
    change: Delta
    answer: Delta
    updates: list[bytes]


# ---------------------------------------------------------------- the engine


class DocumentEngine:
    """The sync engine of one document (see the module docstring and docs/sync.md)."""

    def __init__(self, log: DocumentLog, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._updates: list[StoredUpdate] = list(log.updates)
        self._first = self._check_log(log)  # the oldest version a client may sync from
        # (version, state) to rebuild old bases from: the snapshot loaded, then the newest
        # CHECKPOINTS of those written since (remember_checkpoint), oldest first.
        self._loaded: tuple[int, bytes] | None = (
            (log.snapshot_version, log.snapshot) if log.snapshot is not None else None
        )
        self._checkpoints: list[tuple[int, bytes]] = []
        # Rebuilds done elsewhere for the request being handled: after -> (upto, result).
        self._offload: dict[tuple[int, int], Rebuilt] | None = None
        self._room = log.build()
        self._ytext = self._room.get(TEXT_KEY, type=Text)
        self._text = TrackedText.of(str(self._ytext))
        self._undo_clock = _UndoClock(clock)
        # Recent history (HISTORY_VERSIONS): the text at each version, and the change
        # (UTF-16 delta) from the version before.
        self._texts: dict[int, TrackedText] = {self.version: self._text}
        self._changes: dict[int, Delta] = {}
        # changes(after, upto) composed so far: forwards, by `after` -> (upto, delta); and
        # backwards, by `after`, all for one `upto`.
        self._forward: dict[int, tuple[int, Delta]] = {}
        self._suffix_end = -1
        self._suffixes: dict[int, Delta] = {}
        self._sessions: dict[Hashable, _Session] = {}
        self._origins = itertools.count(1)
        self._broken = False
        # Per page load (cid): the last rid seen and the seq its update was stored at; and
        # the last answer given (rid, version, delta), to answer a resend of it again.
        self._requests: dict[str, tuple[int, int | None]] = {}
        self._answers: dict[str, tuple[int, int, Delta]] = {}
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
        when that is no longer (or was never) in the recent history.

        Compositions are kept, both ways: forwards by `after` (a base that requests keep
        coming from while the document moves on: one more change to compose each time),
        and backwards for one `upto` (a tick's answers and pushes, from many versions to
        the same one: each change composed once per tick, not once per editor)."""
        if not self._first <= after <= upto <= self.version:
            return None
        if after == upto:
            return []
        if after + 1 not in self._changes:
            return None  # the history is contiguous: all of it is there, or this is not
        ahead = self._forward.get(after)
        if ahead is not None and ahead[0] <= upto:
            end, result = ahead
            for version in range(end + 1, upto + 1):
                result = compose(result, self._changes[version])
            self._forward[after] = (upto, result)
            return result
        if self._suffix_end != upto:
            self._suffix_end, self._suffixes = upto, {}
        known = self._suffixes.get(after)
        if known is None:
            known = self._compose_back(after, upto)
        self._forward[after] = (upto, known)
        return known

    def _compose_back(self, after: int, upto: int) -> Delta:
        top = after + 1
        while top < upto and top not in self._suffixes:
            top += 1
        suffix = self._suffixes.get(top, [])
        for version in range(top, after, -1):
            suffix = compose(self._changes[version], suffix) if suffix else self._changes[version]
            self._suffixes[version - 1] = suffix
        return suffix

    def length_at(self, version: int) -> int | None:
        """The length (UTF-16 units) of the text at a recent `version`, else None."""
        text = self._texts.get(version)
        return None if text is None else text.utf16_len

    def has_session(self, session: Hashable) -> bool:
        """Whether `session` has changed the document (and so has an undo history)."""
        return session in self._sessions

    def encode_state(self) -> bytes:
        """The whole document state as one update (for a snapshot)."""
        return self._room.get_update()

    def drop_session(self, session: Hashable, cid: str | None = None) -> None:
        """Forget a page load's undo history and last answer (it left for good)."""
        self._sessions.pop(session, None)
        if cid is not None:
            self._answers.pop(cid, None)

    # ------------------------------------------------------------ syncing

    def handle(
        self,
        session: Hashable,
        request: SyncRequest,
        author: str = "",
        offload: dict[tuple[int, int], Rebuilt] | None = None,
    ) -> tuple[Answer, StoredUpdate | None]:
        """Apply one sync request of `session` and answer it. Persist the returned update
        (if any) before sending the answer. Raises ProtocolError, changing nothing.

        With `offload` (a dict, empty at first) a base older than the history is not
        rebuilt here: NeedsRebuild is raised first, changing nothing; the caller runs its
        job elsewhere, stores `offload[job.after, job.upto] = job.run()` and calls again
        (the room does, so that rebuilds never run on the event loop)."""
        self._offload = offload
        try:
            return self._handle(session, request, author)
        finally:
            self._offload = None

    def _handle(
        self, session: Hashable, request: SyncRequest, author: str
    ) -> tuple[Answer, StoredUpdate | None]:
        if self._broken:
            raise RuntimeError("this engine failed during a change: reload it from the log")
        if not self._first <= request.base <= self.version:
            raise ProtocolError(
                "bad_base",
                f"version {request.base} is not between {self._first} and {self.version}",
            )
        last = self._requests.get(request.cid)
        if last is not None and request.rid < last[0]:
            raise ProtocolError("stale", f"rid {request.rid} is older than {last[0]}")
        if last is not None and request.rid == last[0]:
            return self._replay(request, last[1]), None
        return self._apply(session, request, author)

    def _apply(
        self, session: Hashable, request: SyncRequest, author: str
    ) -> tuple[Answer, StoredUpdate | None]:
        base_text, since = self._since(request.base)
        try:
            result = self._rebase(session, request, base_text, since)
            if request.action:
                self._undo_redo(session, request.action, result)
        except ProtocolError:
            raise  # refused before anything changed
        except BaseException:
            # A failure inside pycrdt (or a bug) after the room's Doc may have changed: the
            # Doc may now hold what the log does not. Refuse everything from now on; the
            # owner reloads the engine from what was persisted (the room does).
            self._broken = True
            raise
        stored = None
        if result.updates:
            stored = StoredUpdate(
                self.version + 1,
                _merged(result.updates),
                request.cid,
                request.rid,
                author,
                *counts(result.change),
            )
            self._updates.append(stored)
            self._record(result.text, result.change)
        self._requests[request.cid] = (request.rid, stored.seq if stored else None)
        self._answers[request.cid] = (request.rid, self.version, result.answer)
        return Answer(request.rid, self.version, result.answer), stored

    def _rebase(
        self, session: Hashable, request: SyncRequest, base_text: TrackedText, since: Delta
    ) -> _Change:
        """The ops, made on the text at `base`, transformed past what happened since (the
        client's text first where both insert at one place, as the client does with its
        own unsent edits) and applied to the room; the answer is what happened since,
        transformed past the ops."""
        self._convert(base_text, request)  # checks the ops against their base, and the size
        ops = normalize(request.ops)
        mine = transform(since, ops, False)  # the ops past what happened since; theirs first
        answer = transform(ops, since, True)  # what happened since, past the ops
        try:
            change = utf16_to_utf8(self._text, mine)
        except DeltaError as exc:  # cannot happen for ops that fit their base: a bug
            raise RuntimeError(f"a transformed delta does not fit the text: {exc}") from exc
        self._check_size(change.text.utf8_len)
        updates: list[bytes] = []
        if change.delta:
            origin = self._session(session).origin
            with _capture(self._room) as (updates, _), self._room.transaction(origin=origin):
                _apply_utf8(self._ytext, change.delta)
        return _Change(change.text, mine, answer, updates)

    def _undo_redo(self, session: Hashable, action: str, result: _Change) -> None:
        """Undo or redo this session's own last change, after its ops (`result` so far).
        One that would make the document too large is reverted at once."""
        state = self._sessions.get(session)
        if state is None:
            return  # it never changed anything
        undo, redo = state.undo.undo, state.undo.redo
        step, back = (undo, redo) if action == "undo" else (redo, undo)
        with _capture(self._room, self._ytext) as (updates, events):
            if step():
                text, _ = _utf16_events(result.text, events)
                if text.utf8_len > MAX_DOCUMENT_BYTES:
                    back()
        if not updates:
            return
        text, done = _utf16_events(result.text, events)
        result.text = text
        result.change = compose(result.change, done)
        result.answer = compose(result.answer, done)
        result.updates.extend(updates)

    def _replay(self, request: SyncRequest, seq: int | None) -> Answer:
        """A request seen before (its answer was lost): answer it again, brought up to
        date. Only after a reconnect, so it may cost more than a fresh request."""
        known = self._answers.get(request.cid)
        if known is not None and known[0] == request.rid:
            rest = self.changes(known[1], self.version)
            if rest is not None:
                return Answer(request.rid, self.version, compose(known[2], rest))
        # Not remembered (the engine was reloaded since): rebase the request again, exactly
        # as it was rebased then, against the same changes.
        sent = self._convert(self._text_at(request.base), request)
        ops = normalize(request.ops)
        if seq is None:  # it changed nothing: the ops only deleted what was gone already
            since = self._changes_between(request.base, self.version)
            return Answer(request.rid, self.version, transform(ops, since, True))
        if not request.action:
            before = self._changes_between(request.base, seq - 1)
            after = self._changes_between(seq, self.version)
            return Answer(request.rid, self.version, compose(transform(ops, before, True), after))
        # With an undo or redo (whose own effect is not stored apart from the ops'): the
        # difference of the two texts, which is right but may move unsent edits that
        # touch repeated text.
        return Answer(request.rid, self.version, diff(sent.text.text, self.text))

    def replace_text(
        self, text: str, author: str = "", session: Hashable | None = None
    ) -> StoredUpdate | None:
        """Make the document hold `text` (the HTTP API's "replace text"), as one change made
        with a small diff, so live editors' concurrent edits merge instead of being
        overwritten. CR and CRLF become LF. Returns the update to persist, or None if the
        text is unchanged. With `session` (a restore from an editor's page) the change is
        made under that session's origin, so its own undo takes it back."""
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        try:
            check_insert(text)
        except DeltaError as exc:
            raise bad_request(str(exc)) from exc
        if text == self.text:
            return None
        change16 = diff(self.text, text)
        change = utf16_to_utf8(self._text, change16)
        self._check_size(change.text.utf8_len)
        origin = "tandem-replace-text" if session is None else self._session(session).origin
        # A restore is one undo step of its own: the undo clock jumps past the capture
        # timeout before and after it, so it merges neither with the typing just before
        # nor with what follows.
        self._undo_clock.skew_ms += CAPTURE_TIMEOUT_MS + 1
        with _capture(self._room) as (updates, _), self._room.transaction(origin=origin):
            _apply_utf8(self._ytext, change.delta)
        self._undo_clock.skew_ms += CAPTURE_TIMEOUT_MS + 1
        stored = StoredUpdate(
            self.version + 1, _merged(updates), "", None, author, *counts(change16)
        )
        self._updates.append(stored)
        self._record(change.text, change16)
        return stored

    def verify(self) -> None:
        """Check the cached text against the Doc, and the history against itself
        (O(document) per version: for tests)."""
        if str(self._ytext) != self._text.text:
            raise RuntimeError("the room's cached text is out of step with its Doc")
        if self._texts.get(self.version) is not self._text:
            raise RuntimeError("the history does not end at the current text")
        for version, change in self._changes.items():
            before = self._texts.get(version - 1)
            if before is not None and apply(before.text, change) != self._texts[version].text:
                raise RuntimeError(f"the recorded change to version {version} is wrong")

    # ------------------------------------------------------------ helpers

    def _session(self, session: Hashable) -> _Session:
        state = self._sessions.get(session)
        if state is None:
            undo = UndoManager(
                scopes=[self._ytext],
                capture_timeout_millis=CAPTURE_TIMEOUT_MS,
                timestamp=self._undo_clock.now,
            )
            state = _Session(("tandem-editor", next(self._origins)), undo)
            undo.include_origin(state.origin)
            self._sessions[session] = state
        return state

    def _record(self, text: TrackedText, change: Delta) -> None:
        """The room's text moved to `text` by `change` (the new version's entry)."""
        self._text = text
        self._texts[self.version] = text
        self._changes[self.version] = change
        oldest = self.version - HISTORY_VERSIONS
        self._texts.pop(oldest, None)
        self._changes.pop(oldest, None)
        if len(self._forward) > 2 * HISTORY_VERSIONS:  # amortized: pruned when doubled
            self._forward = {k: v for k, v in self._forward.items() if k >= oldest}

    def _since(self, base: int) -> tuple[TrackedText, Delta]:
        """The text at `base` and the change from it to the current text."""
        text = self._texts.get(base)
        since = self.changes(base, self.version) if text is not None else None
        if text is not None and since is not None:
            return text, since
        return self._rebuilt(base, self.version)

    def _changes_between(self, after: int, upto: int) -> Delta:
        known = self.changes(after, upto)
        return known if known is not None else self._rebuilt(after, upto)[1]

    def _text_at(self, version: int) -> TrackedText:
        known = self._texts.get(version)
        return known if known is not None else self._rebuilt(version, version)[0]

    def _rebuilt(self, after: int, upto: int) -> Rebuilt:
        """The text at `after` and the change to `upto`, for versions older than the
        history: a Doc built at `after` takes the updates up to `upto`, and its text event
        is that change, exactly (an editor back from a long time offline). Refused with
        `too_old` beyond MAX_REBUILD_UPDATES; in offload mode, NeedsRebuild unless it was
        done elsewhere (up to some version the recent history goes on from)."""
        if self._offload is not None:
            for (start, end), (text, change) in self._offload.items():
                rest = self.changes(end, upto) if start == after and end <= upto else None
                if rest is not None:
                    return text, compose(change, rest) if rest else change
        job = self.rebuild_job(after, upto)
        if self._offload is not None:
            raise NeedsRebuild(job)
        return job.run()

    def rebuild_job(self, after: int, upto: int) -> RebuildJob:
        """The job that rebuilds (after, upto); ProtocolError `too_old` if it would replay
        more than MAX_REBUILD_UPDATES updates."""
        start, prefix = self._prefix(after)
        if (after - start) + (upto - after) > MAX_REBUILD_UPDATES:
            raise too_old(after, self.version)
        return RebuildJob(after, upto, tuple(prefix), tuple(self._data(after, upto)))

    def remember_checkpoint(self, version: int, state: bytes) -> None:
        """The state at `version` (a snapshot just written): old bases near it are rebuilt
        from here instead of from further back."""
        if version > self._first and (not self._checkpoints or version > self._checkpoints[-1][0]):
            self._checkpoints = [*self._checkpoints[-(CHECKPOINTS - 1) :], (version, state)]

    @staticmethod
    def _convert(text: TrackedText, request: SyncRequest) -> Converted:
        """The request's ops on the text at its base, checked completely (positions,
        surrogate pairs, CR) and in UTF-8; also checks the size it inserts."""
        try:
            sent = utf16_to_utf8(text, request.ops)
        except DeltaError as exc:
            raise bad_request(f"ops do not fit the text at version {request.base}: {exc}") from exc
        if sent.inserted_utf8 > MAX_INSERT_BYTES:
            raise ProtocolError("too_large", "one request may insert at most 4 MiB")
        return sent

    @staticmethod
    def _check_size(utf8_len: int) -> None:
        if utf8_len > MAX_DOCUMENT_BYTES:
            raise ProtocolError("too_large", "a document may hold at most 16 MiB of text")

    def _data(self, after: int, upto: int) -> list[bytes]:
        """The updates with after < seq <= upto."""
        return [u.data for u in self._updates[after - self._first : upto - self._first]]

    def _prefix(self, base: int) -> tuple[int, list[bytes]]:
        """The version a rebuild of `base` starts from, and the updates that build the
        document as of `base` from there."""
        for version, data in reversed(
            [*([self._loaded] if self._loaded else []), *self._checkpoints]
        ):
            if version <= base:
                return version, [data, *self._data(version, base)]
        return self._first, self._data(self._first, base)
