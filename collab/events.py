"""The live view's stream: Server-Sent Events of a document's HTML fragments.

`GET /d/<id>/events` answers `text/event-stream` and stays open. The consumer joins the
document's group, like an editor's WebSocket consumer, and forwards the same fragments
(preview diffs and status line, presence), one event per group message. It holds no
document: what it needs of the room it asks through the host (PreviewCall, PresenceCall),
so a viewer costs a channel and a few integers.

Every event's `id:` names the preview state the page holds after it: "<room epoch>.<preview
generation>". A browser that lost its connection comes back with `Last-Event-ID`; if the
room has moved on since (or is another room), the first event is the whole preview as the
room has it now, so nothing is missed; a preview diff that does not start from the state
the page holds (the layer dropped one) is replaced by the whole preview too.

A comment line every KEEPALIVE_SECONDS keeps proxies from closing an idle stream; it is
sent through the consumer's own channel (a message to itself), so this consumer only ever
waits in Channels' ordinary receive (a channels-redis receive must never be cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer

from collab.fragments import live_ended
from collab.host import RoomUnavailable, get_host
from collab.ownership import DocumentMissing
from collab.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_MESSAGES,
    CLOSE_NOT_FOUND,
    DocFragments,
    PresenceCall,
    PresenceReply,
    PreviewCall,
    PreviewReply,
    group_name,
)
from editor import access
from editor.access import Action, Role
from editor.models import Document

log = logging.getLogger("tandem.collab")
KEEPALIVE_SECONDS = 15.0


def event(data: str, event_id: str | None = None, name: str | None = None) -> bytes:
    """One Server-Sent Event: every line of `data` on a `data:` line of its own."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if name is not None:
        lines.append(f"event: {name}")
    lines.extend(f"data: {line}" for line in data.replace("\r", "").split("\n"))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


@database_sync_to_async
def _admit(scope: dict[str, Any], doc_id: str) -> tuple[Role, bool]:
    return access.scope_role(scope, doc_id), Document.objects.filter(pk=doc_id).exists()


class EventsConsumer(AsyncHttpConsumer):
    doc_id: str
    role: Role = Role.NONE
    streaming = False
    epoch = -1
    generation = -1
    _keepalive: asyncio.Task[None] | None = None

    # -- the request ---------------------------------------------------------------------

    async def http_request(self, message: dict[str, Any]) -> None:
        """Channels' version ends the response when `handle` returns; a stream goes on,
        answering group messages, until the browser leaves (http.disconnect)."""
        if "body" in message:
            self.body.append(message["body"])
        if message.get("more_body"):
            return
        try:
            await self.handle(b"".join(self.body))
        except StopConsumer:
            raise
        except Exception:
            log.exception("live view of %s failed", self.scope.get("path"))
            await self._finish()
        if not self.streaming:
            await self._finish()

    async def handle(self, body: bytes) -> None:
        self.doc_id = self.scope["url_route"]["kwargs"]["doc_id"]
        if self.scope.get("method") not in ("GET", "HEAD"):
            await self._refuse(405, "Use GET.")
            return
        self.role, exists = await _admit(self.scope, self.doc_id)
        if not access.may(self.role, Action.HISTORY):
            await self._refuse(403, access.refusal(self.role, Action.HISTORY))
            return
        if not exists:
            await self._refuse(404, "No document has this address.")
            return
        await self.send_headers(
            status=200,
            headers=[
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache, no-store"),
                (b"x-accel-buffering", b"no"),  # nginx: do not hold events back
            ],
        )
        self.streaming = True
        await self.channel_layer.group_add(group_name(self.doc_id), self.channel_name)
        self._keepalive = asyncio.get_running_loop().create_task(self._beat())
        # Resuming: the id of the last event the browser got says what it holds.
        await self._catch_up(_header(self.scope, b"last-event-id"))

    async def _refuse(self, status: int, message: str) -> None:
        await self.send_response(
            status,
            message.encode("utf-8"),
            headers=[(b"content-type", b"text/plain; charset=utf-8")],
        )

    # -- sending -------------------------------------------------------------------------

    @property
    def event_id(self) -> str:
        return f"{self.epoch}.{self.generation}"

    async def _send(self, data: bytes) -> None:
        """Send on the stream; a browser that is gone ends this consumer."""
        if not self.streaming:
            return
        try:
            await self.send_body(data, more_body=True)
        except Exception:
            await self._finish()

    async def _end(self, why: str) -> None:
        """For good: the page says why, then the `closed` event stops the browser from
        reconnecting (live.html's sse-close), and the stream ends."""
        await self._send(event(live_ended(why)))
        await self._send(event("closed", name="closed"))
        await self._finish()

    async def _room(self, call: PreviewCall | PresenceCall) -> Any:
        try:
            return await get_host().call(self.doc_id, call)
        except DocumentMissing:
            await self._end(CLOSE_MESSAGES[CLOSE_NOT_FOUND])
        except RoomUnavailable:
            # Nobody can run the document now: end the stream; the browser reconnects
            # (EventSource does by itself) and catches up then.
            await self._finish()
        return None

    async def _catch_up(self, last_id: str | None) -> None:
        """The whole preview (unless the browser holds it already) and who is here."""
        preview = await self._room(PreviewCall())
        if not isinstance(preview, PreviewReply):
            return
        self.epoch, self.generation = preview.epoch, preview.generation
        presence = await self._room(PresenceCall())
        html = presence.html if isinstance(presence, PresenceReply) else ""
        if last_id != self.event_id:
            html = preview.html + html
        await self._send(event(html, self.event_id))

    async def _finish(self) -> None:
        """End the response and let go of everything. Idempotent."""
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        if self.streaming:
            self.streaming = False
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(group_name(self.doc_id), self.channel_name)
            with contextlib.suppress(Exception):
                await self.send_body(b"", more_body=False)
        raise StopConsumer()

    async def disconnect(self) -> None:
        with contextlib.suppress(StopConsumer):
            await self._finish()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            await self.channel_layer.send(self.channel_name, {"type": "events.keepalive"})

    async def dispatch(self, message: dict[str, Any]) -> None:
        # As in DocumentConsumer: no database-connection cleanup (a thread hop) per
        # group message; this consumer reaches the database only through the host.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # -- to ourselves ----------------------------------------------------------------

    async def events_keepalive(self, message: dict[str, Any]) -> None:
        await self._send(b": keepalive\n\n")
        # channels-redis forgets a group member after group_expiry: join again.
        await self.channel_layer.group_add(group_name(self.doc_id), self.channel_name)

    # -- from the document's group ---------------------------------------------------

    async def doc_fragments(self, message: dict[str, Any]) -> None:
        news = DocFragments.parse(message)
        html = news.html
        if news.preview:
            if news.epoch == self.epoch and news.preview_base == self.generation:
                html += news.preview
                self.generation = news.preview_generation
            elif news.epoch != self.epoch or news.preview_generation > self.generation:
                reply = await self._room(PreviewCall())  # a diff went missing
                if not isinstance(reply, PreviewReply):
                    return
                self.epoch, self.generation = reply.epoch, reply.generation
                html += reply.html
        await self._send(event(html, self.event_id))

    async def doc_presence(self, message: dict[str, Any]) -> None:
        await self._send(event(message["html"], self.event_id))

    async def doc_deleted(self, message: dict[str, Any]) -> None:
        await self._end(CLOSE_MESSAGES[CLOSE_NOT_FOUND])

    async def access_revoked(self, message: dict[str, Any]) -> None:
        if self.role is not Role.OWNER:
            await self._end(CLOSE_MESSAGES[CLOSE_FORBIDDEN])

    # Not shown on the live page (the editor's business), or caught up by doc_fragments.
    async def doc_changed(self, message: dict[str, Any]) -> None:
        pass

    async def doc_title(self, message: dict[str, Any]) -> None:
        pass

    async def doc_carets(self, message: dict[str, Any]) -> None:
        pass  # carets are drawn in editors; the live view shows who is here only

    async def room_opened(self, message: dict[str, Any]) -> None:
        pass

    async def room_closed(self, message: dict[str, Any]) -> None:
        pass
