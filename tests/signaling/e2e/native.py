"""A minimal asyncio client for the native `/ws/signal` protocol, for end-to-end tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


class NativeSignalClient:
    """One WebSocket to `/ws/signal`: send frames, wait for frames of a given type.

    Frames that arrive while nobody waits for them are kept in arrival order, so a test can
    ask for a type after the frame came in.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: ClientConnection | None = None
        self.client_id: str | None = None
        self.received: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> NativeSignalClient:
        self.ws = await connect(self.url, open_timeout=10, max_size=2**20)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()

    async def _read(self) -> None:
        assert self.ws is not None
        async for raw in self.ws:
            self.received.append(json.loads(raw))
            self._arrived.set()

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(frame))

    async def expect(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first frame of type `kind` not yet taken (removed from `received`)."""
        async with asyncio.timeout(timeout):
            while True:
                for index, frame in enumerate(self.received):
                    if frame.get("type") == kind:
                        return self.received.pop(index)
                if self._reader is not None and self._reader.done():
                    raise AssertionError(f"socket closed while waiting for {kind}; "
                                         f"got {self.received}")
                self._arrived.clear()
                await self._arrived.wait()

    async def register(self, callsign: str = "GUEST", **fields: Any) -> dict[str, Any]:
        await self.send({"type": "REGISTER", "callsign": callsign, **fields})
        registered = await self.expect("REGISTERED")
        self.client_id = registered["clientId"]
        return registered
