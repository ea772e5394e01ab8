"""RF benchmark: `.venv/bin/python -m bench.rf [--loss 0 0.1 0.3] [--seed N]`.

Two stations' RF link layers (`mesh.rf_link`, real TNC connections over KISS/TCP) on the
simulated channel (`bench.rf.channel`), exchanging the mesh's own signed envelopes encoded for
the air (`mesh.rf_codec`), at each frame loss rate:

- reconcile: two catalogs of 1,000 entries with 10 differences (5 on each side), with the
  catalog's range-based reconciliation (`catalog.reconcile`, messages of at most 4,096 bytes
  as `MESHSITE_CATALOG_SYNC_MESSAGE_SIZE`), then the 10 entries' signed metadata both ways.
  Target: within 60 s of air time at 10 % loss.
- fetch: one 10 KB HTML page as a forwarded request and FORWARD_CHUNK answers of 4,096 bytes.
- credential: a newcomer learns its neighbour's credential (LoTW-style RSA chain, as a real
  owner's certificate is: Production CA and root certificates, kilobytes).

Figures: bytes handed to the TNC (AX.25 frames without FCS), frames, and air time at 1200
bit/s (TXDELAY 300 ms per keying, flags and FCS: `mesh.ax25.air_time`; a frame handed over
while the one before is still on the air goes in the same keying), per kind of traffic, summed
over both stations, and the round trips and whole-message retries.

Air time is accounted at 1200 bit/s while the simulated channel runs 40 times faster, so a run
takes minutes, not hours; losses, NACKs and repeats are the same frame for frame. The budget
(`MESHSITE_RF_AIRTIME_SHARE`) changes when traffic goes, not how much: it is set to 1 here.
The opening ID beacons are not counted; the end-of-sequence IDs fall within the one-minute
hold-off after them (`mesh.rf_link`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import random
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from bench.rf.channel import SimulatedChannel
from catalog.reconcile import ID_BYTES, Catalog, Item, Reconciler
from mesh import kiss, protocol, rf_codec
from mesh.ax25 import Address
from mesh.rf_link import RfLink
from mesh.tnc import TncLink, parse_kiss_url

ACCOUNTED_BITRATE = 1200
WIRE_BITRATE = 48_000
BASE_TS = 1_750_000_000_000 << 16


@dataclass
class Node:
    call: Address
    key: ed25519.Ed25519PrivateKey
    rf: RfLink
    tnc: TncLink
    inbox: asyncio.Queue = field(default_factory=asyncio.Queue)

    @property
    def station_id(self) -> str:
        raw = self.key.public_key().public_bytes_raw()
        return hashlib.sha256(raw).hexdigest()[:32]


@contextlib.asynccontextmanager
async def pair(channel: SimulatedChannel) -> AsyncIterator[tuple[Node, Node]]:
    nodes: list[Node] = []
    tasks: list[asyncio.Task] = []
    for call in ("DL1AB-10", "DL2CD-10"):
        address = Address.parse(call)
        holder: dict[str, Node] = {}
        tnc = TncLink(parse_kiss_url(f"tcp://127.0.0.1:{channel.port}"),
                      on_frame=lambda raw, h=holder: h["node"].rf.on_frame(raw),
                      parameters={kiss.Command.TXDELAY: 1})
        rf = RfLink(send_frame=tnc.send, identity=lambda a=address: a,
                    bitrate=ACCOUNTED_BITRATE, share=1.0, id_interval=600,
                    beacon_body=lambda: b"bench", nack_gap=0.4, ready=lambda t=tnc: t.connected)
        rf.lookahead = 1e9  # the wire runs faster than the accounting: no pacing
        node = holder["node"] = Node(address, ed25519.Ed25519PrivateKey.generate(), rf, tnc)
        rf.on_message = lambda _source, message, n=node: n.inbox.put_nowait(message)
        nodes.append(node)
        tasks += [asyncio.create_task(tnc.run()), asyncio.create_task(rf.run())]
    try:
        for node in nodes:
            if not await node.tnc.wait_connected(10):
                raise RuntimeError("the simulated channel did not accept the TNC connections")
        await asyncio.sleep(0.5)  # the opening ID beacons
        for node in nodes:  # count from here: the scenario's traffic only
            node.rf.ledger = type(node.rf.ledger)(bitrate=ACCOUNTED_BITRATE,
                                                  txdelay=node.rf.ledger.txdelay)
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            await node.tnc.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class Exchange:
    """Requests and answers between two nodes, each a whole signed envelope; a message lost
    whole (no fragment arrived, so nobody asks for a repeat) is sent again after a timeout."""

    rounds: int = 0
    retries: int = 0

    async def send(self, sender: Node, receiver: Node, type_: str, payload: dict[str, Any], *,
                   kind: str, priority: bool) -> dict[str, Any]:
        envelope = protocol.build_envelope(type_=type_, sender=sender.station_id,
                                           payload=payload, sign=sender.key.sign, ttl=8)
        message = rf_codec.encode_message(envelope)
        fragments = -(-len(message) // (rf_codec.MAX_INFO - rf_codec.DATA_HEADER))
        while True:
            sender.rf.send(message, to=receiver.call, kind=kind, priority=priority)
            with contextlib.suppress(TimeoutError):
                while True:
                    got = await asyncio.wait_for(receiver.inbox.get(), 4 + 0.5 * fragments)
                    decoded = rf_codec.decode_message(got)
                    if decoded["id"] == envelope["id"]:
                        return decoded["payload"]
            self.retries += 1

    async def request(self, client: Node, server: Node, type_: str, payload: dict[str, Any],
                      answer: Any, *, kind: str, priority: bool = False) -> dict[str, Any]:
        self.rounds += 1
        got = await self.send(client, server, type_, payload, kind=kind, priority=priority)
        return await self.send(server, client, protocol.REPLY, answer(got), kind=kind,
                               priority=priority)


def _items(count: int, rng: random.Random) -> list[Item]:
    spread = 30 * 86_400_000
    return [Item(BASE_TS + (rng.randrange(spread) << 16), rng.randbytes(ID_BYTES))
            for _ in range(count)]


def _entry(item: Item, rng: random.Random) -> dict[str, Any]:
    """Signed metadata of one content entry, as CONTENT_ENTRIES carries it."""
    return {"id": item.id.hex(), "origin": "DL2CD", "path": f"/net/bulletin-{rng.randrange(999)}",
            "sha256": rng.randbytes(32).hex(), "size": rng.randrange(200, 20000),
            "content_type": "text/html", "priority": 2, "created": item.timestamp,
            "modified": item.timestamp, "signature": base64.b64encode(rng.randbytes(64)).decode()}


async def reconcile(a: Node, b: Node, rng: random.Random) -> Exchange:
    shared = _items(1000, rng)
    extra = _items(10, rng)
    catalog_a, catalog_b = Catalog(shared + extra[:5]), Catalog(shared + extra[5:])
    initiator = Reconciler(catalog_a, max_message_size=4096)
    exchange = Exchange()
    message: bytes | None = initiator.initiate()
    while message is not None:
        def answer(payload: dict[str, Any]) -> dict[str, Any]:
            reply = Reconciler(catalog_b, max_message_size=4096).reconcile(
                base64.b64decode(payload["m"]))
            return {"m": base64.b64encode(reply).decode()} if reply else {}

        reply = await exchange.request(a, b, "CONTENT_SYNC",
                                       {"m": base64.b64encode(message).decode()}, answer,
                                       kind="sync")
        message = initiator.reconcile(base64.b64decode(reply["m"])) if reply.get("m") else None
    need = sorted(item.id.hex() for item in initiator.need)
    have = sorted(initiator.have, key=lambda item: item.id)
    if len(need) != 5 or len(have) != 5:
        raise RuntimeError(f"reconciliation found {len(need)} + {len(have)}, not 5 + 5")
    by_id = {item.id.hex(): item for item in extra}
    await exchange.request(a, b, "CONTENT_ENTRIES", {"want": need},
                           lambda p: {"entries": [_entry(by_id[i], rng) for i in p["want"]]},
                           kind="sync")
    await exchange.request(a, b, "CONTENT_ENTRIES",
                           {"entries": [_entry(item, rng) for item in have]},
                           lambda _p: {"stored": 5}, kind="sync")
    return exchange


def _page(rng: random.Random, size: int = 10_240) -> bytes:
    words = ["shelter", "water", "road", "closed", "open", "bridge", "north", "south", "east",
             "west", "team", "medical", "supplies", "generator", "fuel", "volunteers", "report",
             "status", "station", "net", "control", "check-in", "evacuation", "route", "county",
             "hospital", "school", "power", "outage", "update", "hours"]
    parts = ["<!doctype html><html><head><meta charset=utf-8><title>Net bulletin</title>"
             "</head><body><h1>Emergency net bulletin</h1>"]
    while sum(map(len, parts)) < size:
        sentence = " ".join(rng.choice(words) for _ in range(rng.randrange(6, 16)))
        parts.append(f"<p>{sentence.capitalize()}, {rng.randrange(1, 99)} at "
                     f"{rng.randrange(0, 24):02d}:{rng.randrange(0, 60):02d}.</p>\n")
    return "".join(parts).encode()[:size]


async def fetch(a: Node, b: Node, rng: random.Random) -> Exchange:
    body = _page(rng)
    exchange = Exchange()
    offset = 0
    while offset < len(body):
        chunk = body[offset:offset + 4096]
        await exchange.request(
            a, b, "FORWARD", {"kind": "content", "callsign": "DL2CD", "path": "/bulletin.html",
                              "offset": offset},
            lambda _p, c=chunk, o=offset: {"data": base64.b64encode(c).decode(),
                                           "length": len(c), "offset": o,
                                           "final": o + len(c) >= len(body)},
            kind="request", priority=True)
        offset += len(chunk)
    return exchange


def _credential() -> dict[str, Any]:
    from tests.certificates import pki

    owner = pki.lotw_user("DL2CD")
    key = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    return {"stationId": "ab" * 16, "publicKey": base64.b64encode(key).decode(),
            "callsign": "DL2CD", "certificate": owner.pem, "chain": owner.chain_pem,
            "nonce": "n" * 43, "delegation": owner.sign(b"delegation")}


async def credential(a: Node, b: Node, _rng: random.Random) -> Exchange:
    exchange = Exchange()
    wanted = _credential()
    await exchange.request(a, b, "RF_CREDENTIAL_REQUEST", {"fingerprint": "cd" * 32},
                           lambda _p: {"credential": wanted}, kind="sync")
    return exchange


SCENARIOS = {"reconcile": reconcile, "fetch": fetch, "credential": credential}


async def run_one(name: str, loss: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    with SimulatedChannel(bitrate=WIRE_BITRATE, loss=loss, seed=seed, lifetime=1800) as channel:
        async with pair(channel) as (a, b):
            started = time.monotonic()
            exchange = await SCENARIOS[name](a, b, rng)
            wall = time.monotonic() - started
            kinds: dict[str, dict[str, float]] = {}
            for node in (a, b):
                for kind, figures in node.rf.ledger.as_dict().items():
                    into = kinds.setdefault(kind, {"seconds": 0.0, "frames": 0, "bytes": 0})
                    for key in into:
                        into[key] += figures[key]
    total = sum(k["seconds"] for k in kinds.values())
    return {"scenario": name, "loss": loss, "airtime": total,
            "bytes": sum(k["bytes"] for k in kinds.values()),
            "frames": sum(k["frames"] for k in kinds.values()), "kinds": kinds,
            "rounds": exchange.rounds, "retries": exchange.retries, "wall": wall}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenario", nargs="+", choices=sorted(SCENARIOS),
                        default=list(SCENARIOS))
    args = parser.parse_args(argv)
    print(f"RF benchmark: air time at {ACCOUNTED_BITRATE} bit/s (TXDELAY 0.3 s per keying), "
          f"two stations, seed {args.seed}")
    print(f"{'scenario':<11} {'loss':>5} {'air s':>8} {'bytes':>7} {'frames':>6} "
          f"{'rounds':>6} {'retries':>7}  share of air time per kind")
    results = []
    for name in args.scenario:
        for loss in args.loss:
            row = asyncio.run(run_one(name, loss, args.seed))
            results.append(row)
            shares = ", ".join(f"{kind} {100 * k['seconds'] / row['airtime']:.0f}%"
                               for kind, k in sorted(row["kinds"].items(),
                                                     key=lambda item: -item[1]["seconds"]))
            print(f"{name:<11} {loss:>5.0%} {row['airtime']:>8.1f} {row['bytes']:>7} "
                  f"{row['frames']:>6} {row['rounds']:>6} {row['retries']:>7}  {shares}",
                  flush=True)
    target = next((r for r in results if r["scenario"] == "reconcile"
                   and abs(r["loss"] - 0.1) < 1e-9), None)
    if target is not None:
        verdict = "met" if target["airtime"] <= 60 else "MISSED"
        print(f"target: reconciliation within 60 s of air time at 10% loss: "
              f"{target['airtime']:.1f} s, {verdict}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
