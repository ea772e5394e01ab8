"""The mesh message model: signed envelopes, the link handshake and replay rules (no Django).

Every message on `/ws/coordinate` is one JSON object, an *envelope*:

    {"type": "CERT_SYNC", "id": "<32 hex>", "from": "<sender station id>", "ttl": 10,
     "ts": <sender clock, ms since the epoch>, "re": "<id of the request answered>" | null,
     "req": true | false, "payload": {...}, "sig": "<base64 Ed25519 signature>"}

`sig` signs the canonical JSON of every other field (keys sorted, no spaces, UTF-8), with the
sender's station key. A receiver refuses an envelope whose signature does not verify with the
key proven in the handshake, whose `from` is not the linked station, whose timestamp lies
outside the replay window, or whose id it has already seen (the station's processes share
the seen ids in Redis, kept for twice the window, so an old message cannot come back after its
id was forgotten; `ReplayGuard` is the same rule in memory, for a single process).

The handshake before any envelope (both sides prove their station key over the other's fresh
nonce, and present the credential that chains the key to a licensed owner):

    server -> client  {"type": "HELLO", "stationId": S, "nonce": Ns, "protocol": 1}
    client -> server  {"type": "AUTH", "credential": {...}, "nonce": Nc,
                       "endpoints": ["http://10.0.0.5:8080", ...],
                       "proof": sign_c(proof_message("client", Ns, C, S, endpoints))}
    server -> client  {"type": "WELCOME", "credential": {...},
                       "proof": sign_s(proof_message("server", Nc, S, C))}
    or either side    {"type": "REFUSED", "error": code, "detail": text}, then close.

`endpoints` (optional, at most MAX_ENDPOINTS base URLs) are where the dialling station says it
can be reached; the proof covers them, so a man in the middle cannot swap them. The accepting
station checks them by connecting back before it records one.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 1024 * 1024
MAX_ENDPOINTS = 8
ID_HEX_LENGTH = 32

# Handshake frame types (unsigned: they carry their own proofs).
HELLO = "HELLO"
AUTH = "AUTH"
WELCOME = "WELCOME"
REFUSED = "REFUSED"

# Message types of the mesh itself; later apps register theirs in `mesh.registry`.
PEER_ANNOUNCE = "PEER_ANNOUNCE"
PEER_LIST = "PEER_LIST"
CERT_SYNC = "CERT_SYNC"
BLACKLIST_UPDATE = "BLACKLIST_UPDATE"
PING = "PING"
REPLY = "REPLY"
ERROR = "ERROR"

_ENVELOPE_FIELDS = {"type", "id", "from", "ttl", "ts", "re", "req", "payload", "sig"}


class ProtocolError(Exception):
    """A frame that breaks the protocol: `code` for machines, `detail` says what was wrong."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def canonical_text(data: Any) -> str:
    """The canonical JSON as text: keys sorted, no spaces, non-ASCII as is."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(data: Any) -> bytes:
    """The one byte form that signatures cover."""
    return canonical_text(data).encode()


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ProtocolError("malformed", f"{what} must be a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ProtocolError("malformed", f"{what} is not valid base64") from exc


def new_message_id() -> str:
    return secrets.token_hex(ID_HEX_LENGTH // 2)


def new_nonce() -> str:
    return secrets.token_urlsafe(32)


def now_ms() -> int:
    return int(time.time() * 1000)


def proof_message(role: str, nonce: str, prover_id: str, verifier_id: str,
                  endpoints: list[str] | tuple[str, ...] = ()) -> bytes:
    """What a side signs in the handshake: the other side's nonce, bound to both station ids and
    to its role, so a proof can be neither replayed on another link nor reflected back; and the
    endpoints the prover states, when it states any."""
    lines = ["meshsite-coordinate-v1", role, nonce, prover_id, verifier_id]
    if endpoints:
        lines.append("endpoints:" + " ".join(endpoints))
    return "\n".join(lines).encode()


def endpoints_field(value: Any) -> list[str]:
    """The `endpoints` of an AUTH frame: a list of at most MAX_ENDPOINTS short strings (each is
    checked as a URL by whoever uses it), or ProtocolError."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_ENDPOINTS or not all(
            isinstance(item, str) and 0 < len(item) <= 300 and " " not in item
            for item in value):
        raise ProtocolError("malformed", f"'endpoints' must be a list of at most "
                                         f"{MAX_ENDPOINTS} URLs of up to 300 characters")
    return value


def parse_frame(text: str | bytes) -> dict[str, Any]:
    """Decode one WebSocket frame into a JSON object, or raise ProtocolError."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("malformed", "frame is not UTF-8") from exc
    if len(text) > MAX_FRAME_BYTES:
        raise ProtocolError("too_large", f"frame larger than {MAX_FRAME_BYTES} bytes")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProtocolError("malformed", f"frame is not JSON: {exc}") from exc
    except RecursionError as exc:  # about 1000 nested arrays or objects: not a frame of ours
        raise ProtocolError("malformed", "frame is nested too deeply") from exc
    if not isinstance(data, dict):
        raise ProtocolError("malformed", "frame must be a JSON object")
    if not isinstance(data.get("type"), str) or not data["type"]:
        raise ProtocolError("malformed", "frame has no 'type'")
    return data


def build_envelope(*, type_: str, sender: str, payload: dict[str, Any],
                   sign: Callable[[bytes], bytes], ttl: int, re: str | None = None,
                   request: bool = False, ts: int | None = None,
                   message_id: str | None = None) -> dict[str, Any]:
    """A signed envelope ready to send (see the module docstring)."""
    envelope = {
        "type": type_, "id": message_id or new_message_id(), "from": sender, "ttl": ttl,
        "ts": now_ms() if ts is None else ts, "re": re, "req": request, "payload": payload,
    }
    envelope["sig"] = b64encode(sign(canonical_json(envelope)))
    return envelope


def envelope_text(*, type_: str, sender: str, payload: dict[str, Any],
                  sign: Callable[[bytes], bytes], ttl: int, re: str | None = None,
                  request: bool = False, ts: int | None = None,
                  message_id: str | None = None) -> tuple[str, str]:
    """(id, text): `build_envelope`'s envelope as the text sent, serialised once. The keys
    sort as from, id, payload, re, req, sig, ts, ttl, type, so the canonical JSON of the
    unsigned envelope is a head (from .. req) and a tail (ts .. type), and the signed text is
    the same two pieces with `sig` between them: a large payload (a body's chunk) is serialised
    once, not once to sign and again to send."""
    message_id = message_id or new_message_id()
    head = canonical_text({"from": sender, "id": message_id, "payload": payload, "re": re,
                           "req": request})[:-1]
    tail = canonical_text({"ts": now_ms() if ts is None else ts, "ttl": ttl,
                           "type": type_})[1:]
    signature = b64encode(sign(f"{head},{tail}".encode()))
    return message_id, f'{head},"sig":"{signature}",{tail}'


@dataclass(frozen=True)
class Envelope:
    type: str
    id: str
    sender: str
    ttl: int
    ts: int
    re: str | None
    request: bool
    payload: dict[str, Any]


def check_envelope(data: dict[str, Any], *, expected_sender: str,
                   verify: Callable[[bytes, bytes], None], window_ms: int,
                   now: int | None = None) -> Envelope:
    """Validate shape, sender, timestamp window and signature; raise ProtocolError.

    `verify(signature, message)` raises any exception when the signature is wrong. The replay
    check on the id is the caller's (it needs shared state: see `ReplayGuard`)."""
    extra = set(data) - _ENVELOPE_FIELDS
    if extra:
        raise ProtocolError("malformed", f"unknown envelope fields: {', '.join(sorted(extra))}")
    message_id = data.get("id")
    if not isinstance(message_id, str) or len(message_id) != ID_HEX_LENGTH or any(
            c not in "0123456789abcdef" for c in message_id):
        raise ProtocolError("malformed", "envelope 'id' must be 32 lowercase hex digits")
    ttl, ts = data.get("ttl"), data.get("ts")
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 <= ttl <= 64:
        raise ProtocolError("malformed", "envelope 'ttl' must be an integer from 0 to 64")
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise ProtocolError("malformed", "envelope 'ts' must be an integer (ms since the epoch)")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise ProtocolError("malformed", "envelope 'payload' must be an object")
    re = data.get("re")
    if re is not None and not isinstance(re, str):
        raise ProtocolError("malformed", "envelope 're' must be a message id or null")
    if not isinstance(data.get("req", False), bool):
        raise ProtocolError("malformed", "envelope 'req' must be true or false")
    if data.get("from") != expected_sender:
        raise ProtocolError("wrong_sender",
                            f"envelope from {data.get('from')!r} on the link of {expected_sender}")
    signature = b64decode(data.get("sig"), "envelope 'sig'")
    unsigned = {key: value for key, value in data.items() if key != "sig"}
    unsigned.setdefault("re", None)
    unsigned.setdefault("req", False)
    try:
        verify(signature, canonical_json(unsigned))
    except Exception as exc:
        raise ProtocolError("bad_signature", "envelope signature does not verify") from exc
    current = now_ms() if now is None else now
    if abs(current - ts) > window_ms:
        raise ProtocolError("stale", f"timestamp {ts} is {abs(current - ts) / 1000:.0f}s away "
                                     f"from now (window {window_ms / 1000:.0f}s)")
    return Envelope(type=data["type"], id=message_id, sender=expected_sender, ttl=ttl, ts=ts,
                    re=re, request=bool(data.get("req", False)), payload=payload)


class ReplayGuard:
    """Seen message ids in memory, each kept for `keep_ms` (twice the replay window)."""

    def __init__(self, keep_ms: int, limit: int = 100_000) -> None:
        self.keep_ms = keep_ms
        self.limit = limit
        self._seen: OrderedDict[str, int] = OrderedDict()

    def first_time(self, message_id: str, now: int | None = None) -> bool:
        current = now_ms() if now is None else now
        while self._seen:
            oldest_id, seen_at = next(iter(self._seen.items()))
            if current - seen_at <= self.keep_ms and len(self._seen) < self.limit:
                break
            del self._seen[oldest_id]
        if message_id in self._seen:
            return False
        self._seen[message_id] = current
        return True
