"""Shared fixtures: the embedded Redis for the whole session, a clean Redis per test, personas."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings

from meshsite.embedded_redis import EmbeddedRedis
from meshsite.redisconn import get_redis


@pytest.fixture(scope="session", autouse=True)
def embedded_redis() -> Iterator[str]:
    """The same private Redis a station runs, on a unix socket in the test data dir; with
    REDIS_URL set (CI against an external Redis) that server is used instead."""
    server = None
    if settings.REDIS_EMBEDDED:
        server = EmbeddedRedis(settings.DATA_DIR, settings.REDIS_SOCKET)
        server.start()
    yield settings.REDIS_URL
    if server is not None:
        server.stop()


@pytest.fixture(autouse=True)
def clean_redis(embedded_redis: str) -> Iterator[None]:
    get_redis().flushdb()
    yield
