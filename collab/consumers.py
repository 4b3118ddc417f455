"""The WebSocket consumer: a thin adapter between one editor's socket and its document's room.

It validates what the browser sends, hands sync requests to the room, sends the answers,
and forwards what the room broadcasts to the document's group (news of changes, as pushes,
and HTML fragments).
"""

from __future__ import annotations

import json
import logging
import unicodedata
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from collab.engine import ProtocolError, SyncRequest
from collab.origin import is_same_origin
from collab.room import Room, RoomClosed, group_name, registry
from editor import access
from editor.access import Action, Role
from editor.models import Document

log = logging.getLogger("tandem.collab")

# Close codes in the 4000 range are final: htmx's extension does not reconnect after them.
CLOSE_BAD_REQUEST = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
# 1012 (service restart) is retried by the client: the room is reloaded on reconnect.
CLOSE_RETRY = 1012

# Close reasons, for clients that see them (Daphne drops them; the page has its own text).
NO_ACCESS_REASON = "You need a link to open this document. Ask the person who shared it."
REVOKED_REASON = "The links to this document were reset. Ask whoever shared it for a new one."

MAX_MESSAGE_CHARS = 4 * 1024 * 1024
NAME_MAX = 40
DEFAULT_NAME = "Anonymous"


def _host_allowed(headers: list[tuple[bytes, bytes]]) -> bool:
    """The Host header must be one Django serves (as for HTTP): with the same-origin check
    this also stops DNS-rebinding pages, whose Origin and Host are both the attacker's."""
    host = next((v.decode("latin-1") for k, v in headers if k.lower() == b"host"), "")
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


@database_sync_to_async
def _document_exists(doc_id: str) -> bool:
    return Document.objects.filter(pk=doc_id).exists()


def clean_name(value: object) -> str:
    """A display name: printable, one line, at most NAME_MAX characters."""
    if not isinstance(value, str):
        return DEFAULT_NAME
    name = "".join(c for c in value if unicodedata.category(c)[0] != "C")
    name = " ".join(name.split())[:NAME_MAX].strip()
    return name or DEFAULT_NAME


def error_message(code: str, message: str, rid: int | None = None) -> str:
    return json.dumps({"type": "error", "code": code, "message": message, "rid": rid})


class DocumentConsumer(AsyncWebsocketConsumer):
    doc_id: str
    room: Room | None = None
    name: str = DEFAULT_NAME
    # The version this editor holds (from its last answer or push), and whether it has a
    # poke it has not answered yet. Channels hands a consumer its messages one at a time,
    # so no group message is handled while a request of this editor is being answered.
    known_version: int = -1
    poked: bool = False
    preview_generation: int = -1
    session: str | None = None  # the page-load id (cid) of this editor, from its first sync
    role: Role = Role.NONE  # decided once, at connect (editor.access)

    async def connect(self) -> None:
        self.doc_id = self.scope["url_route"]["kwargs"]["doc_id"]
        # Accept first, then close with a 4xxx code: a refused handshake reaches the
        # browser as 1006, which the client would retry for ever.
        await self.accept()
        headers = self.scope.get("headers", [])
        if not is_same_origin(headers) or not _host_allowed(headers):
            await self.close(code=CLOSE_FORBIDDEN, reason="cross-origin connection refused")
            return
        if not await self._admit():
            return
        if not await _document_exists(self.doc_id):
            await self.close(code=CLOSE_NOT_FOUND, reason="no such document")
            return
        self.room = await registry.acquire(self.doc_id)
        await self.channel_layer.group_add(group_name(self.doc_id), self.channel_name)
        await self.room.join(self.channel_name, self.name)
        # The page's preview was rendered from storage at load time; bring it in step
        # with the room's, which the per-block updates that follow build on.
        self.preview_generation, html = self.room.full_preview()
        await self.send(text_data=html)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' own dispatch closes stale database connections before every message,
        # a thread hop per frame and per group message (a quarter of the server's time
        # at 30 editors). This consumer only reaches the database through
        # database_sync_to_async, which does that itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def _leave(self) -> None:
        """Give the room back, whatever ended this connection. Idempotent."""
        if self.room is None:
            return
        room, self.room = self.room, None
        try:
            await self.channel_layer.group_discard(group_name(self.doc_id), self.channel_name)
            await room.leave(self.channel_name, self.session)
        finally:
            room.release()

    # -- access (decided by editor.access) ------------------------------------------

    async def _admit(self) -> bool:
        """Close with 4403 unless this connection may read the document."""
        self.role = await database_sync_to_async(access.scope_role)(self.scope, self.doc_id)
        if access.may(self.role, Action.READ):
            return True
        await self.close(code=CLOSE_FORBIDDEN, reason=NO_ACCESS_REASON)
        return False

    def _check_may_change(self, request: SyncRequest) -> None:
        """A viewer may sync (to follow the document) but not change it: ops or an
        undo/redo are refused whole, and nothing is applied."""
        if (request.ops or request.action) and not access.may(self.role, Action.EDIT):
            raise ProtocolError("read_only", "This link is view-only: changes are not accepted.")

    async def access_revoked(self, event: dict[str, Any]) -> None:
        """The document's share links were reset: guests who came through them leave."""
        if self.role is not Role.OWNER:
            await self.close(code=CLOSE_FORBIDDEN, reason=REVOKED_REASON)

    # -- from the browser ------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            await self._receive(text_data)
        except Exception:
            # A bug must not leave a ghost in the presence list or pin the room: give
            # everything back, then let the client reconnect.
            log.exception("consumer for document %s failed", self.doc_id)
            await self._leave()
            await self.close(code=1011)

    async def _receive(self, text_data: str | None) -> None:
        if self.room is None:
            return
        if text_data is None:
            await self.send(text_data=error_message("bad_request", "Frames must be text."))
            return
        if len(text_data) > MAX_MESSAGE_CHARS:
            await self.send(text_data=error_message("too_large", "Message too large."))
            return
        try:
            message = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.send(text_data=error_message("bad_request", "Message is not JSON."))
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "sync":
            await self._handle_sync(message)
        elif kind == "hello":
            self.name = clean_name(message.get("name"))
            await self.room.rename_member(self.channel_name, self.name)
        else:
            await self.send(
                text_data=error_message("bad_request", f"Unknown message type {kind!r}.")
            )

    async def _handle_sync(self, message: dict[str, Any]) -> None:
        assert self.room is not None
        rid = message.get("rid") if isinstance(message.get("rid"), int) else None
        self.poked = False
        try:
            request = SyncRequest.parse(message)
            self._check_may_change(request)
            if self.session is None:
                self.session = request.cid
                self.room.attach_session(request.cid)
            elif request.cid != self.session:
                raise ProtocolError("bad_request", "cid changed within one connection")
            answer = await self.room.submit(self.session, request, self.name)
        except ProtocolError as error:
            await self.send(text_data=error_message(error.code, error.message, rid))
            return
        except RoomClosed:
            # The room was dropped: storage failed (reconnecting reloads it), or the
            # document was deleted under this request (final).
            exists = await _document_exists(self.doc_id)
            await self.close(code=CLOSE_RETRY if exists else CLOSE_NOT_FOUND)
            return
        self.known_version = answer.version
        await self.send(text_data=json.dumps(answer.to_message(), ensure_ascii=False))

    # -- from the document's group ---------------------------------------------------

    async def doc_changed(self, event: dict[str, Any]) -> None:
        """The document moved on: push the change to this editor, unless it will catch up
        anyway (it has not synced yet: its first answer brings everything)."""
        room = self.room
        if room is None or self.known_version < 0:
            return
        if room.durable_version <= self.known_version:
            return
        push = room.push_message(self.known_version)
        if push is not None:
            # The editor applies it if it has nothing in flight; if it has, the answer
            # to that request brings the same news. Either way it now holds this version
            # or its request is already on the way.
            self.known_version, frame = push
            await self.send(text_data=frame)
        elif not self.poked:
            # Too far behind for the recent history: the editor syncs instead.
            self.poked = True
            await self.send(text_data=json.dumps({"type": "poke", "version": event["version"]}))

    async def doc_fragments(self, event: dict[str, Any]) -> None:
        html = event["html"]
        preview = event["preview"]
        if preview and self.room is not None:
            if event["preview_base"] == self.preview_generation:
                html += preview
                self.preview_generation = event["preview_generation"]
            elif event["preview_generation"] > self.preview_generation:
                # A broadcast went missing (a full channel): resend the whole preview.
                self.preview_generation, full = self.room.full_preview()
                html += full
        await self.send(text_data=html)

    async def doc_presence(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])

    async def doc_title(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])

    async def doc_deleted(self, event: dict[str, Any]) -> None:
        await self.close(code=CLOSE_NOT_FOUND, reason="document deleted")

    async def room_closed(self, event: dict[str, Any]) -> None:
        await self.close(code=CLOSE_RETRY)
