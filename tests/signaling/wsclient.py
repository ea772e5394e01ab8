"""Small helpers over `websockets` for the signaling protocol tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

OPEN_SOCKETS: list[ClientConnection] = []


async def ws_connect(url: str, **kwargs: Any) -> ClientConnection:
    """A client WebSocket, closed by the `close_sockets` fixture after the test."""
    ws = await connect(url, open_timeout=10, max_size=2**21, **kwargs)
    OPEN_SOCKETS.append(ws)
    return ws


async def peerjs(base: str, peer_id: str | None, token: str | None = "tok",  # noqa: S107
                 key: str | None = "peerjs", *, expect_open: bool = True) -> ClientConnection:
    """Connect to `{base}/peerjs/peerjs?...`; with `expect_open`, consume the OPEN."""
    params = [f"{name}={value}" for name, value in (("key", key), ("id", peer_id),
                                                     ("token", token)) if value is not None]
    ws = await ws_connect(f"{base}/peerjs/peerjs?" + "&".join(params) + "&version=1.5.5")
    if expect_open:
        assert await recv(ws) == {"type": "OPEN"}
    return ws


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    return json.loads(raw)


async def send(ws: ClientConnection, frame: dict[str, Any] | str) -> None:
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))


async def silent(ws: ClientConnection, wait: float = 0.5) -> None:
    """Assert nothing arrives for `wait` seconds (and the socket stays open)."""
    try:
        raw = await asyncio.wait_for(ws.recv(), wait)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected frame: {raw!r}")


async def closed(ws: ClientConnection, timeout: float = 5.0) -> int | None:
    """Wait for the server to close `ws` (draining frames); its close code."""
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code


async def native(base: str, *, room: str | None = None, callsign: str = "GUEST",
                 **fields: Any) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect to /ws/signal and REGISTER; the socket and the REGISTERED frame."""
    ws = await ws_connect(f"{base}/ws/signal")
    frame: dict[str, Any] = {"type": "REGISTER", "callsign": callsign, **fields}
    if room is not None:
        frame["room"] = room
    await send(ws, frame)
    registered = await recv(ws)
    assert registered["type"] == "REGISTERED", registered
    return ws, registered


async def expect_type(ws: ClientConnection, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next frame, which must be of type `kind`."""
    frame = await recv(ws, timeout)
    assert frame.get("type") == kind, frame
    return frame
