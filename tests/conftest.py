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


def stream_of(item: pytest.Item) -> tuple[int, str]:
    """(order, xdist group) of a test for `--dist loadgroup` (see the hook below)."""
    if item.get_closest_marker("air"):
        return 0, "air"
    if any(item.get_closest_marker(mark) for mark in STATIONS_MARKS):
        return 1, "stations"
    return 2, "inprocess:" + item.nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for `--dist loadgroup` (scripts/test runs two pytest workers, with
    `--no-loadscope-reorder`: groups are handed out in the order of the items):

    1. `air`: the tests that spend minutes waiting on radio air time, one after another, first
       on one worker;
    2. `stations`: the tests that start stations (subprocesses, namespaces, browsers), one after
       another, first on the other worker: on a 2-core machine the stations of two such tests
       at once would starve each other's timers; an air test beside one does not;
    3. every other module (in-process tests) a group of its own, handed to whichever worker
       runs out of work first.

    The items are sorted by that order, stably (pytest-randomly's shuffle stays within each
    part). Runs after pytest-randomly's wrapper and before xdist's hook, which reads the marks."""
    streams = {item.nodeid: stream_of(item) for item in items}
    items.sort(key=lambda item: streams[item.nodeid][0])
    for item in items:
        item.add_marker(pytest.mark.xdist_group(streams[item.nodeid][1]))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item (`item.stash[PHASE_REPORTS]`), so a fixture can
    tell at teardown whether its test failed and show what it knows (station logs)."""
    report = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report
