"""The WebSocket consumer: a thin adapter between one editor's socket and its document.

It validates what the browser sends (collab/protocol.py), asks the document's room
(through the host, wherever the room runs) and sends the answers, and turns what the
room tells the document's group into frames for its editor: pushes, pokes and HTML.
It never holds a room: every exchange with one is a call and its reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from collab import storage_errors
from collab.host import Host, RoomUnavailable, get_host
from collab.origin import is_same_origin
from collab.ownership import DocumentMissing
from collab.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    CLOSE_RETRY,
    DEFAULT_NAME,
    DocCarets,
    DocChanged,
    DocFragments,
    ErrorMessage,
    FrameRefused,
    Hello,
    JoinCall,
    LeaveCall,
    Notice,
    Poke,
    PreviewCall,
    PreviewReply,
    ProtocolError,
    Refused,
    RoomCall,
    RoomReply,
    SyncCall,
    Synced,
    SyncRequest,
    group_name,
    parse_browser_frame,
)
from collab.roster import HEARTBEAT_SECONDS
from editor import access
from editor.access import Action, Role
from editor.models import Document

log = logging.getLogger("tandem.collab")
LEAVE_TIMEOUT = 2.0  # a goodbye is not worth holding a closing connection for longer
NO_ACCESS_REASON = "You need a link to open this document. Ask the person who shared it."
REVOKED_REASON = "The links to this document were reset. Ask whoever shared it for a new one."


def _host_allowed(headers: list[tuple[bytes, bytes]]) -> bool:
    """The Host header must be one Django serves (as for HTTP): with the same-origin check
    this also stops DNS-rebinding pages, whose Origin and Host are both the attacker's."""
    host = next((v.decode("latin-1") for k, v in headers if k.lower() == b"host"), "")
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


@database_sync_to_async
def _document_exists(doc_id: str) -> bool:
    return Document.objects.filter(pk=doc_id).exists()


class Gone(Exception):
    """The connection was closed (by us or by the browser): stop handling this message."""


class DocumentConsumer(AsyncWebsocketConsumer):
    doc_id: str
    host: Host | None = None  # set while this editor is in the document's roster
    name: str = DEFAULT_NAME
    session: str | None = None  # the page-load id (cid) of this editor, from its first sync
    # The version this editor holds (from its last answer or push; -1 before its first
    # sync), and whether it has a poke it has not answered yet. Channels hands a consumer
    # its messages one at a time: no group message is handled while a call is answered.
    known_version: int = -1
    poked: bool = False
    # Which room (lease epoch) and preview state this editor's preview comes from.
    room_epoch: int = -1
    preview_generation: int = -1
    _heartbeat: asyncio.Task[None] | None = None
    role: Role = Role.NONE  # decided once, at connect (editor.access)
    via: str = ""  # the share link it came through, kept with its changes (history)

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
        # From here on, whatever ends this connection (the browser leaving while it is
        # set up included) must take it out of the roster again.
        self.host = get_host()
        try:
            await self.channel_layer.group_add(group_name(self.doc_id), self.channel_name)
            await self._join()
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())
        except Gone:
            return
        except BaseException:
            await self._leave()
            raise

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def _leave(self) -> None:
        """Out of the group and the roster, whatever ended this connection. Idempotent."""
        host, self.host = self.host, None
        if host is None:
            return
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        with contextlib.suppress(Exception):
            await self.channel_layer.group_discard(group_name(self.doc_id), self.channel_name)
        try:
            await host.call(self.doc_id, LeaveCall(self.channel_name), LEAVE_TIMEOUT, load=False)
        except Exception:
            # The room's process went away: its successor never heard of this member.
            log.debug("leave of %s not delivered", self.channel_name, exc_info=True)

    # -- access (decided by editor.access) ------------------------------------------

    async def _admit(self) -> bool:
        """Close with 4403 unless this connection may read the document."""
        self.role = await database_sync_to_async(access.scope_role)(self.scope, self.doc_id)
        if self.role is Role.EDITOR:
            self.via = await database_sync_to_async(access.scope_via)(self.scope, self.doc_id)
        if access.may(self.role, Action.READ):
            return True
        await self.close(code=CLOSE_FORBIDDEN, reason=NO_ACCESS_REASON)
        return False

    def _may_change(self, request: SyncRequest) -> bool:
        """A viewer may sync (to follow the document) but not change it: ops or an
        undo/redo are refused whole, and nothing is applied."""
        return not (request.ops or request.action) or access.may(self.role, Action.EDIT)

    async def _send(self, text: str) -> None:
        """Send a frame; if the browser is gone (Daphne raises "Attempt to send on a
        closed protocol"), leave at once and stop handling the message."""
        try:
            await self.send(text_data=text)
        except Exception:
            await self._leave()
            raise Gone() from None

    async def _close(self, code: int, reason: str = "") -> None:
        await self._leave()
        with contextlib.suppress(Exception):
            await self.close(code=code, reason=reason)
        raise Gone()

    async def _call(self, call: RoomCall) -> RoomReply:
        """Ask the document's room; a document that is gone or a room nobody can run ends
        this connection (4404 final; CLOSE_RETRY: the browser reconnects and resends)."""
        if self.host is None:
            raise Gone()  # left already (a message queued before the leave): stay out
        try:
            return await self.host.call(self.doc_id, call)
        except DocumentMissing:
            await self._close(CLOSE_NOT_FOUND, "document deleted")
        except RoomUnavailable as error:
            log.warning("document %s: no room could answer; the editor reconnects", self.doc_id)
            if error.problem:  # storage is failing: the page says so until it is saved
                await self._send(Notice(storage_errors.editor_notice(error.problem)).encode())
            await self._close(CLOSE_RETRY, "the document is reloading")
        raise AssertionError("unreachable")

    async def _join(self) -> None:
        """Join (or, as a heartbeat, stay in) the room's roster; a new room sends its
        whole preview, which the per-block diffs that follow build on."""
        reply = await self._call(
            JoinCall(
                self.channel_name, self.name, self.session, self.known_version, self.room_epoch
            )
        )
        assert isinstance(reply, PreviewReply)
        if reply.epoch != self.room_epoch:
            self.room_epoch, self.preview_generation = reply.epoch, reply.generation
            await self._send(reply.html)

    async def _beat(self) -> None:
        """Every HEARTBEAT_SECONDS: a heartbeat message to ourselves, so that it is handled
        in turn with everything else this consumer does."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self.channel_layer.send(self.channel_name, {"type": "consumer.heartbeat"})

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' own dispatch closes stale database connections before every message,
        # a thread hop per frame and per group message (a quarter of the server's time
        # at 30 editors). This consumer reaches the database only through
        # database_sync_to_async and the store thread, which manage their own.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        with contextlib.suppress(Gone):
            await handler(message)

    # -- from the browser ------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.host is None:
            return
        try:
            await self._receive(text_data)
        except Gone:
            raise
        except Exception:
            # A bug must not leave a ghost in the presence list or pin the room: give
            # everything back, then let the client reconnect and resend.
            log.exception("consumer for document %s failed", self.doc_id)
            await self._close(CLOSE_RETRY, "server error")

    async def _receive(self, text_data: str | None) -> None:
        try:
            message = parse_browser_frame(text_data)
        except ProtocolError as error:
            await self._send(ErrorMessage(error.code, error.message, error.rid).encode())
            return
        except FrameRefused as refused:
            await self._close(refused.code, refused.reason)
        if isinstance(message, Hello):
            self.name = message.name
            await self._join()
        else:
            await self._handle_sync(message)

    async def _handle_sync(self, request: SyncRequest) -> None:
        if not self._may_change(request):
            error = ErrorMessage(
                "read_only", "This link is view-only: changes are not accepted.", request.rid
            )
            await self._send(error.encode())
            return
        if self.session is None:
            self.session = request.cid
        elif request.cid != self.session:
            error = ErrorMessage("bad_request", "cid changed within one connection", request.rid)
            await self._send(error.encode())
            return
        self.poked = False
        author = f"{self.name} ({self.via})" if self.via else self.name
        reply = await self._call(SyncCall(self.channel_name, author, request))
        if isinstance(reply, Refused):
            await self._send(ErrorMessage(reply.code, reply.message, request.rid).encode())
            return
        assert isinstance(reply, Synced)
        self.known_version = reply.version
        await self._send(reply.frame)

    # -- to ourselves ----------------------------------------------------------------

    async def consumer_heartbeat(self, event: dict[str, Any]) -> None:
        if self.host is None:
            return  # queued before this editor left: re-joining would make a ghost
        # Re-joining the group too: a layer may forget a member after its group_expiry
        # (the in-memory layer after a day).
        await self.channel_layer.group_add(group_name(self.doc_id), self.channel_name)
        await self._join()

    # -- from the document's group ---------------------------------------------------

    async def doc_changed(self, event: dict[str, Any]) -> None:
        """The document moved on: push the change to this editor if the message has a
        push from the version it holds; if not (it missed news), poke it to sync."""
        if self.known_version < 0:
            return  # not synced yet: its first answer brings everything
        news = DocChanged.parse(event)
        if news.version <= self.known_version:
            return
        frame = news.push_from(self.known_version)
        if frame is not None:
            # Applied if nothing is in flight; if something is, its answer brings the
            # same news. Either way the editor now holds this version or is asking.
            self.known_version = news.version
            await self._send(frame)
        elif not self.poked:
            self.poked = True
            await self._send(Poke(news.version).encode())

    async def doc_fragments(self, event: dict[str, Any]) -> None:
        news = DocFragments.parse(event)
        html = news.html
        if news.preview:
            if news.epoch == self.room_epoch and news.preview_base == self.preview_generation:
                html += news.preview
                self.preview_generation = news.preview_generation
            elif news.epoch != self.room_epoch or news.preview_generation > self.preview_generation:
                # A diff went missing (the layer drops messages) or the room changed:
                # the whole preview, as the room has it now.
                reply = await self._call(PreviewCall())
                assert isinstance(reply, PreviewReply)
                self.room_epoch, self.preview_generation = reply.epoch, reply.generation
                html += reply.html
        await self._send(html)

    async def doc_presence(self, event: dict[str, Any]) -> None:
        await self._send(event["html"])

    async def doc_carets(self, event: dict[str, Any]) -> None:
        """Everyone's carets: the browser places them if it holds their version (or
        keeps them until it does)."""
        if self.known_version >= 0:
            await self._send(DocCarets.parse(event).frame)

    async def doc_title(self, event: dict[str, Any]) -> None:
        await self._send(event["html"])

    async def doc_deleted(self, event: dict[str, Any]) -> None:
        await self._close(CLOSE_NOT_FOUND, "document deleted")

    async def access_revoked(self, event: dict[str, Any]) -> None:
        """The document's share links were reset: guests who came through them leave."""
        if self.role is not Role.OWNER:
            await self._close(CLOSE_FORBIDDEN, REVOKED_REASON)

    async def room_opened(self, event: dict[str, Any]) -> None:
        """A room was loaded (after the last one stopped, here or in another process)."""
        if event["epoch"] != self.room_epoch and self.host is not None:
            await self._join()

    async def room_closed(self, event: dict[str, Any]) -> None:
        """Our room stopped: join the next one (loading it if nobody has)."""
        if event["epoch"] == self.room_epoch and self.host is not None:
            await self._join()
