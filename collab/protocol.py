"""Every wire message of Tandem, once: small typed classes with `parse` and `encode`.

Three conversations, each with its own section below:

- browser <-> consumer: JSON over the WebSocket (docs/protocol.md is the prose of it);
- consumer or API -> a document's room, wherever that room runs: calls and their replies
  over the channel layer (or a direct call when the room is in the same process);
- room -> the document's group: news every consumer forwards to its editor.

Plain Python (no Channels, no Django): the engine, the room and the consumer all import
it. Close codes and limits live here too; the editor page hands them to the browser
(`browser_constants`), so JavaScript keeps no copy of them.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from collab.delta import Delta, DeltaError, validate

# ---------------------------------------------------------------- limits and close codes

# The browser splits what it sends into requests of at most this many bytes of JSON: under
# 1 MiB, the frame limit of Daphne's default and of many proxies.
MAX_REQUEST_BYTES = 900_000
# The largest frame read from a browser. `serve` has Daphne (autobahn) refuse a bigger
# WebSocket frame while reading it (close 1009, nothing buffered beyond this); the consumer
# refuses a longer text before parsing it (close CLOSE_TOO_LARGE), which also covers a
# message sent in several frames. A frame of N characters has at least N bytes.
MAX_FRAME_BYTES = 1024 * 1024
MAX_INSERT_BYTES = 4 * 1024 * 1024  # UTF-8 size inserted by one request
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # UTF-8 size of the whole text
MAX_COUNTER = 2**53 - 1  # rid and base must stay exact in JavaScript
NAME_MAX = 40
DEFAULT_NAME = "Anonymous"
ACTIONS = ("", "undo", "redo")
_CID = re.compile(r"[A-Za-z0-9_-]{8,64}")

# Close codes. Daphne (autobahn) can only send 1000 and 3000-4999. htmx's extension never
# reconnects after 4xxx, so those are final; 3012 means "reconnect and resend", which the
# browser client does itself (the extension would not).
CLOSE_RETRY = 3012
CLOSE_BAD_REQUEST = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_LARGE = 4413  # a frame over MAX_FRAME_BYTES (no browser page sends one)
# More frames sent without waiting for answers than the one-in-flight rule allows
# (collab/flow.py): final, a client that keeps the rule never sees it. A client that
# stops reading is closed with CLOSE_RETRY instead: it reconnects and resyncs.
CLOSE_TOO_MANY = 4429

CLOSE_MESSAGES = {
    CLOSE_BAD_REQUEST: "The server refused this page (protocol error). "
    "Copy any unsaved text and reload.",
    # No access: no link, the links were reset, or a page of another site (Daphne drops
    # close reasons, so one message names every cause).
    CLOSE_FORBIDDEN: "No access to this document: its links were reset, or this page came "
    "from elsewhere. Ask the person who shared it for a new link.",
    CLOSE_NOT_FOUND: "This document was deleted.",
    CLOSE_TOO_LARGE: "The server refused a message that was too large. "
    "Copy any unsaved text and reload.",
    CLOSE_TOO_MANY: "This page sent more than the server accepts at once. "
    "Copy any unsaved text and reload.",
}


def browser_constants() -> dict[str, Any]:
    """What the browser client needs to know of this module (the page embeds it)."""
    return {
        "closeRetry": CLOSE_RETRY,
        "closeMessages": {str(code): text for code, text in CLOSE_MESSAGES.items()},
        "maxRequestBytes": MAX_REQUEST_BYTES,
        "nameMax": NAME_MAX,
    }


class ProtocolError(Exception):
    """A request that was refused; nothing was changed. `code` is the protocol's."""

    def __init__(self, code: str, message: str, rid: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.rid = rid  # the request's, when it had a readable one


class FrameRefused(Exception):
    """A frame after which the connection is closed with `code` (and `reason`)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def bad_request(message: str) -> ProtocolError:
    return ProtocolError("bad_request", message)


# The base is a version the document has, but so far behind that rebuilding the text
# there would cost more than one request may (collab/engine.py, MAX_REBUILD_UPDATES): the
# client fetches the current text and version and rebases what it has not sent onto it.
TOO_OLD = "too_old"


def too_old(base: int, version: int) -> ProtocolError:
    return ProtocolError(
        TOO_OLD,
        f"version {base} is too far behind {version} to rebase onto: resync from the current text",
    )


def _json(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


# ---------------------------------------------------------------- browser -> consumer


def clean_name(value: object) -> str:
    """A display name: printable, one line, at most NAME_MAX characters. Only a bounded
    prefix is looked at, so a megabyte of name costs what forty characters do."""
    if not isinstance(value, str):
        return DEFAULT_NAME
    head = value[: NAME_MAX * 8]
    name = "".join(c for c in head if unicodedata.category(c)[0] != "C")
    name = " ".join(name.split())[:NAME_MAX].strip()
    return name or DEFAULT_NAME


@dataclass(frozen=True, slots=True)
class Hello:
    """`{"type": "hello", "name": ...}`: the display name for presence."""

    name: str

    @classmethod
    def parse(cls, message: dict[str, Any]) -> Self:
        return cls(clean_name(message.get("name")))


def _counter(message: dict[str, Any], key: str, lowest: int) -> int:
    value = message.get(key)
    if type(value) is not int or not lowest <= value <= MAX_COUNTER:
        raise bad_request(f'"{key}" must be an integer from {lowest} to 2**53-1')
    return value


def _selection(sel: object) -> tuple[int, int] | None:
    if sel is None:
        return None
    if (
        not isinstance(sel, list | tuple)
        or len(sel) != 2
        or any(type(v) is not int or not 0 <= v <= MAX_COUNTER for v in sel)
    ):
        raise bad_request('"sel" must be [anchor, head], two integers >= 0')
    return sel[0], sel[1]


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """A `sync` message, validated in shape; its ops are checked against the text
    (positions) by the engine."""

    cid: str
    rid: int
    base: int
    ops: list[dict[str, Any]]
    action: str = ""
    # (anchor, head): the head is the end that moves, where the caret is drawn; a
    # backward selection has head < anchor.
    sel: tuple[int, int] | None = None

    @classmethod
    def parse(cls, message: object) -> SyncRequest:
        """Raises ProtocolError("bad_request") naming the first thing that is wrong."""
        if not isinstance(message, dict):
            raise bad_request("a message must be a JSON object")
        if message.get("type") != "sync":
            raise bad_request('"type" must be "sync"')
        cid = message.get("cid")
        if not isinstance(cid, str) or not _CID.fullmatch(cid):
            raise bad_request('"cid" must be 8-64 characters of A-Z a-z 0-9 _ -')
        rid = _counter(message, "rid", 1)
        base = _counter(message, "base", 0)
        try:
            ops = validate(message.get("ops", []))
        except DeltaError as exc:
            raise bad_request(f'"ops": {exc}') from exc
        action = message.get("action", "")
        if action not in ACTIONS:
            raise bad_request('"action" must be "", "undo" or "redo"')
        return cls(cid, rid, base, ops, action, _selection(message.get("sel")))

    def encode(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "sync",
            "cid": self.cid,
            "rid": self.rid,
            "base": self.base,
            "ops": self.ops,
            "action": self.action,
        }
        if self.sel is not None:
            message["sel"] = list(self.sel)
        return message


def parse_browser_frame(text: str | None) -> SyncRequest | Hello:
    """One frame from the browser. Raises ProtocolError with the code to answer, or
    FrameRefused (too large: refused by its length alone, before any parsing)."""
    if text is None:
        raise bad_request("Frames must be text.")
    if len(text) > MAX_FRAME_BYTES:
        raise FrameRefused(CLOSE_TOO_LARGE, "frame too large")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise bad_request("Message is not JSON.") from None
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == "sync":
        try:
            return SyncRequest.parse(message)
        except ProtocolError as error:
            rid = message.get("rid")
            error.rid = rid if type(rid) is int else None
            raise
    if kind == "hello":
        return Hello.parse(message)
    raise bad_request(f"Unknown message type {kind!r}.")


# ---------------------------------------------------------------- consumer -> browser


@dataclass(frozen=True, slots=True)
class Answer:
    """`ack`: the answer to request `rid`. `delta` turns the text the client sent into
    the document at `version` (undo/redo and everyone else's changes included)."""

    rid: int
    version: int
    delta: Delta

    def to_message(self) -> dict[str, Any]:
        return {"type": "ack", "rid": self.rid, "version": self.version, "delta": self.delta}

    def encode(self) -> str:
        return _json(self.to_message())


@dataclass(frozen=True, slots=True)
class Push:
    """`push`: the document moved on from `base` (what this editor was last told) to the
    durable `version`; `delta` turns the text at `base` into the text at `version`."""

    base: int
    version: int
    delta: Delta

    def encode(self) -> str:
        return _json(
            {"type": "push", "base": self.base, "version": self.version, "delta": self.delta}
        )


@dataclass(frozen=True, slots=True)
class Poke:
    """`poke`: the document moved on further than a push can say; sync."""

    version: int

    def encode(self) -> str:
        return _json({"type": "poke", "version": self.version})


@dataclass(frozen=True, slots=True)
class Notice:
    """`notice`: what the editor should know that is no request's answer (the server
    cannot save right now); the page shows it until its next answer."""

    message: str

    def encode(self) -> str:
        return _json({"type": "notice", "message": self.message})


@dataclass(frozen=True, slots=True)
class Carets:
    """`carets`: everyone's selection in the text at `version`, as
    `[id, name, hue, anchor, head]` (UTF-16 offsets; `id` is collab.carets.caret_id of
    the page load's cid); one encoding for the whole room."""

    version: int
    carets: list[tuple[str, str, int, int, int]]

    def encode(self) -> str:
        return _json({"type": "carets", "version": self.version, "carets": self.carets})


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """`error`: the request changed nothing."""

    code: str
    message: str
    rid: int | None = None

    def encode(self) -> str:
        return _json({"type": "error", "code": self.code, "message": self.message, "rid": self.rid})


# ---------------------------------------------------------------- calls to a room
#
# A call is a dict {"type": "room.call", "doc", "reply": channel, "id", "op": {...}} sent
# to the owning process's channel; the reply is {"type": "room.reply", "id", "reply":
# {...}} sent to the caller's process channel, where `id` finds the waiting call. In the
# owning process itself the room is called directly with the same objects (no channel
# layer, no encoding).


class _Wire:
    """encode()/parse() for a slots dataclass whose fields are plain data."""

    TYPE: ClassVar[str]
    __slots__: ClassVar[tuple[str, ...]]

    def encode(self) -> dict[str, Any]:
        message = {name: getattr(self, name) for name in self.__slots__}
        message["type"] = self.TYPE
        return message

    @classmethod
    def parse(cls, message: dict[str, Any]) -> Self:
        return cls(**{name: message[name] for name in cls.__slots__})


CALL = "room.call"
REPLY = "room.reply"


@dataclass(frozen=True, slots=True)
class SyncCall(_Wire):
    """Apply an editor's request; answered with `Synced` once it is durable."""

    TYPE = "sync"
    member: str  # the consumer's channel
    author: str
    request: SyncRequest

    def encode(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "member": self.member,
            "author": self.author,
            "request": self.request.encode(),
        }

    @classmethod
    def parse(cls, message: dict[str, Any]) -> Self:
        return cls(message["member"], message["author"], SyncRequest.parse(message["request"]))


@dataclass(frozen=True, slots=True)
class JoinCall(_Wire):
    """An editor is here (or still here: a heartbeat is the same call). `version` is what
    it holds (-1 before its first sync), so the next news can start from there; `epoch`
    is the room its preview is from (the reply has the whole preview only for another)."""

    TYPE = "join"
    member: str
    name: str
    session: str | None = None
    version: int = -1
    epoch: int = -1


@dataclass(frozen=True, slots=True)
class LeaveCall(_Wire):
    TYPE = "leave"
    member: str


@dataclass(frozen=True, slots=True)
class PreviewCall(_Wire):
    """The whole preview, for an editor that missed a preview diff."""

    TYPE = "preview"


@dataclass(frozen=True, slots=True)
class ReplaceCall(_Wire):
    """Replace the whole text as one merged change (the HTTP API)."""

    TYPE = "replace"
    text: str
    author: str


@dataclass(frozen=True, slots=True)
class RestoreCall(_Wire):
    """Make the text equal to `text`, the text at `version` (history's "Restore"), as one
    merged change. `session` is the restoring editor's page-load id (cid), or "": the
    change is made as that session's own, so its undo takes the restore back."""

    TYPE = "restore"
    version: int
    text: str
    author: str
    session: str


@dataclass(frozen=True, slots=True)
class PresenceCall(_Wire):
    """Who is here, as the presence fragment (a live view that just connected)."""

    TYPE = "presence"


RoomCall = SyncCall | JoinCall | LeaveCall | PreviewCall | ReplaceCall | RestoreCall | PresenceCall
_CALLS: dict[str, type[Any]] = {
    c.TYPE: c
    for c in (SyncCall, JoinCall, LeaveCall, PreviewCall, ReplaceCall, RestoreCall, PresenceCall)
}


def encode_call(doc_id: str, reply_to: str, call_id: str, call: RoomCall) -> dict[str, Any]:
    return {"type": CALL, "doc": doc_id, "reply": reply_to, "id": call_id, "op": call.encode()}


def parse_call(message: dict[str, Any]) -> tuple[str, str, str, RoomCall]:
    """(document, reply channel, call id, call) of a `room.call` message."""
    op = message["op"]
    return message["doc"], message["reply"], message["id"], _CALLS[op["type"]].parse(op)


@dataclass(frozen=True, slots=True)
class Synced(_Wire):
    """The answer to a SyncCall: the editor now holds `version`; `frame` is its `ack`."""

    TYPE = "synced"
    version: int
    frame: str


@dataclass(frozen=True, slots=True)
class PreviewReply(_Wire):
    """The room's whole preview: `epoch` names the room, `generation` its preview state."""

    TYPE = "preview"
    epoch: int
    generation: int
    html: str


@dataclass(frozen=True, slots=True)
class Replaced(_Wire):
    TYPE = "replaced"
    version: int


@dataclass(frozen=True, slots=True)
class Done(_Wire):
    TYPE = "done"


@dataclass(frozen=True, slots=True)
class Refused(_Wire):
    """The call was refused by the engine (a ProtocolError): nothing changed."""

    TYPE = "refused"
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class NotHere(_Wire):
    """The room is not (or no longer) in the process that was called: find it again."""

    TYPE = "not_here"


@dataclass(frozen=True, slots=True)
class PresenceReply(_Wire):
    TYPE = "presence"
    html: str


RoomReply = Synced | PreviewReply | Replaced | Done | Refused | NotHere | PresenceReply
_REPLIES: dict[str, type[Any]] = {
    r.TYPE: r for r in (Synced, PreviewReply, Replaced, Done, Refused, NotHere, PresenceReply)
}


def encode_reply(call_id: str, reply: RoomReply) -> dict[str, Any]:
    return {"type": REPLY, "id": call_id, "reply": reply.encode()}


def parse_reply(message: dict[str, Any]) -> tuple[str, RoomReply]:
    """(call id, reply) of a `room.reply` message."""
    body = message["reply"]
    reply: RoomReply = _REPLIES[body["type"]].parse(body)
    return message["id"], reply


# ---------------------------------------------------------------- room -> group
#
# Sent to the document's group; Channels calls the consumer method named after the type
# ("doc.changed" -> doc_changed). Every message that moves the document names versions,
# so a consumer that missed one (the layer drops messages by design) notices the gap.


def group_name(doc_id: str) -> str:
    return f"doc.{doc_id}"


LIST_GROUP = "documents"  # every open document list page (collab/listing.py)


@dataclass(frozen=True, slots=True)
class DocChanged(_Wire):
    """The document's durable version is now `version`. `pushes` holds, for each version
    the room last left editors at, the `push` frame from there to `version` (one JSON
    encoding per starting version, not per editor)."""

    TYPE = "doc.changed"
    version: int
    pushes: list[tuple[int, str]]

    def push_from(self, base: int) -> str | None:
        for start, frame in self.pushes:
            if start == base:
                return frame
        return None


@dataclass(frozen=True, slots=True)
class DocFragments(_Wire):
    """HTML for everyone (status line), plus the preview diff from generation
    `preview_base` to `preview_generation` of the room `epoch` ("" if unchanged)."""

    TYPE = "doc.fragments"
    epoch: int
    html: str
    preview: str
    preview_base: int
    preview_generation: int


@dataclass(frozen=True, slots=True)
class DocPresence(_Wire):
    TYPE = "doc.presence"
    html: str


@dataclass(frozen=True, slots=True)
class DocCarets(_Wire):
    """Carets moved (or someone came or went): `frame` is the `carets` frame at
    `version`, encoded once for every editor."""

    TYPE = "doc.carets"
    version: int
    frame: str


@dataclass(frozen=True, slots=True)
class DocTitle(_Wire):
    TYPE = "doc.title"
    html: str


@dataclass(frozen=True, slots=True)
class DocsChanged(_Wire):
    """To LIST_GROUP: documents were created, renamed, edited or deleted."""

    TYPE = "docs.changed"


@dataclass(frozen=True, slots=True)
class DocDeleted(_Wire):
    TYPE = "doc.deleted"


@dataclass(frozen=True, slots=True)
class AccessRevoked(_Wire):
    """The document's share links were reset: every guest's connection closes (4403)."""

    TYPE = "access.revoked"


@dataclass(frozen=True, slots=True)
class RoomOpened(_Wire):
    """A room for the document was (re)loaded, in some process: editors join it."""

    TYPE = "room.opened"
    epoch: int


@dataclass(frozen=True, slots=True)
class RoomClosed(_Wire):
    """The room `epoch` stopped (storage failed, its lease was lost, the document was
    deleted): whatever an editor waits for is asked again of the next room."""

    TYPE = "room.closed"
    epoch: int
