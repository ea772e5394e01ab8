"""The web process's Django handler (`meshsite.asgi`) in-process: a finished request leaves no
reference cycle behind, so it is freed as soon as it ends, not when the cyclic collector next
runs (rarely in a web process: see the thresholds in meshsite/asgi.py).

Django 5.2's own handler left every request that daphne reported finished (daphne sends
`http.disconnect` as soon as the last body byte is out) in a cycle through its RequestAborted;
a relay's daphne held megabytes of them between collections (bench/routing/fetch.py)."""

from __future__ import annotations

import asyncio
import gc

import pytest
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIRequest

from meshsite.asgi import django_asgi_app

pytestmark = pytest.mark.django_db(transaction=True)


def http_scope(path: str) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
            "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"application/json")]}


async def get(path: str) -> tuple[int, bytes]:
    """One request as daphne makes it: the body, then `http.disconnect` as soon as the last
    part of the response was sent (daphne's `WebRequest.finish`)."""
    inbox: asyncio.Queue = asyncio.Queue()
    inbox.put_nowait({"type": "http.request", "body": b"", "more_body": False})
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            inbox.put_nowait({"type": "http.disconnect"})

    await django_asgi_app(http_scope(path), inbox.get, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def still_held() -> list[str]:
    return [type(o).__name__ for o in gc.get_objects()
            if isinstance(o, ASGIRequest | RequestAborted)]


async def test_a_finished_request_is_freed_without_the_cycle_collector():
    status, body = await get("/api/mesh/ping")  # the first one pays imports and caches
    assert status == 200, body
    gc.collect()
    assert still_held() == []
    gc.disable()
    try:
        for _ in range(5):
            status, body = await get("/api/mesh/ping")
            assert status == 200, body
        assert still_held() == [], "finished requests wait for the cyclic collector"
    finally:
        gc.enable()
