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


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Two groups for `--dist loadgroup` (scripts/test runs two pytest workers): the tests
    marked `air`, which spend minutes waiting on radio air time, on one worker; everything else
    on the other, one test at a time as before. On a 2-core machine the stations of two
    CPU-heavy tests at once would starve each other's timers; an air test beside one does not.
    Runs before xdist's own hook, which reads these marks."""
    for item in items:
        item.add_marker(pytest.mark.xdist_group("air" if item.get_closest_marker("air")
                                                else "main"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item (`item.stash[PHASE_REPORTS]`), so a fixture can
    tell at teardown whether its test failed and show what it knows (station logs)."""
    report = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report
