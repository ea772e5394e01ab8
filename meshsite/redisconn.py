"""Connections to the station's Redis (embedded or REDIS_URL), shared per process."""

from __future__ import annotations

import asyncio
import functools
import math
import secrets
import time

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


_WINDOW_SCRIPT = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return {0, oldest[2]}
end
redis.call('ZADD', key, now, ARGV[4])
redis.call('EXPIRE', key, window + 1)
return {1, '0'}
"""


def rate_window_take(*, key: str, window: int, limit: int) -> int:
    """Take one of `limit` slots in a sliding window of `window` seconds kept in Redis under
    `key`: 0 when taken, else the seconds until a slot frees (for Retry-After)."""
    now = time.time()
    allowed, oldest = get_redis().eval(_WINDOW_SCRIPT, 1, key, now, window, limit,
                                       f"{now}:{secrets.token_hex(4)}")
    if int(allowed):
        return 0
    return max(1, math.ceil(float(oldest) + window - now))
