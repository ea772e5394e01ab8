"""Shared fixtures: the embedded Redis for the whole session, a clean Redis per test, the
station databases dropped at the end (PostgreSQL runs), personas."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings

from meshsite.embedded_redis import EmbeddedRedis
from meshsite.redisconn import get_redis
from tests.harness import PHASE_REPORTS, station_databases_drop


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


@pytest.fixture(scope="session", autouse=True)
def station_databases() -> Iterator[None]:
    """On PostgreSQL, the databases the harness made for station subprocesses go at the end."""
    yield
    station_databases_drop()


@pytest.fixture(autouse=True)
def clean_redis(embedded_redis: str) -> Iterator[None]:
    get_redis().flushdb()
    yield


STATIONS_MARKS = ("integration", "netns", "browser")


def stream_of(item: pytest.Item) -> int:
    """Where a test goes in the run's order (see the hook below)."""
    if item.get_closest_marker("air"):
        return 0
    if any(item.get_closest_marker(mark) for mark in STATIONS_MARKS):
        return 1
    return 2


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests first: those marked `air` (minutes of radio air time each), then those
    that start stations (subprocesses, namespaces, browsers), then the in-process ones; stably,
    so pytest-randomly's shuffle stays within each part. scripts/test's two workers
    (`--dist loadgroup --no-loadscope-reorder`, with no `xdist_group` marks: every test a unit
    of its own) take the tests one at a time in this order, so the longest do not end up at
    the tail of the run. pytest-django's own sort runs after this one (database tests, then
    transactional ones, then the rest) and is kept: a transactional test empties the tables."""
    order = {item.nodeid: stream_of(item) for item in items}
    items.sort(key=lambda item: order[item.nodeid])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item (`item.stash[PHASE_REPORTS]`), so a fixture can
    tell at teardown whether its test failed and show what it knows (station logs)."""
    report = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report
