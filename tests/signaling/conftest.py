"""Fixtures of the signaling tests: real daphne processes on the test session's Redis.

Each daphne gets short timers through its environment and server-side pings every second, so
timeouts and dead sockets show within a test's patience.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.harness import REPO, DaphneProcess, free_port, migrate, station_env
from tests.mesh.stations import wait_for
from tests.signaling import wsclient

FAST = {
    "MESHSITE_LOG_LEVEL": "warning",
    "MESHSITE_SIGNALING_PRESENCE_REFRESH": "0.2",
    "MESHSITE_SIGNALING_PRESENCE_TTL": "2",
    "MESHSITE_SIGNALING_CONNECT_RATE": "0",
}


class SignalingDaphne(DaphneProcess):
    """A daphne like the harness's, with server pings (`--ping-interval/--ping-timeout`, which
    runstation passes from the settings) and readiness judged on the PeerJS root, which depends
    on nothing but this app."""

    ping_interval = 1
    ping_timeout = 1

    def start(self, timeout: float = 60) -> SignalingDaphne:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed by the child's exit
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
             "--ping-interval", str(self.ping_interval), "--ping-timeout",
             str(self.ping_timeout), "meshsite.asgi:application"],
            env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited:\n{self.output()[-4000:]}")
            try:
                with urllib.request.urlopen(self.url + "/peerjs/", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not answer in {timeout}s:\n{self.output()[-4000:]}")

    def sessions(self) -> list[dict]:
        """The SignalingSession rows this process wrote, read straight from its database (its
        data dir's SQLite file, or its own database on the test run's PostgreSQL server).
        Times come as SQLite keeps them on both: naive UTC text."""
        query = "SELECT * FROM signaling_signalingsession ORDER BY id"
        if self.env.get("DATABASE_URL"):
            import datetime as dt

            import psycopg
            from psycopg.rows import dict_row

            with psycopg.connect(self.env["DATABASE_URL"], row_factory=dict_row) as db:
                rows = db.execute(query).fetchall()
            return [{key: value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
                     if isinstance(value, dt.datetime) else value
                     for key, value in row.items()} for row in rows]
        import sqlite3

        with contextlib.closing(sqlite3.connect(self.data_dir / "db.sqlite3")) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(query).fetchall()]


@pytest.fixture(scope="session")
def signaling_dir(embedded_redis: str) -> Path:
    data_dir = Path(tempfile.mkdtemp(prefix="meshsite-sig-"))
    migrate(data_dir, station_env(data_dir, REDIS_URL=settings.REDIS_URL, **FAST))
    return data_dir


def _start(data_dir: Path, env: dict[str, str]) -> SignalingDaphne:
    full = station_env(data_dir, REDIS_URL=settings.REDIS_URL, **{**FAST, **env})
    return SignalingDaphne(data_dir, port=free_port(), env=full).start()


DaphneFactory = Callable[..., SignalingDaphne]


@pytest.fixture
def daphne_factory(signaling_dir: Path) -> Iterator[DaphneFactory]:
    """Start daphne processes with extra settings; all are stopped after the test."""
    started: list[SignalingDaphne] = []

    def make(**env: str) -> SignalingDaphne:
        process = _start(signaling_dir, env)
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()


def module_daphne(**env: str) -> Callable[..., Iterator[SignalingDaphne]]:
    """A module-scoped fixture: one daphne with `env` for every test of a file."""

    @pytest.fixture(scope="module")
    def fixture(signaling_dir: Path) -> Iterator[SignalingDaphne]:
        process = _start(signaling_dir, env)
        yield process
        process.stop()

    return fixture


@pytest.fixture(autouse=True)
async def close_sockets() -> AsyncIterator[None]:
    """Close every client socket a test opened, so no id outlives its test."""
    yield
    while wsclient.OPEN_SOCKETS:
        ws = wsclient.OPEN_SOCKETS.pop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 2)


def module_pair(**env: str) -> Callable[..., Iterator[tuple[SignalingDaphne, SignalingDaphne]]]:
    """A module-scoped fixture: two daphne processes with `env` on the one Redis (and the one
    data dir), for relay, presence and limits across processes."""

    @pytest.fixture(scope="module")
    def fixture(signaling_dir: Path) -> Iterator[tuple[SignalingDaphne, SignalingDaphne]]:
        first = _start(signaling_dir, env)
        try:
            second = _start(signaling_dir, env)
        except BaseException:
            first.stop()
            raise
        yield first, second
        first.stop()
        second.stop()

    return fixture


def queued(peer_id: str) -> int:
    """Frames the hubs hold in Redis for a PeerJS id that is not connected."""
    from meshsite.redisconn import get_redis
    from signaling.hub import KEY_PREFIX

    return get_redis().llen(f"{KEY_PREFIX}q:{peer_id}")


async def hubs_live(*processes: SignalingDaphne, timeout: float = 10) -> list[str]:
    """Wait until every process's hub is started and fresh in the presence set; their names.

    A hub starts on its process's first WebSocket, and each test begins with a flushed Redis
    that a hub notices only at its next refresh: until then a claim on another process would
    take its ids for those of a dead process. A throwaway REGISTER on each names the hub."""
    from signaling.selectors import alive_processes, client_find

    names = []
    for process in processes:
        # A room of its own: in a shared one, the PEER_LEFT of an earlier check's socket (on
        # either process) can arrive before this socket's REGISTERED.
        room = f"hub-check-{uuid.uuid4().hex[:8]}"
        ws, registered = await wsclient.native(process.ws_url, room=room)
        found = client_find(protocol="signal", peer_id=registered["clientId"])
        assert found is not None, registered
        names.append(found["process"])
        await ws.close()
    await asyncio.to_thread(wait_for, lambda: set(names) <= set(alive_processes()), timeout,
                            f"processes {names} live in the presence set", 0.05)
    return names
