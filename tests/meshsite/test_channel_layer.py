"""The channel layer waits quietly on an idle channel: a consumer that hears nothing for longer
than channels-redis's 5 s blocking pop must not die of a Redis read timeout (redis-py 8 gives
unix sockets a 5 s read timeout by default)."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from meshsite.redisconn import get_async_redis


@pytest.mark.asyncio
async def test_an_idle_receive_outlives_the_blocking_pop():
    layer = get_channel_layer()
    channel = await layer.new_channel()

    async def later() -> None:
        await asyncio.sleep(7)
        await layer.send(channel, {"type": "late.hello"})

    sender = asyncio.ensure_future(later())
    try:
        message = await asyncio.wait_for(layer.receive(channel), 20)
    finally:
        sender.cancel()
    assert message == {"type": "late.hello"}


@pytest.mark.asyncio
async def test_a_blocking_pop_of_six_seconds_returns_nothing_instead_of_failing():
    client = get_async_redis()
    try:
        assert await client.blpop(["meshsite:test:never"], timeout=6) is None
    finally:
        await client.aclose()
