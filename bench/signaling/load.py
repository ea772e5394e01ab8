"""One load-generator process: its share of the client pairs, driven on one uvloop event loop.

The parent (bench/signaling/__main__.py) starts several of these so that the generator is not the
bottleneck. Each one connects its clients, reports, waits for a common start instant, relays OFFERs
between the two clients of each pair (at a fixed rate, or saturated: one message in flight per
pair) and reports counts and latencies back through a pipe.

A message's send instant and sequence number travel in the SDP's `o=` line (session id and
version), so the receiver measures latency from the frame alone; CLOCK_MONOTONIC is shared by all
processes of the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import orjson

from bench.signaling.wsclient import WsClient, open_client

TAG = "@@TAG@@"
SDP_HEAD = "v=0\r\no=- "


def sdp_text(size: int) -> str:
    """A plausible data-channel offer of about `size` bytes with a tag slot in the o= line."""
    lines = [
        f"{SDP_HEAD}{TAG} IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0",
        "a=extmap-allow-mixed", "a=msid-semantic: WMS",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0",
        "a=ice-ufrag:" + secrets.token_hex(2), "a=ice-pwd:" + secrets.token_hex(12),
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 " + ":".join(secrets.token_hex(1).upper() for _ in range(32)),
        "a=setup:actpass", "a=mid:0", "a=sctp-port:5000", "a=max-message-size:262144",
    ]
    n = 0
    while sum(len(line) + 2 for line in lines) < size:
        n += 1
        lines.append(f"a=candidate:{n} 1 udp 2122260223 10.99.{n % 250}.{n % 200} "
                     f"{50000 + n} typ host generation 0 network-id {n}")
    return "\r\n".join(lines) + "\r\n"


def frame_template(protocol: str, target: str, sdp: str) -> tuple[bytes, bytes]:
    """The OFFER frame to `target` split around the tag slot: prefix + tag + suffix."""
    if protocol == "peerjs":
        frame = {"type": "OFFER", "dst": target, "payload": {
            "sdp": {"type": "offer", "sdp": sdp}, "type": "data", "connectionId": "dc_bench",
            "label": "dc_bench", "reliable": True, "serialization": "binary", "metadata": None}}
    else:
        frame = {"type": "OFFER", "target": target, "offer": {"type": "offer", "sdp": sdp}}
    prefix, suffix = orjson.dumps(frame).split(TAG.encode())
    return prefix, suffix


@dataclass(eq=False)
class Client:
    name: str
    host: str
    port: int
    room: str
    ws: WsClient | None = None
    ident: str = ""  # the id the station knows it by (PeerJS id, native clientId)
    partner: Client | None = None
    prefix: bytes = b""
    suffix: bytes = b""
    ready: asyncio.Future | None = None
    connect_ms: float = 0.0


@dataclass
class Stats:
    sent: int = 0
    received: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    connect_ms: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    connect_failures: int = 0
    closed: int = 0
    other_frames: Counter = field(default_factory=Counter)


class Generator:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.protocol: str = spec["protocol"]
        self.stats = Stats()
        self.running = False
        self.measuring = False
        self.saturated = spec["rate"] <= 0
        self.sdp = sdp_text(spec["sdp_bytes"])
        self.pairs: list[tuple[Client, Client]] = []
        self.clients: list[Client] = []
        worker = spec["worker"]
        for index, (end_a, end_b) in enumerate(spec["pairs"]):
            room = f"bench-{worker}-{index}"
            a = Client(f"w{worker}p{index}a", end_a[0], end_a[1], room)
            b = Client(f"w{worker}p{index}b", end_b[0], end_b[1], room)
            a.partner, b.partner = b, a
            self.pairs.append((a, b))
            self.clients += [a, b]
        self.sequence = 0
        self.elapsed = 0.0
        self.settled = asyncio.Event()

    # --- frames from the station -----------------------------------------------------------

    def on_message(self, ws: WsClient, payload: bytes) -> None:
        client: Client = ws.tag  # type: ignore[assignment]
        try:
            msg = orjson.loads(payload)
            kind = msg["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.stats.errors["unparsable frame"] += 1
            return
        if kind == "OFFER" or kind == "OFFER_RECEIVED":
            if kind == "OFFER":
                sdp = msg["payload"]["sdp"]["sdp"]
                sender = msg.get("src")
            else:
                sdp = msg["offer"]["sdp"]
                sender = msg.get("from")
            now = time.monotonic_ns()
            _seq, stamp, _ = sdp[len(SDP_HEAD):len(SDP_HEAD) + 48].split(" ", 2)
            if client.partner is None or sender != client.partner.ident:
                self.stats.errors[f"{kind} from a wrong sender"] += 1
            self.stats.received += 1
            if self.measuring:
                self.stats.latencies_ms.append((now - int(stamp)) / 1e6)
            if self.saturated and self.running:
                self.send_offer(client)
            elif not self.running and self.stats.received >= self.stats.sent:
                self.settled.set()
        elif kind in ("OPEN", "REGISTERED"):
            if kind == "REGISTERED":
                client.ident = msg["clientId"]
            if client.ready is not None and not client.ready.done():
                client.ready.set_result(None)
        elif kind in ("ERROR", "ID-TAKEN", "EXPIRE", "LEAVE"):
            payload = msg.get("payload")
            detail = (payload.get("msg") if isinstance(payload, dict) else None) or \
                f"{msg.get('error', '')} {msg.get('details', '')}".strip()
            self.stats.errors[f"{kind}: {detail}"] += 1
            if client.ready is not None and not client.ready.done():
                client.ready.set_exception(ConnectionError(f"{kind}: {detail}"))
        else:
            self.stats.other_frames[kind] += 1

    def on_close(self, ws: WsClient, code: int | None) -> None:
        client: Client = ws.tag  # type: ignore[assignment]
        self.stats.closed += 1
        if self.running or self.measuring:
            self.stats.errors[f"closed by station ({code})"] += 1
        if client.ready is not None and not client.ready.done():
            client.ready.set_exception(ConnectionError(f"closed ({code}) before ready"))

    # --- actions ---------------------------------------------------------------------------

    def send_offer(self, sender: Client) -> None:
        self.sequence += 1
        tag = b"%d %d" % (self.sequence, time.monotonic_ns())
        assert sender.ws is not None
        sender.ws.send(sender.prefix + tag + sender.suffix)
        self.stats.sent += 1

    async def connect_one(self, client: Client, limit: asyncio.Semaphore) -> None:
        loop = asyncio.get_running_loop()
        async with limit:
            client.ready = loop.create_future()
            if self.protocol == "peerjs":
                client.ident = client.name
                path = (f"{self.spec['peerjs_path']}peerjs?key=peerjs&id={client.name}"
                        f"&token={secrets.token_hex(6)}&version=1.5.5")
            else:
                path = "/ws/signal"
            started = time.monotonic()
            try:
                client.ws = await open_client(client.host, client.port, path,
                                              self.on_message, self.on_close, tag=client)
                if self.protocol == "native":
                    client.ws.send(orjson.dumps({"type": "REGISTER", "callsign": "GUEST",
                                                 "room": client.room}))
                await asyncio.wait_for(client.ready, 30)
            except (OSError, TimeoutError, ConnectionError) as exc:
                self.stats.connect_failures += 1
                self.stats.errors[f"connect: {type(exc).__name__} {str(exc)[:80]}"] += 1
                return
            client.connect_ms = (time.monotonic() - started) * 1000
            self.stats.connect_ms.append(client.connect_ms)

    async def connect_all(self) -> None:
        limit = asyncio.Semaphore(self.spec["connect_concurrency"])
        await asyncio.gather(*(self.connect_one(c, limit) for c in self.clients))
        for client in self.clients:
            assert client.partner is not None
            client.prefix, client.suffix = frame_template(self.protocol, client.partner.ident,
                                                          self.sdp)
        live = [(a, b) for a, b in self.pairs if a.connect_ms and b.connect_ms]
        self.pairs = live

    async def heartbeats(self) -> None:
        """PeerJS clients send HEARTBEAT every `heartbeat` seconds, spread evenly."""
        interval = self.spec["heartbeat"]
        if self.protocol != "peerjs" or interval <= 0:
            return
        frame = b'{"type":"HEARTBEAT"}'
        live = [c for c in self.clients if c.ws is not None]
        step = 0.1
        per_tick = max(1, round(len(live) * step / interval))
        index = 0
        while True:
            await asyncio.sleep(step)
            for _ in range(per_tick):
                if live:
                    ws = live[index % len(live)].ws
                    assert ws is not None
                    ws.send(frame)
                    index += 1

    async def run_load(self, start_at: float) -> None:
        duration = self.spec["duration"]
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        self.running = self.measuring = True
        heartbeat = asyncio.create_task(self.heartbeats())
        t0 = time.monotonic()
        if self.pairs:
            if self.saturated:
                for a, _b in self.pairs:
                    self.send_offer(a)
                await asyncio.sleep(duration)
            else:
                rate = self.spec["rate"]
                count = len(self.pairs)
                index = 0
                while (now := time.monotonic()) < t0 + duration:
                    due = int((now - t0) * rate) - self.stats.sent
                    for _ in range(due):
                        a, b = self.pairs[index % count]
                        self.send_offer(a if (index // count) % 2 == 0 else b)
                        index += 1
                    await asyncio.sleep(0.002)
        self.running = False
        self.elapsed = time.monotonic() - t0
        if self.stats.received < self.stats.sent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.settled.wait(), self.spec["drain"])
        self.measuring = False
        heartbeat.cancel()

    def close_all(self) -> None:
        for client in self.clients:
            if client.ws is not None:
                client.ws.close()


async def _main(spec: dict[str, Any], pipe: Connection) -> None:
    generator = Generator(spec)
    await generator.connect_all()
    pipe.send({"phase": "connected", "pairs": len(generator.pairs)})
    loop = asyncio.get_running_loop()
    start_at = await loop.run_in_executor(None, pipe.recv)
    # The generator's own garbage collections (thousands of client objects) would show up as
    # relay latency of the station: keep them out of the measured window.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        await generator.run_load(start_at)
    finally:
        gc.enable()
    stats = generator.stats
    pipe.send({
        "phase": "done", "sent": stats.sent, "received": stats.received,
        "elapsed": generator.elapsed, "latencies_ms": stats.latencies_ms,
        "connect_ms": stats.connect_ms, "errors": dict(stats.errors),
        "connect_failures": stats.connect_failures, "other_frames": dict(stats.other_frames),
    })
    generator.close_all()
    await asyncio.sleep(0.2)


def worker_main(spec: dict[str, Any], pipe: Connection) -> None:
    """Entry point of a generator process."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.run(_main(spec, pipe))
    except ImportError:
        asyncio.run(_main(spec, pipe))
