"""TANDEM_REDIS_URL: the channel layer Tandem configures, on a real redis-server (fixture
`redis_url`). Two layer objects stand for two processes."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from channels_redis.pubsub import RedisPubSubChannelLayer

from editor import conf


def test_without_redis_it_is_the_in_memory_layer() -> None:
    layer = conf.channel_layer("")
    assert layer["BACKEND"] == "collab.layers.InMemoryChannelLayer"
    assert layer["CONFIG"]["capacity"] == 10_000


def test_with_redis_it_is_channels_redis_sized_like_the_in_memory_layer() -> None:
    layer = conf.channel_layer("redis://cache.internal:6379/2")
    # Pub/sub: one PUBLISH per message, group messages fanned out by each process.
    assert layer["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    (host,) = layer["CONFIG"]["hosts"]
    assert host["address"] == "redis://cache.internal:6379/2"
    assert host["socket_timeout"] > 5


def _process(redis_url: str) -> RedisPubSubChannelLayer:
    config: dict[str, Any] = conf.channel_layer(redis_url)["CONFIG"]
    return RedisPubSubChannelLayer(**config)


@pytest.mark.asyncio
async def test_a_group_message_reaches_members_in_every_process(redis_url: str) -> None:
    one, two = _process(redis_url), _process(redis_url)
    group = f"doc-{secrets.token_hex(4)}"
    try:
        mine, theirs = await one.new_channel(), await two.new_channel()
        await one.group_add(group, mine)
        await two.group_add(group, theirs)
        await one.group_send(group, {"type": "doc.changed", "version": 7, "data": b"\x01" * 9})
        for layer, channel in [(one, mine), (two, theirs)]:
            message = await asyncio.wait_for(layer.receive(channel), timeout=5)
            assert message == {"type": "doc.changed", "version": 7, "data": b"\x01" * 9}
        # A request straight to one process's channel, and its answer back.
        await two.send(mine, {"type": "room.request", "reply_to": theirs, "rid": 1})
        request = await asyncio.wait_for(one.receive(mine), timeout=5)
        await one.send(request["reply_to"], {"type": "room.answer", "rid": request["rid"]})
        answer = await asyncio.wait_for(two.receive(theirs), timeout=5)
        assert answer == {"type": "room.answer", "rid": 1}
    finally:
        await one.flush()
        await two.flush()


@pytest.mark.asyncio
async def test_a_burst_of_more_than_the_library_default_is_not_dropped(redis_url: str) -> None:
    """Nothing of a burst is dropped or reordered (channels-redis's list layer drops
    silently past its default capacity of 100)."""
    sender, receiver = _process(redis_url), _process(redis_url)
    try:
        channel = await receiver.new_channel()
        group = f"doc-{secrets.token_hex(4)}"
        await receiver.group_add(group, channel)
        for version in range(1, 501):
            await sender.group_send(group, {"type": "doc.changed", "version": version})
        versions = [
            (await asyncio.wait_for(receiver.receive(channel), timeout=5))["version"]
            for _ in range(500)
        ]
        assert versions == list(range(1, 501))
    finally:
        await receiver.flush()
        await sender.flush()
