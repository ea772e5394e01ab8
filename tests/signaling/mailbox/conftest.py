"""Mailbox fixtures: licensed people whose roots a real daphne trusts, and a small client of the
mailbox's HTTP and WebSocket contract."""

from __future__ import annotations

import asyncio
import base64
import functools
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certificates.x509tools import to_pem
from tests.certificates import pki
from tests.harness import http_json
from tests.mesh.conftest import topology  # noqa: F401 - the fixture, for test_mesh_netns
from tests.signaling import wsclient
from tests.signaling.conftest import SignalingDaphne, _start
from tests.signaling.mailbox.signal_client import SignalDevice
from tests.signaling.stationdb import off_loop, trust_roots

# Registration nonces are rate limited per address, and every test registers from 127.0.0.1.
OPEN = {"MESHSITE_MAILBOX_REGISTER_RATE": "0"}


@functools.cache
def person(callsign: str) -> tuple[pki.Identity, pki.Identity]:
    """(root, operator) of a Meshsite chain for `callsign` (made once per test session)."""
    return pki.meshsite_chain(callsign, "ed25519")


PEOPLE = ("DL1BOB", "W1ALI", "G4CAR", "M0MAL")


def trusting(process: SignalingDaphne) -> SignalingDaphne:
    trust_roots(process, *[to_pem(person(callsign)[0].cert) for callsign in PEOPLE])
    return process


def mailbox_daphne(**env: str):
    """A module-scoped daphne with `env`, trusting the roots of PEOPLE."""

    @pytest.fixture(scope="module")
    def fixture(signaling_dir: Path) -> Iterator[SignalingDaphne]:
        process = _start(signaling_dir, {**OPEN, **env})
        try:
            trusting(process)
        except BaseException:
            process.stop()
            raise
        yield process
        process.stop()

    return fixture


class Mailbox:
    """The mailbox API of one station (`url`), as a device would use it."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.ws_base = "ws" + self.url[4:]

    def call(self, method: str, path: str, body: Any = None, token: str = "",
             timeout: float = 30) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return http_json(self.url + path, method=method, body=body, headers=headers,
                         timeout=timeout)

    def nonce(self) -> dict[str, Any]:
        status, body = self.call("POST", "/api/mailbox/devices/nonce")
        assert status == 200, body
        return body

    def register(self, callsign: str, device: SignalDevice | None = None,
                 who: pki.Identity | None = None) -> SignalDevice:
        device = device or SignalDevice()
        status, body = self.call("POST", "/api/mailbox/devices",
                                 device.registration(who or person(callsign)[1], self.nonce()))
        assert status == 201, body
        assert body["callsign"] == callsign
        device.token, device.device_id, device.callsign = (body["token"], body["deviceId"],
                                                           callsign)
        return device

    def count(self, device: SignalDevice) -> int:
        status, body = self.call("GET", "/api/mailbox/keys", token=device.token)
        assert status == 200, body
        return body["oneTimePreKeyCount"]

    def bundle(self, device: SignalDevice, callsign: str, which: str = "*") -> tuple[int, Any]:
        return self.call("GET", f"/api/mailbox/keys/{callsign}/{which}", token=device.token)

    def send(self, device: SignalDevice, callsign: str, messages: list[dict[str, Any]],
             **extra: Any) -> tuple[int, Any]:
        body = {"messages": messages, "timestamp": int(time.time() * 1000), **extra}
        return self.call("PUT", f"/api/mailbox/messages/{callsign}", body, token=device.token)

    async def socket(self, device: SignalDevice) -> Any:
        ws = await wsclient.ws_connect(self.ws_base + "/ws/mailbox")
        await wsclient.send(ws, {"type": "auth", "token": device.token})
        return ws


def opaque(recipient: SignalDevice, size: int = 64, kind: int = 1) -> dict[str, Any]:
    """An envelope of random bytes for one device (the station cannot tell it from a real one)."""
    return {"deviceId": recipient.device_id, "registrationId": recipient.registration_id,
            "type": kind, "content": base64.b64encode(secrets.token_bytes(size)).decode()}


async def drain(ws: Any, timeout: float = 10) -> list[dict[str, Any]]:
    """Frames up to and including `queue_empty`."""
    frames = []
    while True:
        frame = await wsclient.recv(ws, timeout)
        frames.append(frame)
        if frame.get("type") == "queue_empty":
            return frames


async def envelopes_until(ws: Any, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    """The next `count` envelopes (other frames are skipped)."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            frame = await wsclient.recv(ws, timeout)
            if frame.get("type") == "envelope":
                out.append(frame)
    return out


__all__ = ["Mailbox", "drain", "envelopes_until", "mailbox_daphne", "off_loop", "opaque",
           "person"]
