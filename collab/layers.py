"""The in-memory channel layer, with three per-message costs taken out.

Channels' `InMemoryChannelLayer` scans every channel and group for expired messages on
each `receive` and `group_send`, and `group_send` starts one task per member. With 200
editors in one document, one broadcast then costs 200 scans of 200+ channels: a seventh
of the server's time. Here expiry is swept at most once a second (messages live for a
minute, so nothing expires noticeably later), and a group send puts the message in each
member's queue directly (the in-memory `send` never waits). And a message is not
deep-copied per receiver: Tandem never changes a message once it is sent (the same
dict reaching 200 consumers is 200 references, not 200 copies). The behaviour is
otherwise Channels' own; Redis (`TANDEM_REDIS_URL`) stays a settings change.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer

CLEAN_INTERVAL = 1.0  # seconds between sweeps for expired messages


class InMemoryChannelLayer(ChannelsInMemoryChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_clean = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now < self._next_clean:
            return
        self._next_clean = now + CLEAN_INTERVAL
        super()._clean_expired()

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            queue.put_nowait((time.time() + self.expiry, message))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            # As Channels does: a full channel misses this one message.
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)
