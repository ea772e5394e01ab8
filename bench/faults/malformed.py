"""Malformed WebSocket input: `python -m bench.faults malformed [--seed N] [--frames N] ...`.

A real station (Redis, one daphne, claimed so `/ws/coordinate` gets past HELLO) takes generated
frames on `/ws/signal`, `/peerjs` and `/ws/coordinate` from several attacker sockets per
protocol, each reconnecting whenever the station closes it, while two good clients of each
signaling protocol relay OFFER/ANSWER through the same process without pause. Every frame comes
from a `random.Random` seeded by `--seed`, so a run can be repeated frame for frame.

Frame kinds: binary junk, invalid UTF-8 in text frames, bad JSON (garbage, truncated JSON),
wrong types, deep nesting (up to past the parsers' limits), huge numbers, lone surrogates and
control characters, oversized frames, frames truncated on the wire (then the TCP connection
dropped), WebSocket protocol violations (reserved bits, unknown opcodes, unmasked frames, bad
close frames), valid frames in the wrong state, and well-formed relays with junk payloads aimed
at the good clients. On `/ws/coordinate` about half the attacker sockets first authenticate as
a trusted station and then send signed envelopes with junk payloads, replays, stale and forged
envelopes, so the frames reach the mesh handlers and not only the handshake.

Figures and targets: server exceptions logged (daphne's stderr: error records and tracebacks;
0), good relays lost (0), good client sockets closed (0), p99 time for a good client's OFFER to
come back answered during the flood (at most `--p99-target` ms). Exit status 1 when one is
missed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import random
import re
import secrets
import struct
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.signaling.station import REPO, Station, raise_fd_limit
from bench.signaling.wsclient import WsClient, open_client, text_frame

PROTOCOLS = ("signal", "peerjs", "coordinate")
HOST = "127.0.0.1"
GOOD_ROOM = "good"

# --- what daphne logged -----------------------------------------------------------------------

_ERROR_RECORD = re.compile(r"level=(error|critical)\b|--- Logging error ---|Unhandled Error")


def server_exceptions(log: str) -> list[str]:
    """Each error record or traceback in a daphne log, as its first line plus its last one (the
    exception). A traceback printed under an error record counts once, with that record."""
    events: list[list[str]] = []
    in_event = False
    for line in log.splitlines():
        if _ERROR_RECORD.search(line):
            events.append([line])
            in_event = True
        elif line.startswith("Traceback"):
            if not in_event:
                events.append([line])
            in_event = True
        elif line.startswith("ts="):
            in_event = False
        elif in_event and line.strip() and events:
            events[-1].append(line)
    return [ev[0][:300] + (f" ... {ev[-1][:200]}" if len(ev) > 1 else "") for ev in events]


def status_latency(port: int, timeout: float = 5.0) -> float | None:
    """Seconds for GET /api/status to answer 200, None when it did not within `timeout`."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/api/status", timeout=timeout) as resp:
            resp.read()
            if resp.status != 200:
                return None
    except OSError:
        return None
    return time.monotonic() - started


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- the claimed station ----------------------------------------------------------------------

_PROVISION = """
import base64, json, sys
import django
django.setup()
from cryptography.hazmat.primitives import serialization
from certificates import services as s
from certificates.x509tools import sign_message
spec = json.load(open(sys.argv[1]))
s.trustroot_add(certificate=spec["root"])
key = serialization.load_pem_private_key(spec["key"].encode(), None)
nonce = "console-" + spec["callsign"]
s.station_claim(certificate=spec["certificate"], chain=spec["chain"], callsign=spec["callsign"],
                nonce=nonce, signature=base64.b64encode(sign_message(key, s.claim_message(nonce)))
                .decode(), nonce_checked=True)
"""


@dataclass
class Attacker:
    """A station of the benchmark's own, trusted by the station under test (same root)."""

    station_id: str
    key: Any
    credential: dict[str, Any]

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)


def claim(station: Station, attackers: int) -> list[Attacker]:
    """Trust a fresh test root, claim the station for an operator under it (as an operator
    would at the console) and make `attackers` stations of other operators of that root."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from certificates.x509tools import delegation_message, station_id_for
    from tests.certificates import pki

    root = pki.meshsite_root()
    ca = pki.issue(root, callsign="DL0CA", ca=True, path_length=0, can_issue=True,
                   license_class="club")
    owner = pki.issue(ca, callsign="DL1OWN")
    spec = {"root": root.pem, "certificate": owner.pem, "chain": owner.chain_pem,
            "callsign": "DL1OWN", "key": pki.private_pem(owner.key).decode()}
    path = Path(station.data_dir) / "claim.json"
    path.write_text(json.dumps(spec))
    subprocess.run([sys.executable, "-c", _PROVISION, str(path)], cwd=REPO, env=station.env,
                   check=True, timeout=120)
    made = []
    for n in range(attackers):
        callsign = f"DL{n % 10}FZ{chr(65 + n // 10)}"
        operator = pki.issue(ca, callsign=callsign)
        key = ed25519.Ed25519PrivateKey.generate()
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        public_b64 = base64.b64encode(raw).decode()
        station_id = station_id_for(raw)
        nonce = secrets.token_urlsafe(16)
        delegation = operator.sign(delegation_message(station_id=station_id,
                                                      public_key_b64=public_b64, nonce=nonce))
        made.append(Attacker(station_id, key, {
            "stationId": station_id, "publicKey": public_b64,
            "callsign": callsign,
            "certificate": operator.pem, "chain": operator.chain_pem, "nonce": nonce,
            "delegation": delegation}))
    return made


# --- frames -----------------------------------------------------------------------------------

def ws_frame(payload: bytes, opcode: int = 0x1, *, fin: bool = True, rsv: int = 0,
             masked: bool = True, length: int | None = None) -> bytes:
    """One client frame (zero masking key unless `masked` is False); `length` overrides the
    announced payload length (for frames truncated on the wire)."""
    size = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode
    mask_bit = 0x80 if masked else 0
    if size < 126:
        header = bytes((b0, mask_bit | size))
    elif size < 65536:
        header = bytes((b0, mask_bit | 126)) + struct.pack("!H", size)
    else:
        header = bytes((b0, mask_bit | 127)) + struct.pack("!Q", size)
    return header + (b"\x00\x00\x00\x00" if masked else b"") + payload


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


_WEIRD = ["", " ", "\x00", "\x1f", "\u202e", "\U0001f4a5", "\\", '"', "null", "GUEST", "W1AW",
          "lobby", "good", "../../etc/passwd", "%00", "<script>", "DROP TABLE", "\ufeff",
          "a" * 129, "\u0130", "OFFER", "dc_1", "\r\n"]
_HUGE = ["1" * 30, "1" * 400, "1" * 5000, "1e999", "-1e999", "1e-999", "1.7976931348623159e308",
         "18446744073709551616", "-9223372036854775809", "0.0000000000000000000000001e-330",
         "123456789012345678901234567890.5e300", "-0", "1E+400"]
_SIGNAL_TYPES = ["REGISTER", "NONCE", "LIST_PEERS", "OFFER", "ANSWER", "ICE_CANDIDATE",
                 "HEARTBEAT", "PING", "PEERJS_TOKEN", "OFFER_RECEIVED", "ERROR"]
_PEERJS_TYPES = ["OFFER", "ANSWER", "CANDIDATE", "LEAVE", "EXPIRE", "HEARTBEAT", "OPEN",
                 "ID-TAKEN", "ERROR", "INVALID-KEY"]
_MESH_TYPES = ["HELLO", "AUTH", "WELCOME", "REFUSED", "PEER_ANNOUNCE", "PEER_LIST", "CERT_SYNC",
               "BLACKLIST_UPDATE", "PING", "REPLY", "ERROR", "CONTENT_SYNC", "CONTENT_ENTRIES",
               "CONTENT_DEMAND"]
_FIELDS = {
    "signal": ["type", "target", "offer", "answer", "candidate", "callsign", "room",
               "certificate", "chain", "nonce", "signature", "from"],
    "peerjs": ["type", "dst", "src", "payload"],
    "coordinate": ["type", "id", "from", "ttl", "ts", "re", "req", "payload", "sig",
                   "credential", "nonce", "proof", "stationId", "protocol"],
}

# Frame kinds and their weights. `ends` kinds make the station drop the connection.
KINDS: dict[str, int] = {
    "binary": 6, "invalid_utf8": 4, "bad_json": 10, "truncated_json": 6, "wrong_types": 16,
    "deep_nesting": 8, "huge_numbers": 8, "unicode": 6, "oversized": 1, "truncated_frame": 2,
    "ws_violation": 3, "fragmented": 3, "wrong_state": 12, "junk_relay": 12,
}
SIGNED_KINDS: dict[str, int] = {"signed_junk": 30, "replay": 5, "stale": 5, "forged": 10}


class Junk:
    """The seeded source of every attacker frame of one protocol."""

    def __init__(self, rng: random.Random, protocol: str, good_ids: list[str]) -> None:
        self.rng = rng
        self.protocol = protocol
        self.good_ids = good_ids
        self.kinds = list(KINDS)
        self.weights = [KINDS[k] for k in self.kinds]

    # values

    def scalar(self) -> Any:
        rng = self.rng
        return rng.choice([
            None, True, False, 0, -1, 2**63, -(2**63) - 1, 2**64, 1.5e308, -0.0, 0.1,
            rng.choice(_WEIRD), rng.randint(-10**6, 10**6),
            "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 40))),
        ])

    def value(self, depth: int = 0) -> Any:
        rng = self.rng
        roll = rng.random()
        if depth >= 3 or roll < 0.55:
            return self.scalar()
        if roll < 0.78:
            return [self.value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {rng.choice([*_WEIRD, *_FIELDS[self.protocol]]): self.value(depth + 1)
                for _ in range(rng.randint(0, 4))}

    def target(self) -> Any:
        if self.good_ids and self.rng.random() < 0.6:
            return self.rng.choice(self.good_ids)
        return self.scalar()

    def type_name(self) -> str:
        return self.rng.choice({"signal": _SIGNAL_TYPES, "peerjs": _PEERJS_TYPES,
                                "coordinate": _MESH_TYPES}[self.protocol])

    def shaped(self) -> dict[str, Any]:
        """A frame of the protocol's shape: a real type and a destination."""
        frame: dict[str, Any] = {"type": self.type_name()}
        if self.protocol == "signal":
            frame["target"] = self.target()
        elif self.protocol == "peerjs":
            frame["dst"] = self.target()
        return frame

    # frames: (kind, bytes on the wire, whether the connection ends after it)

    def next(self, kind: str | None = None) -> tuple[str, bytes, bool]:
        rng = self.rng
        kind = kind or rng.choices(self.kinds, self.weights)[0]
        ends = False
        if kind == "binary":
            data = rng.randbytes(rng.randint(0, 600)) if rng.random() < 0.7 else _dumps(
                self.shaped())
            wire = ws_frame(data, 0x2)
        elif kind == "invalid_utf8":
            bad = rng.choice([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                              b"\xe2\x82", b"\x80"])
            body = _dumps(self.shaped())
            cut = rng.randint(0, len(body))
            wire = ws_frame(body[:cut] + bad + body[cut:])
            ends = True
        elif kind == "bad_json":
            wire = ws_frame(rng.choice([
                b"{", b"}", b"[", b"null", b"{'type': 'OFFER'}", b'{"type":"OFFER",}',
                b'{"type" "OFFER"}', b"NaN", b"Infinity", b'{"a":1}{"b":2}', b"",
                b'{"type":"PING"}\x00', b'\xef\xbb\xbf{"type":"PING"}', b" " * 1000,
                bytes(rng.choice(b" {}[]\":,0123456789abcdeftrunl\\") for _ in
                      range(rng.randint(1, 300))),
            ]))
        elif kind == "truncated_json":
            body = _dumps({**self.shaped(), "payload": self.value()})
            wire = ws_frame(body[:rng.randint(0, max(0, len(body) - 1))])
        elif kind == "wrong_types":
            frame = {name: self.value() for name in rng.sample(
                _FIELDS[self.protocol], rng.randint(1, len(_FIELDS[self.protocol])))}
            if rng.random() < 0.7:
                frame["type"] = self.type_name()
            wire = ws_frame(_dumps(frame))
        elif kind == "deep_nesting":
            depth = rng.choice([64, 200, 253, 254, 255, 256, 300, 600, 990, 1023, 1024, 1025,
                                1500, 5000, 30000])
            opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
            nested = (opener * depth + "1" + closer * depth).encode()
            if rng.random() < 0.3:
                wire = ws_frame(nested)
            else:
                body = _dumps(self.shaped())
                wire = ws_frame(body[:-1] + b',"payload":' + nested + b',"offer":'
                                + nested + b"}")
        elif kind == "huge_numbers":
            frame = _dumps(self.shaped())[:-1]
            for name in rng.sample(_FIELDS[self.protocol], 2):
                frame += f',"{name}":{rng.choice(_HUGE)}'.encode()
            wire = ws_frame(frame + b"}")
        elif kind == "unicode":
            text = rng.choice(["\\ud800", "\\udfff", "\\ud83d", "\\u0000", "\\u001f",
                               "\\ud800\\ud800", "\\udc00\\ud800", "\U0010ffff", "\u2028"])
            shaped = _dumps(self.shaped()).decode()
            where = rng.choice(["key", "value", "type"])
            if where == "type":
                body = f'{{"type":"OFFER{text}","dst":"x{text}","target":"{text}"}}'
            elif where == "key":
                body = shaped[:-1] + f',"{text}":1}}'
            else:
                body = shaped[:-1] + f',"payload":"{text}","room":"{text}","callsign":"{text}"}}'
            wire = ws_frame(body.encode("utf-8", "surrogatepass"))
        elif kind == "oversized":
            limit = 1024 * 1024 if self.protocol == "coordinate" else 65536
            size = rng.choice([limit + 1, limit + 1000, 2 * limit])
            body = _dumps(self.shaped())[:-1] + b',"payload":"'
            wire = ws_frame(body + b"x" * (size - len(body) - 2) + b'"}')
            ends = True
        elif kind == "truncated_frame":
            body = _dumps({**self.shaped(), "payload": self.value()})
            announced = len(body) + rng.randint(1, 70000)
            wire = ws_frame(body, length=announced)[: rng.randint(1, len(body) + 6)]
            ends = True
        elif kind == "ws_violation":
            body = _dumps(self.shaped())
            wire = rng.choice([
                ws_frame(body, rsv=rng.randint(1, 7)),
                ws_frame(body, rng.choice([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])),
                ws_frame(body, masked=False),
                ws_frame(b"p" * 126, 0x9),
                ws_frame(b"p", 0x9, fin=False),
                ws_frame(body, 0x0),
                ws_frame(body[:5], fin=False) + ws_frame(body),
                ws_frame(b"\x03", 0x8),
                ws_frame(struct.pack("!H", rng.choice([0, 999, 1004, 1005, 1006, 1015, 2000,
                                                       5000, 65535])), 0x8),
                ws_frame(struct.pack("!H", 1000) + b"\xff\xfe", 0x8),
            ])
            ends = True
        elif kind == "fragmented":
            body = _dumps({**self.shaped(), "payload": self.value()})
            cut = rng.randint(0, len(body))
            wire = (ws_frame(body[:cut], fin=False) + ws_frame(b"", 0x9)
                    + ws_frame(body[cut:], 0x0))
        elif kind == "wrong_state":
            wire = ws_frame(_dumps(self.wrong_state()))
        else:  # junk_relay: well-formed relays with junk payloads, aimed at the good clients
            frame = self.junk_relay()
            wire = ws_frame(_dumps(frame))
        return kind, wire, ends

    def wrong_state(self) -> dict[str, Any]:
        rng = self.rng
        if self.protocol == "signal":
            return rng.choice([
                {"type": "OFFER", "target": self.target(), "offer": {"type": "offer"}},
                {"type": "ICE_CANDIDATE", "target": self.target(), "candidate": {}},
                {"type": "LIST_PEERS"}, {"type": "PEERJS_TOKEN"},
                {"type": "REGISTER", "callsign": "GUEST", "room": GOOD_ROOM},
                {"type": "REGISTER", "callsign": "W1AW", "certificate": "junk",
                 "nonce": "n" * 20, "signature": "AAAA"},
                {"type": "REGISTER", "certificate": self.value(), "chain": self.value(),
                 "nonce": self.value(), "signature": self.value()},
                {"type": "NONCE"}, {"type": "PING"}, {"type": "HEARTBEAT"},
                {"type": "REGISTERED", "clientId": "x"}, {"type": "PEER_JOINED"},
            ])
        if self.protocol == "peerjs":
            return rng.choice([
                {"type": "OPEN"}, {"type": "ID-TAKEN", "payload": {"msg": "ID is taken"}},
                {"type": "ERROR", "payload": {"msg": "x"}}, {"type": "LEAVE"},
                {"type": "LEAVE", "dst": self.target()}, {"type": "EXPIRE", "dst": self.target()},
                {"type": "HEARTBEAT", "dst": self.target()},
                {"type": "CANDIDATE", "dst": f"absent-{rng.randint(0, 30)}", "payload": {}},
                {"type": "OFFER", "dst": f"absent-{rng.randint(0, 30)}", "payload": self.value()},
            ])
        return rng.choice([
            {"type": "HELLO", "stationId": "0" * 32, "nonce": "n" * 43, "protocol": 1},
            {"type": "WELCOME", "credential": self.value(), "proof": "AAAA"},
            {"type": "REFUSED", "error": self.value(), "detail": self.value()},
            {"type": "AUTH", "credential": self.value(), "nonce": self.value(),
             "proof": self.value()},
            {"type": "AUTH", "credential": {"stationId": "0" * 32, "publicKey": "AAAA",
                                            "certificate": "-----BEGIN CERTIFICATE-----\nAAAA",
                                            "chain": ["x"], "nonce": "n", "delegation": "AA",
                                            "callsign": "W1AW"},
             "nonce": "n" * 20, "proof": "AAAA"},
            {"type": "PING", "id": "0" * 32, "from": "0" * 32, "ttl": 1, "ts": 0,
             "payload": {}, "sig": "AAAA"},
        ])

    def junk_relay(self) -> dict[str, Any]:
        rng = self.rng
        if self.protocol == "signal":
            kind = rng.choice(["OFFER", "ANSWER", "ICE_CANDIDATE"])
            field_name = {"OFFER": "offer", "ANSWER": "answer", "ICE_CANDIDATE": "candidate"}
            return {"type": kind, "target": self.target(), field_name[kind]: self.value(),
                    rng.choice(_WEIRD): self.value()}
        if self.protocol == "peerjs":
            return {"type": rng.choice(["OFFER", "ANSWER", "CANDIDATE"]), "dst": self.target(),
                    "src": rng.choice(self.good_ids or ["x"]), "payload": self.value(),
                    rng.choice(_WEIRD): self.value()}
        return {"type": self.type_name(), "payload": self.value(), "id": secrets.token_hex(16)}

    # signed envelopes (authenticated /ws/coordinate attackers)

    def signed(self, attacker: Attacker, sent: list[dict[str, Any]]) -> tuple[str, bytes]:
        from mesh import protocol

        rng = self.rng
        kind = rng.choices(list(SIGNED_KINDS), list(SIGNED_KINDS.values()))[0]
        if kind == "replay" and sent:
            return kind, ws_frame(protocol.canonical_json(rng.choice(sent)))
        type_ = rng.choice([*_MESH_TYPES[4:], "NO_SUCH_TYPE", "x" * 200])
        payload = self.value()
        payload = payload if isinstance(payload, dict) else {rng.choice(
            ["have", "certificates", "blacklist", "peers", "server", "want", "entries"]):
            payload}
        envelope = protocol.build_envelope(
            type_=type_, sender=attacker.station_id, payload=payload, sign=attacker.sign,
            ttl=rng.randint(0, 10), re=rng.choice([None, secrets.token_hex(16)]),
            request=rng.random() < 0.7, ts=0 if kind == "stale" else None)
        if kind == "forged":
            envelope[rng.choice(["sig", "from", "ttl", "id", "payload", "extra"])] = self.value()
        elif kind == "signed_junk":
            sent.append(envelope)
            del sent[:-20]
        return kind, ws_frame(protocol.canonical_json(envelope))


# --- sockets ----------------------------------------------------------------------------------

class Socket:
    """An attacker (or good) client: a `WsClient` with an inbox of decoded JSON frames."""

    def __init__(self) -> None:
        self.client: WsClient | None = None
        self.inbox: list[Any] = []
        self.arrived = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.on_frame: Callable[[Any], None] | None = None

    async def open(self, port: int, path: str, timeout: float = 10.0,
                   source: str | None = None) -> Socket:
        """Connect and upgrade; from the local address `source` (127.0.0.N) when given."""
        if source is None:
            self.client = await open_client(HOST, port, path, self._message, self._closed,
                                            timeout=timeout)
            return self
        loop = asyncio.get_running_loop()
        _, client = await asyncio.wait_for(loop.create_connection(
            lambda: WsClient(HOST, port, path, self._message, self._closed), HOST, port,
            local_addr=(source, 0)), timeout)
        self.client = client
        await asyncio.wait_for(asyncio.shield(client.open), timeout)
        return self

    def _message(self, _client: WsClient, payload: bytes) -> None:
        try:
            frame = json.loads(payload)
        except ValueError:
            return
        if self.on_frame is not None:
            self.on_frame(frame)
            return
        self.inbox.append(frame)
        del self.inbox[:-50]
        self.arrived.set()

    def _closed(self, _client: WsClient, code: int | None) -> None:
        self.close_code = code
        self.closed.set()

    @property
    def is_closed(self) -> bool:
        return self.closed.is_set()

    def write(self, wire: bytes) -> None:
        if self.client is not None and self.client.transport is not None and not self.is_closed:
            self.client.transport.write(wire)

    def send_json(self, frame: Any) -> None:
        self.write(text_frame(json.dumps(frame, separators=(",", ":")).encode()))

    async def expect(self, predicate: Callable[[Any], bool], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            for n, frame in enumerate(self.inbox):
                if predicate(frame):
                    del self.inbox[:n + 1]
                    return frame
            self.inbox.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.is_closed:
                return None
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)

    def abort(self) -> None:
        if self.client is not None and self.client.transport is not None:
            self.client.transport.abort()

    async def close(self) -> None:
        if self.client is not None and not self.is_closed:
            self.client.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closed.wait(), 2)
        self.abort()


# --- attackers --------------------------------------------------------------------------------

@dataclass
class AttackStats:
    budget: int
    sent: Counter = field(default_factory=Counter)
    connections: int = 0
    refused_at_connect: int = 0
    connect_failures: int = 0
    closes: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def frames(self) -> int:
        return sum(self.sent.values())

    def take(self) -> bool:
        if self.budget <= 0:
            return False
        self.budget -= 1
        return True


def _peerjs_path(rng: random.Random, n: int, good_ids: list[str]) -> str:
    """A PeerJS URL: mostly valid, else one the handshake refuses (or a shared id and token,
    which re-attach and close each other)."""
    roll = rng.random()
    if roll < 0.85:
        return (f"/peerjs/peerjs?key=peerjs&id=atk-{n}-{rng.randint(0, 10**9)}"
                f"&token={secrets.token_hex(8)}&version=1.5.5")
    return rng.choice([
        "/peerjs/peerjs", "/peerjs/peerjs?key=peerjs&id=&token=t",
        "/peerjs/peerjs?key=wrong&id=a&token=t",
        f"/peerjs/peerjs?key=peerjs&id={'i' * 129}&token=t",
        f"/peerjs/peerjs?key=peerjs&id=a&token={'t' * 129}",
        "/peerjs/peerjs?key=peerjs&id=a%00b&token=t", "/peerjs/peerjs?key=peerjs&id=%ff%fe&token=t",
        f"/peerjs/peerjs?key=peerjs&id={rng.choice(good_ids)}&token=guess",
        "/peerjs/peerjs?key=peerjs&key=other&id=a&id=b&token=t",
        "/peerjs/peerjs?%%%=&&&key",
    ])


async def attacker(protocol: str, n: int, seed: int, port: int, stats: AttackStats,
                   good_ids: list[str], stations: list[Attacker], rate: float) -> None:
    """One attacker socket at a time, reconnecting whenever it is closed, until the budget of
    frames of its protocol is spent."""
    rng = random.Random(f"{seed}-{protocol}-{n}")
    junk = Junk(rng, protocol, good_ids)
    pause = 1.0 / rate if rate > 0 else 0.0
    sent_envelopes: list[dict[str, Any]] = []
    while stats.budget > 0:
        path = {"signal": "/ws/signal", "coordinate": "/ws/coordinate"}.get(protocol, "")
        if protocol == "peerjs":
            path = _peerjs_path(rng, n, good_ids)
        sock = Socket()
        try:
            await sock.open(port, path)
        except (OSError, TimeoutError):
            stats.connect_failures += 1
            await asyncio.sleep(0.1)
            continue
        stats.connections += 1
        station = None
        try:
            if protocol == "peerjs":
                first = await sock.expect(lambda f: True, 5)
                if not first or first.get("type") != "OPEN":
                    stats.refused_at_connect += 1
                    continue
            elif protocol == "signal" and rng.random() < 0.6:
                sock.send_json({"type": "REGISTER", "callsign": "GUEST",
                                "room": GOOD_ROOM if rng.random() < 0.7 else "junk"})
                stats.sent["register"] += 1
                await sock.expect(lambda f: f.get("type") in ("REGISTERED", "ERROR"), 5)
            elif protocol == "coordinate":
                hello = await sock.expect(lambda f: True, 5)
                if not hello or hello.get("type") != "HELLO":
                    raise RuntimeError(f"/ws/coordinate answered {hello!r}, not HELLO: is the "
                                       "station claimed?")
                if stations and rng.random() < 0.5:
                    station = stations[n % len(stations)]
                    await _authenticate(sock, station, hello)
            while stats.budget > 0 and not sock.is_closed:
                if station is not None and rng.random() < 0.5:
                    kind, wire = junk.signed(station, sent_envelopes)
                    ends = False
                else:
                    kind, wire, ends = junk.next()
                if not stats.take():
                    break
                sock.write(wire)
                stats.sent[kind] += 1
                if ends:
                    if kind == "truncated_frame":
                        sock.abort()
                    break
                if rng.random() < 0.01:  # an attacker that leaves on its own, now and then
                    break
                if pause:
                    await asyncio.sleep(pause * rng.uniform(0.5, 1.5))
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sock.closed.wait(), 1.0)
            if not sock.is_closed:
                await sock.close()
            stats.closes[sock.close_code] += 1


async def _authenticate(sock: Socket, station: Attacker, hello: dict[str, Any]) -> None:
    from mesh import protocol

    proof = station.sign(protocol.proof_message("client", hello["nonce"], station.station_id,
                                                hello["stationId"]))
    sock.send_json({"type": "AUTH", "credential": station.credential,
                    "nonce": protocol.new_nonce(), "proof": protocol.b64encode(proof)})
    welcome = await sock.expect(lambda f: f.get("type") in ("WELCOME", "REFUSED"), 10)
    if not welcome or welcome.get("type") != "WELCOME":
        raise RuntimeError(f"the trusted attacker station was not welcomed: {welcome!r}")


# --- good clients (a process of their own, so the attackers cannot slow their clock) ----------

@dataclass
class GoodClient:
    name: str
    protocol: str
    sock: Socket
    my_id: str = ""
    partner: str = ""
    pending: dict[int, float] = field(default_factory=dict)
    rtts: list[float] = field(default_factory=list)
    sent: int = 0
    seq: int = 0

    def offer(self) -> None:
        self.seq += 1
        self.pending[self.seq] = time.monotonic()
        self.sent += 1
        if self.protocol == "signal":
            self.sock.send_json({"type": "OFFER", "target": self.partner,
                                 "offer": {"type": "offer", "sdp": "v=0", "seq": self.seq}})
        else:
            self.sock.send_json({"type": "OFFER", "dst": self.partner,
                                 "payload": {"good": self.seq, "sdp": "v=0"}})

    def frame(self, frame: Any) -> None:
        if not isinstance(frame, dict):
            return
        kind = frame.get("type")
        if self.protocol == "signal":
            if frame.get("from") != self.partner:
                return
            if kind == "OFFER_RECEIVED":
                seq = (frame.get("offer") or {}).get("seq")
                self.sock.send_json({"type": "ANSWER", "target": self.partner,
                                     "answer": {"type": "answer", "seq": seq}})
            elif kind == "ANSWER_RECEIVED":
                self._answered((frame.get("answer") or {}).get("seq"))
        else:
            if frame.get("src") != self.partner:
                return
            payload = frame.get("payload") or {}
            if kind == "OFFER" and isinstance(payload, dict) and "good" in payload:
                self.sock.send_json({"type": "ANSWER", "dst": self.partner,
                                     "payload": {"good": payload["good"]}})
            elif kind == "ANSWER" and isinstance(payload, dict):
                self._answered(payload.get("good"))

    def _answered(self, seq: Any) -> None:
        started = self.pending.pop(seq, None) if isinstance(seq, int) else None
        if started is not None:
            self.rtts.append(time.monotonic() - started)


async def _good_clients(port: int, peerjs_ids: list[str], interval: float, pipe: Any) -> None:
    clients: list[GoodClient] = []
    registered = []
    for name in ("native-a", "native-b"):
        sock = await Socket().open(port, "/ws/signal")
        sock.send_json({"type": "REGISTER", "callsign": "GUEST", "room": GOOD_ROOM})
        reply = await sock.expect(lambda f: f.get("type") == "REGISTERED", 10)
        if reply is None:
            raise RuntimeError(f"good client {name} could not REGISTER")
        registered.append(reply["clientId"])
        clients.append(GoodClient(name, "signal", sock, my_id=reply["clientId"]))
    clients[0].partner, clients[1].partner = registered[1], registered[0]
    for peer_id, partner in ((peerjs_ids[0], peerjs_ids[1]), (peerjs_ids[1], peerjs_ids[0])):
        sock = await Socket().open(
            port, f"/peerjs/peerjs?key=peerjs&id={peer_id}&token={secrets.token_hex(16)}")
        if await sock.expect(lambda f: f.get("type") == "OPEN", 10) is None:
            raise RuntimeError(f"good PeerJS client {peer_id} got no OPEN")
        clients.append(GoodClient(peer_id, "peerjs", sock, my_id=peer_id, partner=partner))
    for client in clients:
        client.sock.on_frame = client.frame
    pipe.send({"ready": registered})
    loop = asyncio.get_running_loop()
    stop = loop.run_in_executor(None, pipe.recv)
    last_heartbeat = time.monotonic()
    while not stop.done():
        for client in clients:
            if not client.sock.is_closed:
                client.offer()
        if time.monotonic() - last_heartbeat > 5:
            last_heartbeat = time.monotonic()
            for client in clients:
                if client.protocol == "peerjs":
                    client.sock.send_json({"type": "HEARTBEAT"})
        await asyncio.sleep(interval)
    deadline = time.monotonic() + 5  # answers still on their way
    while any(c.pending for c in clients) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    result = {
        "sent": sum(c.sent for c in clients),
        "answered": sum(len(c.rtts) for c in clients),
        "lost": sum(len(c.pending) for c in clients),
        "closed": [f"{c.name}: {c.sock.close_code}" for c in clients if c.sock.is_closed],
        "rtts": [rtt for c in clients for rtt in c.rtts],
        "by_client": {c.name: (c.sent, len(c.rtts)) for c in clients},
    }
    for client in clients:
        await client.sock.close()
    pipe.send(result)


def _good_process(port: int, peerjs_ids: list[str], interval: float, pipe: Any) -> None:
    try:
        asyncio.run(_good_clients(port, peerjs_ids, interval, pipe))
    except Exception as exc:
        pipe.send({"error": f"{type(exc).__name__}: {exc}"})


# --- the run ----------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.faults malformed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="seed of every generated frame")
    parser.add_argument("--frames", type=int, default=10_000,
                        help="frames per protocol (default 10000)")
    parser.add_argument("--attackers", type=int, default=6,
                        help="attacker sockets per protocol at a time (default 6)")
    parser.add_argument("--rate", type=float, default=40.0,
                        help="frames per second per attacker socket, under the station's "
                             "50/s per-client limit so frames reach the protocol code (0: as "
                             "fast as possible)")
    parser.add_argument("--interval", type=float, default=0.1,
                        help="seconds between two OFFERs of each good client (default 0.1)")
    parser.add_argument("--p99-target", type=float, default=1000.0,
                        help="target for the p99 of a good OFFER answered, in ms (1000)")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS),
                        help="comma-separated subset of signal,peerjs,coordinate")
    parser.add_argument("--log", type=Path, help="keep daphne's log in this file")
    return parser.parse_args(argv)


@dataclass
class Result:
    """Figures of one run, and the targets they are held to."""

    stats: dict[str, AttackStats]
    exceptions: list[str]
    good: dict[str, Any]
    alive: bool
    seconds: float
    p99_target_ms: float
    cpu_seconds: float = 0.0

    @property
    def p99_ms(self) -> float:
        return percentile(self.good.get("rtts", []), 0.99) * 1000

    def missed(self) -> list[str]:
        missed = []
        if self.exceptions:
            missed.append(f"{len(self.exceptions)} server exceptions logged (target 0)")
        if self.good.get("error"):
            missed.append(f"good clients failed: {self.good['error']}")
        if self.good.get("lost", 1):
            missed.append(f"{self.good.get('lost')} good relays lost (target 0)")
        if self.good.get("closed"):
            missed.append(f"good sockets closed: {self.good['closed']} (target 0)")
        if not self.good.get("rtts") or not self.p99_ms <= self.p99_target_ms:
            missed.append(f"p99 answer time {self.p99_ms:.1f} ms (target <= "
                          f"{self.p99_target_ms:g} ms)")
        if not self.alive:
            missed.append("the station stopped answering /api/status")
        return missed

    def report(self) -> str:
        lines = []
        for name, stats in self.stats.items():
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(stats.sent.items()))
            closes = ", ".join(f"{k} x{v}" for k, v in sorted(stats.closes.items(),
                                                               key=lambda kv: str(kv[0])))
            lines.append(f"{name}: {stats.frames} frames in {stats.seconds:.1f} s over "
                         f"{stats.connections} attacker "
                         f"connections ({stats.refused_at_connect} refused at the handshake, "
                         f"{stats.connect_failures} failed to connect)\n"
                         f"    frames: {kinds}\n    close codes seen: {closes}")
        rtts = self.good.get("rtts", [])
        lines += [
            f"duration: {self.seconds:.1f} s; daphne used {self.cpu_seconds:.1f} s of CPU "
            f"({self.cpu_seconds / max(self.seconds, 0.001):.0%} of a core); machine load "
            f"average {' '.join(f'{v:.1f}' for v in os.getloadavg())}",
            f"server exceptions logged: {len(self.exceptions)} (target 0)",
            *(f"    {event}" for event in self.exceptions[:10]),
            f"good relays: {self.good.get('sent', 0)} sent, {self.good.get('answered', 0)} "
            f"answered, lost {self.good.get('lost', '?')} (target 0)",
            f"good client sockets closed: {len(self.good.get('closed', []))} (target 0) "
            f"{self.good.get('closed') or ''}",
            f"good OFFER answered during the flood: p50 {percentile(rtts, 0.5) * 1000:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms (target <= {self.p99_target_ms:g}), max "
            f"{max(rtts, default=float('nan')) * 1000:.1f} ms over {len(rtts)} round trips",
            f"station answers /api/status after the flood: {'yes' if self.alive else 'NO'}",
        ]
        return "\n".join(lines)


async def _attack(args: argparse.Namespace, port: int, good_ids: list[str],
                  stations: list[Attacker]) -> dict[str, AttackStats]:
    protocols = [p for p in args.protocols.split(",") if p]
    stats = {p: AttackStats(args.frames) for p in protocols}

    async def flood(protocol: str) -> None:
        started = time.monotonic()
        await asyncio.gather(*(attacker(protocol, n, args.seed, port, stats[protocol], good_ids,
                                        stations, args.rate) for n in range(args.attackers)))
        stats[protocol].seconds = time.monotonic() - started

    await asyncio.gather(*(flood(p) for p in protocols))
    return stats


def run(args: argparse.Namespace, extra_env: dict[str, str] | None = None) -> Result:
    """Start a claimed station, flood it with malformed frames while the good clients relay,
    stop it; the figures."""
    raise_fd_limit()
    station = Station(1, extra_env={"MESHSITE_LOG_LEVEL": "warning", **(extra_env or {})})
    good_process = None
    try:
        station.start()
        port = station.ports[0]
        stations = claim(station, max(1, args.attackers))
        peerjs_ids = [f"good-a-{args.seed}", f"good-b-{args.seed}"]
        ctx = multiprocessing.get_context("spawn")
        parent_end, child_end = ctx.Pipe()
        good_process = ctx.Process(target=_good_process,
                                   args=(port, peerjs_ids, args.interval, child_end), daemon=True)
        good_process.start()
        if not parent_end.poll(60):
            raise RuntimeError("the good clients did not get ready within 60 s")
        ready = parent_end.recv()
        if "error" in ready:
            raise RuntimeError(f"good clients: {ready['error']}")
        started = time.monotonic()
        cpu_before = station.cpu_seconds()
        stats = asyncio.run(_attack(args, port, [*ready["ready"], *peerjs_ids], stations))
        seconds = time.monotonic() - started
        cpu = station.cpu_seconds() - cpu_before
        parent_end.send("stop")
        good = parent_end.recv() if parent_end.poll(30) else {"error": "no figures in 30 s"}
        good_process.join(10)
        time.sleep(0.5)  # the last log lines
        alive = station.alive() and status_latency(port) is not None
        log = station.log(port)
        if getattr(args, "log", None):
            args.log.write_text(log)
        return Result(stats, server_exceptions(log), good, alive, seconds,
                      args.p99_target, cpu)
    finally:
        if good_process is not None and good_process.is_alive():
            good_process.kill()
        station.stop()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    print(f"malformed: seed {args.seed}, {args.frames} frames per protocol "
          f"({args.protocols}), {args.attackers} attacker sockets per protocol at "
          f"{args.rate:g} frames/s each, good OFFER every {args.interval:g} s", flush=True)
    result = run(args)
    print(result.report())
    missed = result.missed()
    for line in missed:
        print(f"MISSED: {line}")
    print("malformed: all targets met" if not missed else "malformed: targets missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
