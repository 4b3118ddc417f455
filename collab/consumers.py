"""The WebSocket consumer: a thin adapter between one editor's socket and its document."""

from __future__ import annotations

import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from collab.origin import is_same_origin
from editor.models import Document

log = logging.getLogger("tandem.collab")

# Close codes in the 4000 range are final: htmx's extension does not reconnect after them.
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


def group_name(doc_id: str) -> str:
    return f"doc.{doc_id}"


@database_sync_to_async
def _document_exists(doc_id: str) -> bool:
    return Document.objects.filter(pk=doc_id).exists()


class DocumentConsumer(AsyncWebsocketConsumer):
    doc_id: str
    group: str | None = None

    async def connect(self) -> None:
        self.doc_id = self.scope["url_route"]["kwargs"]["doc_id"]
        # Accept first, then close with a 4xxx code: a refused handshake reaches the
        # browser as 1006, which the client would retry for ever.
        await self.accept()
        if not is_same_origin(self.scope.get("headers", [])):
            await self.close(code=CLOSE_FORBIDDEN, reason="cross-origin connection refused")
            return
        if not await _document_exists(self.doc_id):
            await self.close(code=CLOSE_NOT_FOUND, reason="no such document")
            return
        self.group = group_name(self.doc_id)
        await self.channel_layer.group_add(self.group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
