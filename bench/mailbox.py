"""Mailbox figures: `python -m bench.mailbox [--envelopes N] [--senders N] [--rounds N]`.

Three real stations (`runstation`, own data dirs, claimed under a bench PKI) in a line on
loopback, S0 - S1 - S2 (each adds its right-hand neighbour; no other dialling), with the mailbox's
rate limits off. Bob registers a device at S2 (his home), Alice at S0, two hops away.

Figures (printed; a benchmark, not a test):

- accepted: `--senders` threads PUT `--envelopes` envelopes (1 KiB of random bytes each, one per
  request) to Bob at S2: envelopes accepted per second (HTTP 200, stored, doorbell rung).
- delivered: Bob then connects to /ws/mailbox at S2 and reads them all, acking each as it
  arrives: envelopes delivered per second, from the auth frame to the last envelope, and to the
  moment the last ack was applied (the queue empty in S2's database).
- live delivery: with Bob connected, the same senders PUT again; envelopes per second from the
  first PUT to the last envelope on Bob's socket.
- two hops: with Bob connected at S2, Alice at S0 sends one envelope at a time
  (`--latency-samples`): the PUT's own time (the offer to the home station, answered with the
  ids) and the time until the envelope is on Bob's socket (the home station's worker fetches the
  batch through S1, then the doorbell); median and max.
- prekey takes under contention: `--rounds` times, Bob uploads 100 one-time prekeys and 20
  threads take bundles at S2 until 100 have come back with a key: takes per second (each an
  HTTP GET with its delete-and-check), and a check that no key was handed out twice.

The machine's load average is printed first: a busy 2-core machine makes every figure noisy.
Every process is started here and stopped by its PID; the data dirs are deleted unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from tests.certificates import pki
from tests.harness import StationProcess, http_json
from tests.mesh.stations import provision, wait_for
from tests.signaling.mailbox.signal_client import SignalDevice, random_key

CALLS = ["DB0MBA", "DB0MBB", "DB0MBC"]
ENV = {"MESHSITE_MESH_RECONNECT_MAX": "2", "MESHSITE_MESH_DIAL_LEARNT_PEERS": "off",
       "MESHSITE_MESH_ROUTE_INTERVAL": "4", "MESHSITE_MESH_GOSSIP_INTERVAL": "3",
       "MESHSITE_MAILBOX_FORWARD_INTERVAL": "2", "MESHSITE_MAILBOX_SEND_RATE": "0",
       "MESHSITE_MAILBOX_BUNDLE_RATE": "0", "MESHSITE_MAILBOX_BUNDLE_TARGET_RATE": "0",
       "MESHSITE_MAILBOX_REGISTER_RATE": "0", "MESHSITE_MAILBOX_QUEUE_CAP": "1000000",
       "MESHSITE_LOG_LEVEL": "warning"}
TAKERS = 20


class Api:
    def __init__(self, station: StationProcess) -> None:
        self.url = station.url
        self.ws = "ws" + station.url[4:] + "/ws/mailbox"

    def call(self, method: str, path: str, body: Any = None, token: str = "") -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return http_json(self.url + path, method=method, body=body, headers=headers, timeout=60)

    def register(self, who: pki.Identity, device: SignalDevice) -> SignalDevice:
        status, nonce = self.call("POST", "/api/mailbox/devices/nonce")
        assert status == 200, nonce
        status, body = self.call("POST", "/api/mailbox/devices",
                                 device.registration(who, nonce))
        assert status == 201, body
        device.token, device.device_id, device.callsign = (body["token"], body["deviceId"],
                                                           body["callsign"])
        return device


def envelope(to: SignalDevice, size: int = 1024) -> dict[str, Any]:
    return {"deviceId": to.device_id, "registrationId": to.registration_id, "type": 1,
            "content": base64.b64encode(secrets.token_bytes(size)).decode()}


def put_many(api: Api, sender: SignalDevice, to: SignalDevice, count: int, threads: int) -> float:
    """Seconds for `count` PUTs of one envelope each, from `threads` threads."""
    def one(_: int) -> None:
        status, body = api.call("PUT", f"/api/mailbox/messages/{to.callsign}",
                                {"messages": [envelope(to)], "timestamp": 1}, token=sender.token)
        assert status == 200, body

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - started


def queued(station: StationProcess) -> int:
    """Envelopes in the station's database (read straight from its SQLite file)."""
    with contextlib.closing(sqlite3.connect(Path(station.data_dir) / "db.sqlite3")) as db:
        return db.execute("SELECT count(*) FROM signaling_mailboxmessage").fetchone()[0]


async def read_all(api: Api, device: SignalDevice, count: int, station: StationProcess,
                   ready: threading.Event | None = None) -> tuple[float, float, int]:
    """(seconds from auth to the `count`-th envelope, to the last ack applied (the queue empty
    in the database: an ack still in flight when a socket closes is lost, and the envelope
    comes again), envelopes seen), acking each as it comes."""
    async with connect(api.ws, max_size=2**22) as ws:
        await ws.send(json.dumps({"type": "auth", "token": device.token}))
        started = time.perf_counter()
        seen = 0
        empty = ready is None
        while seen < count or not empty:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if frame["type"] == "envelope":
                seen += 1
                await ws.send(json.dumps({"type": "ack", "id": frame["id"]}))
            elif frame["type"] == "queue_empty":
                empty = True
                if ready is not None:
                    ready.set()
                    started = time.perf_counter()
        received = time.perf_counter() - started
        while await asyncio.to_thread(queued, station):
            await asyncio.sleep(0.02)
        return received, time.perf_counter() - started, seen


async def queue_left(api: Api, device: SignalDevice) -> int:
    async with connect(api.ws) as ws:
        await ws.send(json.dumps({"type": "auth", "token": device.token}))
        left = 0
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if frame["type"] == "queue_empty":
                return left
            left += 1


async def two_hops(at_a: Api, at_c: Api, alice: SignalDevice, bob: SignalDevice,
                   samples: int) -> tuple[list[float], list[float]]:
    puts, arrivals = [], []
    async with connect(at_c.ws, max_size=2**22) as ws:
        await ws.send(json.dumps({"type": "auth", "token": bob.token}))
        while json.loads(await ws.recv())["type"] != "queue_empty":
            pass
        for _ in range(samples):
            started = time.perf_counter()
            status, body = await asyncio.to_thread(
                at_a.call, "PUT", f"/api/mailbox/messages/{bob.callsign}",
                {"messages": [envelope(bob)], "timestamp": 1}, alice.token)
            assert status == 200, body
            puts.append(time.perf_counter() - started)
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if frame.get("type") == "envelope" and frame["id"] == body["ids"][0]:
                    arrivals.append(time.perf_counter() - started)
                    await ws.send(json.dumps({"type": "ack", "id": frame["id"]}))
                    break
    return puts, arrivals


def take_until(api: Api, bob: SignalDevice, taker: SignalDevice, wanted: int) -> tuple[int,
                                                                                    list[int]]:
    """`TAKERS` threads take bundles until `wanted` came with a key: (takes, key ids)."""
    got: list[int] = []
    lock = threading.Lock()
    takes = [0]

    def take() -> None:
        while True:
            with lock:
                if len(got) >= wanted:
                    return
            status, answer = api.call("GET", f"/api/mailbox/keys/{bob.callsign}/*",
                                      token=taker.token)
            assert status == 200, answer
            key = answer["devices"][0]["oneTimePreKey"]
            with lock:
                takes[0] += 1
                if key is not None:
                    got.append(key["keyId"])

    threads = [threading.Thread(target=take) for _ in range(TAKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return takes[0], got


def prekey_takes(api: Api, bob: SignalDevice, taker: SignalDevice, rounds: int) -> list[float]:
    rates = []
    for round_ in range(rounds):
        keys = [{"keyId": round_ * 100 + n, "publicKey": random_key()} for n in range(1, 101)]
        status, body = api.call("PUT", "/api/mailbox/keys", {"oneTimePreKeys": keys},
                                token=bob.token)
        assert status == 200 and body["oneTimePreKeyCount"] == 100, body
        started = time.perf_counter()
        takes, got = take_until(api, bob, taker, 100)
        took = time.perf_counter() - started
        assert len(got) == len(set(got)) == 100, "a one-time prekey was handed out twice"
        rates.append(takes / took)
        print(f"  round {round_ + 1}: {takes} takes by {TAKERS} threads in {took:.2f} s = "
              f"{takes / took:.0f} takes/s (100 distinct keys, {takes - 100} bundles without "
              "one)", flush=True)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mailbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envelopes", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} on "
          f"{os.cpu_count()} CPUs", flush=True)
    started = time.monotonic()
    root_dir = Path(tempfile.mkdtemp(prefix="bench-mailbox-"))
    root = pki.meshsite_root("ed25519")
    owners = [pki.issue(root, callsign=call) for call in CALLS]
    stations = [StationProcess(root_dir / f"s{i}", env=ENV) for i in range(len(CALLS))]
    try:
        with ThreadPoolExecutor(len(stations)) as pool:
            list(pool.map(lambda item: provision(item[0], roots=[root], owner=item[1],
                                                 callsign=item[2]),
                          zip(stations, owners, CALLS, strict=True)))
            list(pool.map(lambda station: station.start(timeout=240), stations))
        for left, right in itertools.pairwise(stations):
            added = left.manage("meshpeer", "add", right.url)
            if added.returncode != 0:
                raise RuntimeError(f"meshpeer add failed: {added.stderr}")
        print(f"3 stations up and linked after {time.monotonic() - started:.0f} s", flush=True)
        at_a, at_c = Api(stations[0]), Api(stations[2])
        bob = at_c.register(pki.issue(root, callsign="DL1BOB"), SignalDevice(prekeys=0))
        carol = at_c.register(pki.issue(root, callsign="G4CAR"), SignalDevice(prekeys=0))
        alice = at_a.register(pki.issue(root, callsign="W1ALI"), SignalDevice(prekeys=0))

        print(f"\none station (S2), {args.envelopes} envelopes of 1 KiB, {args.senders} senders:")
        took = put_many(at_c, carol, bob, args.envelopes, args.senders)
        print(f"  accepted: {args.envelopes / took:.0f} envelopes/s ({took:.2f} s)", flush=True)
        took, acked, seen = asyncio.run(read_all(at_c, bob, args.envelopes, stations[2]))
        print(f"  delivered (queued, then read): {seen / took:.0f} envelopes/s ({seen} in "
              f"{took:.2f} s); read and every ack applied: {seen / acked:.0f} envelopes/s "
              f"({acked:.2f} s)", flush=True)
        left = asyncio.run(queue_left(at_c, bob))
        print(f"  delivered again on a new connection after the acks: {left}")
        ready = threading.Event()
        result: dict[str, Any] = {}

        def reader() -> None:
            result["live"] = asyncio.run(read_all(at_c, bob, args.envelopes, stations[2],
                                                  ready))

        thread = threading.Thread(target=reader)
        thread.start()
        ready.wait(30)
        put_many(at_c, carol, bob, args.envelopes, args.senders)
        thread.join(300)
        took, acked, seen = result["live"]
        print(f"  live (sent while the device is connected): {seen / took:.0f} envelopes/s "
              f"delivered ({seen} in {took:.2f} s from the first PUT; every ack applied after "
              f"{acked:.2f} s)", flush=True)

        print(f"\ntwo hops (Alice at S0 -> S1 -> Bob's home S2), {args.latency_samples} "
              "envelopes one at a time:")

        def home_known() -> bool:
            status, _ = at_a.call("GET", f"/api/mailbox/keys/{bob.callsign}/*",
                                  token=alice.token)
            return status == 200

        wait_for(home_known, 120, "Bob's home known at S0 (gossip) with a LAN route", 1.0)
        puts, arrivals = asyncio.run(two_hops(at_a, at_c, alice, bob, args.latency_samples))
        print(f"  PUT at S0 answered (offer accepted by S2, ids back): median "
              f"{statistics.median(puts) * 1e3:.0f} ms, max {max(puts) * 1e3:.0f} ms")
        print(f"  on Bob's socket at S2 (batch fetched by S2's worker through S1): median "
              f"{statistics.median(arrivals) * 1e3:.0f} ms, max {max(arrivals) * 1e3:.0f} ms",
              flush=True)

        print(f"\nprekey takes under contention at S2 ({TAKERS} threads, 100 keys a round):")
        rates = prekey_takes(at_c, bob, carol, args.rounds)
        print(f"  median {statistics.median(rates):.0f} takes/s")
    finally:
        with ThreadPoolExecutor(len(stations)) as pool:
            list(pool.map(lambda station: station.stop(), stations))
        if args.keep:
            print(f"data dirs kept in {root_dir}")
        else:
            shutil.rmtree(root_dir, ignore_errors=True)
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
