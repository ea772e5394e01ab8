"""Helpers for mesh integration tests: a test PKI, provisioning a station subprocess (trust root
and claim, as an operator would at the console), and a test client that speaks /ws/coordinate
as a station of its own (with any credential, good or forged)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from websockets import ConnectionClosed

from mesh import protocol
from tests.certificates import pki
from tests.harness import REPO, StationProcess, migrate

_DJANGO_SCRIPT = """
import json, sys
import django
django.setup()
{body}
"""

PROVISION = """
import base64
from cryptography.hazmat.primitives import serialization
from certificates import services as s
from certificates.x509tools import sign_message
spec = json.load(open(sys.argv[1]))
for root in spec["roots"]:
    s.trustroot_add(certificate=root)
token = ""
if spec.get("certificate"):
    key = serialization.load_pem_private_key(spec["key"].encode(), None)
    nonce = "console-" + spec["callsign"]
    signature = sign_message(key, s.claim_message(nonce))
    token = s.station_claim(certificate=spec["certificate"], chain=spec["chain"],
                            callsign=spec["callsign"], nonce=nonce,
                            signature=base64.b64encode(signature).decode(),
                            nonce_checked=True).access_token
print("provisioned", s.station_credential()["stationId"] if spec.get("certificate") else "")
print("owner-token", token)
"""


def run_django(station: StationProcess, body: str, *args: str) -> str:
    """Run Python with Django set up in the station's environment (its data dir)."""
    result = subprocess.run([sys.executable, "-c", _DJANGO_SCRIPT.format(body=body), *args],
                            env=station.env, cwd=REPO, capture_output=True, text=True,
                            timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"script failed in {station.data_dir}:\n{result.stderr[-3000:]}")
    return result.stdout


def provision(station: StationProcess, *, roots: list[pki.Identity],
              owner: pki.Identity | None, callsign: str = "") -> str:
    """Trust `roots`; with an `owner`, claim the station for `callsign`. Returns the owner's
    API token from the claim ("" without an owner)."""
    migrate(station.data_dir, station.env)
    spec = {"roots": [r.pem for r in roots]}
    if owner is not None:
        spec.update(certificate=owner.pem, chain=owner.chain_pem, callsign=callsign,
                    key=pki.private_pem(owner.key).decode())
    path = Path(station.data_dir) / "provision.json"
    path.write_text(json.dumps(spec))
    output = run_django(station, PROVISION, str(path))
    return next((line.split(" ", 1)[1].strip() for line in output.splitlines()
                 if line.startswith("owner-token ")), "")


def add_certificate(station: StationProcess, identity: pki.Identity) -> str:
    body = ("from certificates import services as s\n"
            "row, _ = s.certificate_add(certificate=sys.argv[1], chain=json.loads(sys.argv[2]))\n"
            "print(row.fingerprint)")
    return run_django(station, body, identity.pem, json.dumps(identity.chain_pem)).strip()


def blacklist(station: StationProcess, fingerprint: str, reason: str = "test") -> None:
    body = ("from certificates import services as s\n"
            "s.certificate_blacklist(fingerprint=sys.argv[1], reason=sys.argv[2], "
            "created_by='owner', source='console')")
    run_django(station, body, fingerprint, reason)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1) -> float:
    started = time.monotonic()
    last = None
    while time.monotonic() - started < timeout:
        last = predicate()
        if last:
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


async def until(predicate, timeout: float = 60.0, what: str = "condition",
                interval: float = 0.02) -> None:
    """`wait_for` for a test running in an event loop: polls without blocking the loop."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(interval)


class Inbox:
    """Every frame a test's WebSocket receives, read in the background, so that a test waits
    (with `wait_for`) for the frame that meets its condition, never takes "the next one": a
    periodic frame sent before the event under test may arrive first on a busy machine."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[dict] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                self.frames.append(json.loads(raw))

    async def wait_for(self, predicate, timeout: float, what: str) -> dict:
        """The first frame received so far or within `timeout` that `predicate` accepts; the
        polling runs in a thread so this loop keeps reading."""
        found: list[dict] = []

        def seen() -> bool:
            found[:] = [frame for frame in list(self.frames) if predicate(frame)][:1]
            return bool(found)

        await asyncio.to_thread(wait_for, seen, timeout, what)
        return found[0]

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@dataclass
class FakeStation:
    """A station of the test's own: its own Ed25519 key and a credential from `owner`."""

    owner: pki.Identity
    callsign: str
    key: ed25519.Ed25519PrivateKey
    station_id: str
    credential: dict[str, Any]

    @classmethod
    def make(cls, owner: pki.Identity, callsign: str) -> FakeStation:
        from certificates.services import delegation_message
        from certificates.x509tools import station_id_for

        key = ed25519.Ed25519PrivateKey.generate()
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        public_b64 = base64.b64encode(raw).decode()
        station_id = station_id_for(raw)
        nonce = secrets.token_urlsafe(16)
        delegation = owner.sign(delegation_message(station_id=station_id,
                                                   public_key_b64=public_b64, nonce=nonce))
        credential = {"stationId": station_id, "publicKey": public_b64, "callsign": callsign,
                      "certificate": owner.pem, "chain": owner.chain_pem, "nonce": nonce,
                      "delegation": delegation}
        return cls(owner, callsign, key, station_id, credential)

    def envelope(self, type_: str, payload: dict, *, request: bool = True) -> dict:
        return protocol.build_envelope(type_=type_, sender=self.station_id, payload=payload,
                                       sign=self.key.sign, ttl=10, request=request)

    async def handshake(self, ws: Any) -> dict:
        """Prove ourselves; returns the server's WELCOME or REFUSED frame."""
        hello = json.loads(await ws.recv())
        if hello["type"] != "HELLO":
            return hello
        proof = self.key.sign(protocol.proof_message("client", hello["nonce"], self.station_id,
                                                     hello["stationId"]))
        await ws.send(json.dumps({"type": "AUTH", "credential": self.credential,
                                  "nonce": protocol.new_nonce(),
                                  "proof": protocol.b64encode(proof)}))
        return json.loads(await ws.recv())

    async def answer_to(self, ws: Any, message_id: str, timeout: float = 10) -> dict:
        """The REPLY or ERROR for `message_id`, skipping other traffic (announces, syncs)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            if frame.get("re") == message_id:
                return frame
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer to {message_id}")
