"""collab.layers: Channels' in-memory layer with cheaper expiry sweeps and group sends."""

from __future__ import annotations

import asyncio

import pytest

from collab import layers
from collab.layers import InMemoryChannelLayer

pytestmark = pytest.mark.asyncio


async def test_group_send_reaches_every_member_once_without_copies() -> None:
    layer = InMemoryChannelLayer(capacity=10)
    channels = [await layer.new_channel() for _ in range(5)]
    for channel in channels:
        await layer.group_add("doc.x", channel)
    message = {"type": "doc.changed", "version": 3}
    await layer.group_send("doc.x", message)
    received = [await asyncio.wait_for(layer.receive(c), 1) for c in channels]
    assert received == [message] * 5
    # One message object for all: Tandem never changes a message once it is sent.
    assert all(r is message for r in received)
    await layer.group_discard("doc.x", channels[0])
    await layer.group_send("doc.x", {"type": "doc.changed", "version": 4})
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channels[0]), 0.05)


async def test_a_full_member_misses_a_message_and_the_others_do_not() -> None:
    layer = InMemoryChannelLayer(capacity=1)
    full, other = await layer.new_channel(), await layer.new_channel()
    for channel in (full, other):
        await layer.group_add("doc.x", channel)
    await layer.send(full, {"type": "first"})
    await layer.group_send("doc.x", {"type": "second"})
    assert (await layer.receive(full))["type"] == "first"
    assert (await layer.receive(other))["type"] == "second"


async def test_expired_messages_are_still_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layers, "CLEAN_INTERVAL", 0.0)
    layer = InMemoryChannelLayer(expiry=0)
    gone = await layer.new_channel()
    await layer.group_add("doc.x", gone)
    await layer.send(gone, {"type": "old"})
    await asyncio.sleep(0.01)
    await layer.group_send("doc.y", {"type": "nothing"})  # any operation sweeps
    assert gone not in layer.channels
    assert gone not in layer.groups.get("doc.x", {})  # expiry removes it from its groups
