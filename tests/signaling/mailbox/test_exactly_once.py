"""Exactly once: 20 concurrent bundle requests for an operator with K < 20 one-time prekeys,
spread over three daphne processes on one database (SQLite here, PostgreSQL on the CI's second
pass), return K distinct keys and 20 - K bundles without one."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pytest
from django.conf import settings

from tests.harness import migrate, station_env
from tests.signaling.conftest import FAST, _start
from tests.signaling.mailbox.conftest import OPEN, Mailbox, trusting
from tests.signaling.mailbox.signal_client import SignalDevice

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

TAKERS = 20
KEYS = 7
PROCESSES = 3


@pytest.fixture
def three(embedded_redis):
    data_dir = Path(tempfile.mkdtemp(prefix="meshsite-mbx-"))
    migrate(data_dir, station_env(data_dir, REDIS_URL=settings.REDIS_URL, **FAST))
    env = {**OPEN, "MESHSITE_MAILBOX_BUNDLE_RATE": "0", "MESHSITE_MAILBOX_BUNDLE_TARGET_RATE": "0"}
    started = []
    try:
        for _ in range(PROCESSES):
            started.append(_start(data_dir, env))
        trusting(started[0])
        yield started
    finally:
        for process in started:
            process.stop()


def test_twenty_concurrent_takes_of_seven_keys(three) -> None:
    apis = [Mailbox(process.url) for process in three]
    bob = apis[0].register("DL1BOB", SignalDevice(prekeys=KEYS))
    alice = apis[1].register("W1ALI")
    barrier = threading.Barrier(TAKERS)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def take(api: Mailbox) -> None:
        barrier.wait()
        answer = api.bundle(alice, "DL1BOB", str(bob.device_id))
        with lock:
            results.append(answer)

    threads = [threading.Thread(target=take, args=(apis[n % PROCESSES],))
               for n in range(TAKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == TAKERS
    assert [status for status, _ in results] == [200] * TAKERS, results
    keys = [body["devices"][0]["oneTimePreKey"] for _, body in results]
    given = [key["keyId"] for key in keys if key is not None]
    assert sorted(given) == list(range(1, KEYS + 1))  # each key once, none lost
    assert keys.count(None) == TAKERS - KEYS
    assert apis[1].count(bob) == 0
