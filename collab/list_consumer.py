"""The WebSocket of a document list page: it forwards the nudges of collab/listing.py."""

from __future__ import annotations

import contextlib
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from collab.consumers import _host_allowed
from collab.origin import is_same_origin
from collab.protocol import CLOSE_FORBIDDEN, LIST_GROUP


class DocumentListConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        headers = self.scope.get("headers", [])
        if not is_same_origin(headers) or not _host_allowed(headers):
            await self.close(code=CLOSE_FORBIDDEN, reason="cross-origin connection refused")
            return
        await self.channel_layer.group_add(LIST_GROUP, self.channel_name)

    async def disconnect(self, code: int) -> None:
        with contextlib.suppress(Exception):
            await self.channel_layer.group_discard(LIST_GROUP, self.channel_name)

    async def docs_changed(self, event: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # the page is gone: disconnect() follows
            await self.send(text_data='{"type": "docs"}')
