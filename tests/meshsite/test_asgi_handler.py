"""The web process's Django handler (`meshsite.asgi`): a finished request leaves no reference
cycle behind, so it is freed as soon as it ends, not when the cyclic collector next runs (rarely
in a web process: see the thresholds in meshsite/asgi.py). In-process, with the collector off;
and in a real daphne, whose requests each run their sync code in a thread of their own and so
each opened a database connection it never closed (a cycle too, holding SQLite's memory).

Django 5.2's own handler left every request that daphne reported finished (daphne sends
`http.disconnect` as soon as the last body byte is out) in a cycle through its RequestAborted;
with the connections, a relay's daphne held megabytes between collections
(bench/routing/fetch.py)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIRequest

from meshsite.asgi import django_asgi_app
from tests.harness import DaphneProcess, http_json, migrate, station_env
from tests.mesh.stations import wait_for

REQUESTS = 30


def http_scope(path: str) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
            "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"application/json")]}


async def get(path: str, query: bytes = b"") -> tuple[int, bytes]:
    """One request as daphne makes it: the body, then `http.disconnect` as soon as the last
    part of the response was sent (daphne's `WebRequest.finish`)."""
    inbox: asyncio.Queue = asyncio.Queue()
    inbox.put_nowait({"type": "http.request", "body": b"", "more_body": False})
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            inbox.put_nowait({"type": "http.disconnect"})

    await django_asgi_app({**http_scope(path), "query_string": query}, inbox.get, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def still_held(marker: str) -> list[str]:
    """This test's requests (by the marker in their query string) and the RequestAborted
    they raised that are still in memory. Other tests of the same run may keep requests of
    their own (a client's response names its request): those are not counted."""
    def ours(thing: object) -> bool:
        # type(), not isinstance(): the heap holds dead weak proxies, which isinstance() trips on
        return type(thing) is ASGIRequest and marker in thing.META.get("QUERY_STRING", "")

    held = []
    for thing in gc.get_objects():
        if ours(thing):
            held.append("ASGIRequest")
        elif type(thing) is RequestAborted and any(
                ours(local) for frame in _frames(thing.__traceback__)
                for local in frame.f_locals.values()):
            held.append("RequestAborted")
    return held


def _frames(traceback):
    while traceback is not None:
        yield traceback.tb_frame
        traceback = traceback.tb_next


@pytest.mark.django_db(transaction=True)
async def test_a_finished_request_is_freed_without_the_cycle_collector():
    marker = f"freed={uuid.uuid4().hex}"
    status, body = await get("/api/mesh/ping", marker.encode())  # pays imports and caches
    assert status == 200, body
    gc.collect()
    assert still_held(marker) == []
    gc.disable()
    try:
        for _ in range(5):
            status, body = await get("/api/mesh/ping", marker.encode())
            assert status == 200, body
        assert still_held(marker) == [], "finished requests wait for the cyclic collector"
    finally:
        gc.enable()


def open_on(pid: int, path: str) -> int:
    """How many of process `pid`'s descriptors are open on `path`."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}") == path
    return count


@pytest.mark.integration
def test_a_web_process_keeps_no_database_connection_of_a_finished_request(tmp_path: Path):
    env = station_env(tmp_path, REDIS_URL=settings.REDIS_URL)
    migrate(tmp_path, env)
    database = str((tmp_path / "db.sqlite3").resolve())
    web = DaphneProcess(tmp_path, env=env).start()
    try:
        for _ in range(REQUESTS):  # each reads the database in a thread of its own
            status, body = http_json(web.url + "/api/status")
            assert status == 200, body
        # A request's connection is closed when its response is (just after the client has
        # it); one left open stays until a collection, tens of thousands of objects away: one
        # descriptor per request. What may stay open is a connection in each of the few
        # threads of daphne's that are not a request's.
        wait_for(lambda: open_on(web.pid, database) <= 6, 30,
                 f"at most 6 of daphne's descriptors on the database after {REQUESTS} requests")
    finally:
        web.stop()
