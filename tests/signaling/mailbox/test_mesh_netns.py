"""The mailbox across the mesh, on a line of three whole stations A - B - C in network namespaces
joined only by cables: Bob registers at C, Alice at A (two hops away) learns Bob's home from
gossip, takes his bundle through B, runs X3DH and a Double Ratchet (the `x3dh` and
`doubleratchet` packages) and sends; Bob reads it over /ws/mailbox at C, decrypts, acks; his
queue is empty and his one-time key count dropped by one. Then relay B is killed with SIGKILL
while Alice's second envelope crosses it: A keeps it (202), and once B is back and the route
heals it arrives, once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.certificates import pki
from tests.mesh.netns import namespace_pids
from tests.mesh.stations import wait_for
from tests.mesh.topology import Topology
from tests.signaling.mailbox.conftest import Mailbox
from tests.signaling.mailbox.signal_client import SignalDevice

pytestmark = [pytest.mark.integration, pytest.mark.netns]

CALLS = ["DL1MA", "DL1MB", "DL1MC"]
A, B, C = range(3)
ENV = {"MESHSITE_MESH_RECONNECT_MAX": "2", "MESHSITE_MESH_DIAL_LEARNT_PEERS": "off",
       "MESHSITE_MESH_GOSSIP_INTERVAL": "3", "MESHSITE_MAILBOX_FORWARD_INTERVAL": "2",
       "MESHSITE_MAILBOX_REGISTER_RATE": "0"}
WS_SCRIPT = Path(__file__).resolve().parent / "ws_netns.py"


class NetnsMailbox(Mailbox):
    """The mailbox API of station `i` of a topology, called from inside its namespace."""

    def __init__(self, line: Topology, i: int) -> None:
        super().__init__(line.stations[i].url)
        self.line, self.i = line, i

    def call(self, method: str, path: str, body: Any = None, token: str = "",
             timeout: float = 30) -> tuple[int, Any]:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self.line.request(self.i, path, method=method, headers=headers,
                                     body=b"" if body is None else json.dumps(body).encode(),
                                     timeout=timeout)
        return response.status, response.json()

    def session(self, device: SignalDevice, *args: str) -> list[dict[str, Any]]:
        """One /ws/mailbox session of `device` from inside the namespace: its frames."""
        result = subprocess.run(
            ["ip", "netns", "exec", self.line.namespace(self.i), sys.executable,
             str(WS_SCRIPT), self.ws_base + "/ws/mailbox", device.token, *args],
            capture_output=True, text=True, timeout=60, check=False)
        answer = json.loads(result.stdout or "{}") if result.returncode == 0 else {
            "error": result.stderr[-2000:]}
        assert "frames" in answer, answer
        return answer["frames"]


def value_of(probe: Any, timeout: float, what: str, interval: float) -> Any:
    """`wait_for` a true answer from `probe`; that answer."""
    found: list[Any] = []

    def seen() -> bool:
        found[:] = [probe()]
        return bool(found[0])

    wait_for(seen, timeout, what, interval)
    return found[0]


def envelopes(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame.get("type") == "envelope"]


def lan_route(line: Topology, i: int, j: int) -> bool:
    status, body = line.get_json(i, f"/api/routes?destination={CALLS[j]}")
    routes = body.get("routes", []) if isinstance(body, dict) else []
    return status == 200 and bool(routes) and bool((routes[0].get("lanOnly") or {})
                                                   .get("nextHop"))


def kill_9(line: Topology, i: int) -> None:
    """SIGKILL every process of station i at once (a power cut), by PID."""
    ns = line.namespace(i)
    for pid in namespace_pids(ns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not namespace_pids(ns), 20, f"{CALLS[i]}'s processes gone", 0.1)
    line.stations[i].process.wait(10)


@pytest.mark.timeout(600)
async def test_two_hops_signal_session_and_a_relay_killed_mid_way(topology) -> None:
    import asyncio

    line = await asyncio.to_thread(topology, CALLS, [(A, B), (B, C)], env=ENV)
    await asyncio.to_thread(line.add_peer, A, B)
    await asyncio.to_thread(line.add_peer, B, C)
    await asyncio.to_thread(wait_for, lambda: lan_route(line, A, C) and lan_route(line, C, A),
                            90, "LAN routes A <-> C", 0.5)
    at_a, at_c = NetnsMailbox(line, A), NetnsMailbox(line, C)
    bob_id = pki.issue(line.pki_root, callsign="DL1BOB")
    alice_id = pki.issue(line.pki_root, callsign="W1ALI")
    bob = await asyncio.to_thread(at_c.register, "DL1BOB", SignalDevice(prekeys=10), bob_id)
    alice = await asyncio.to_thread(at_a.register, "W1ALI", SignalDevice(), alice_id)
    assert await asyncio.to_thread(at_c.count, bob) == 10

    # Bob's home reaches A by gossip (through B); then his bundle comes from C through B.
    def bundle() -> dict[str, Any] | None:
        status, body = at_a.bundle(alice, "DL1BOB")
        return body if status == 200 else None

    taken = await asyncio.to_thread(value_of, bundle, 60, "Bob's bundle at A", 1.0)
    [device] = taken["devices"]
    assert device["oneTimePreKey"] is not None
    first = await alice.encrypt_first(taken, device, b"73 de W1ALI, QSL?")
    status, sent = await asyncio.to_thread(at_a.send, alice, "DL1BOB", [first])
    assert status == 200, sent
    assert sent["forwarded"] == "accepted" and len(sent["ids"]) == 1

    # The home station fetches the batch in its worker: the envelope is there in a moment.
    [envelope] = await asyncio.to_thread(value_of, lambda: envelopes(at_c.session(bob)), 30,
                                         "Alice's envelope at C", 0.5)
    assert (envelope["id"], envelope["source"], envelope["messageType"]) == (
        sent["ids"][0], "W1ALI", 3)
    assert await bob.decrypt_first(envelope) == b"73 de W1ALI, QSL?"
    # Not acked yet: delivered again; this time acked, and then the queue is empty.
    frames = await asyncio.to_thread(at_c.session, bob, "--ack", envelope["id"])
    assert [f["id"] for f in envelopes(frames)] == [envelope["id"]]
    await asyncio.to_thread(wait_for, lambda: at_c.session(bob) == [{"type": "queue_empty"}],
                            20, "Bob's queue empty after the ack", 0.5)
    assert await asyncio.to_thread(at_c.count, bob) == 9

    # Relay B dies (kill -9) while the next envelope crosses it. The B-C cable is slow, so the
    # FORWARD is still on its way when B goes.
    second = await alice.encrypt_next("DL1BOB", device["deviceId"], device["registrationId"],
                                      b"still there?")
    await asyncio.to_thread(line.shape, B, C, delay_ms=2000)
    answer: dict[str, Any] = {}

    def put() -> None:
        answer["reply"] = at_a.send(alice, "DL1BOB", [second])

    sender = threading.Thread(target=put)
    sender.start()
    await asyncio.to_thread(
        wait_for, lambda: line.stations[A].query(
            "SELECT batch_id FROM signaling_mailboxoutbound"), 20, "the batch kept at A", 0.05)
    began = time.monotonic()
    await asyncio.to_thread(kill_9, line, B)
    await asyncio.to_thread(sender.join, 60)
    status, body = answer["reply"]
    assert status == 202 and body["forwarded"] == "queued", (status, body)
    kept = line.stations[A].query("SELECT batch_id, attempts, last_error "
                                  "FROM signaling_mailboxoutbound")
    assert [row["batch_id"] for row in kept] == [body["batch"]], kept
    assert envelopes(await asyncio.to_thread(at_c.session, bob)) == []

    await asyncio.to_thread(line.shape, B, C, delay_ms=0)
    line.stations[B].start()
    await asyncio.to_thread(line.stations[B].wait_ready, 120)

    def arrived() -> list[dict[str, Any]]:
        return envelopes(at_c.session(bob))

    [late] = await asyncio.to_thread(value_of, arrived, 180, "the kept envelope at C", 1.0)
    healed = time.monotonic() - began
    assert late["source"] == "W1ALI" and late["messageType"] == 1
    assert await bob.decrypt_next(late) == b"still there?"
    frames = await asyncio.to_thread(at_c.session, bob, "--ack", late["id"])
    assert [f["id"] for f in envelopes(frames)] == [late["id"]]  # once: no duplicate
    await asyncio.to_thread(wait_for, lambda: at_c.session(bob) == [{"type": "queue_empty"}],
                            20, "Bob's queue empty again", 0.5)
    await asyncio.to_thread(
        wait_for, lambda: not line.stations[A].query("SELECT id FROM signaling_mailboxoutbound"),
        30, "A no longer keeps the batch (the home station acknowledged it)", 0.5)
    print(f"kept envelope delivered {healed:.1f} s after the relay was killed")
