"""Connections to the station's Redis (embedded or REDIS_URL), shared per process."""

from __future__ import annotations

import asyncio
import functools

import redis
import redis.asyncio
from django.conf import settings


@functools.cache
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5,
                                health_check_interval=30)


def get_async_redis() -> redis.asyncio.Redis:
    """A new asyncio client: each event loop needs its own (call once per loop and keep it)."""
    # Longer than any blocking command we send (BLPOP, pub/sub waits of up to 5 s): redis-py 8
    # defaults unix sockets to a 5 s read timeout.
    return redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5,
                                        socket_timeout=30, max_connections=1000)


_by_loop: dict[int, redis.asyncio.Redis] = {}


def loop_redis() -> redis.asyncio.Redis:
    """The asyncio client of the running event loop (made on first use, then shared)."""
    loop = asyncio.get_running_loop()
    client = _by_loop.get(id(loop))
    if client is None:
        client = _by_loop[id(loop)] = get_async_redis()
    return client
