"""Per-client message rate (token bucket), abuse closes (1008) and connection attempts per
address per minute, counted in Redis."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.signaling.wsclient import closed, expect_type, native, peerjs, recv, send, silent

pytestmark = pytest.mark.integration


@pytest.fixture
def limited(daphne_factory):
    return daphne_factory(MESHSITE_SIGNALING_RATE="2", MESHSITE_SIGNALING_BURST="5",
                          MESHSITE_SIGNALING_MAX_WARNINGS="3",
                          MESHSITE_SIGNALING_CONNECT_RATE="6")


async def test_rate_limit_native_errors_then_closes_1008_peerjs_drops_then_closes(limited):
    base = limited.ws_url
    alice, _reg = await native(base, room="rate")  # REGISTER spends one token
    for _ in range(4):
        await send(alice, {"type": "PING"})
    for _ in range(4):
        assert await recv(alice) == {"type": "PONG"}
    await send(alice, {"type": "PING"})
    frame = await expect_type(alice, "ERROR")
    assert frame["error"] == "rate_limited" and "MESHSITE_SIGNALING_RATE" in frame["details"]
    await send(alice, {"type": "PING"})
    await send(alice, {"type": "PING"})
    assert await closed(alice) == 1008

    p = await peerjs(base, "p", "t")
    q = await peerjs(base, "q", "t")
    for n in range(5):
        await send(p, {"type": "OFFER", "dst": "q", "payload": n})
    assert [(await recv(q))["payload"] for _ in range(5)] == [0, 1, 2, 3, 4]
    await send(p, {"type": "OFFER", "dst": "q", "payload": 5})
    await silent(q, 0.2)  # dropped; no ERROR to the peerjs client (it would be fatal)
    await silent(p, 0.1)
    await send(p, {"type": "OFFER", "dst": "q", "payload": 6})
    await send(p, {"type": "OFFER", "dst": "q", "payload": 7})
    assert await closed(p) == 1008


async def one_clock_minute_left(seconds: float) -> None:
    """The station counts connection attempts per clock minute (a Redis key per address and
    minute): wait until at least `seconds` of the current minute are left, so that a count
    the test makes falls in one window."""
    while 60 - time.time() % 60 < seconds:
        await asyncio.sleep(0.2)


async def test_connection_attempts_per_address_per_minute(limited):
    base = limited.ws_url
    await one_clock_minute_left(20)
    sockets = []
    for n in range(3):
        sockets.append(await peerjs(base, f"id{n}", "t"))
        sockets.append((await native(base))[0])
    refused = await peerjs(base, "id9", "t", expect_open=False)
    frame = await recv(refused)
    assert frame["type"] == "ERROR" and "Too many connection attempts" in frame["payload"]["msg"]
    assert await closed(refused) == 1008
    from tests.signaling.wsclient import ws_connect

    refused = await ws_connect(f"{base}/ws/signal")
    assert (await expect_type(refused, "ERROR"))["error"] == "too_many_connections"
    assert await closed(refused) == 1008
