"""Mesh messages on the air: compact encoding, fragments, reassembly, selective repeat (no
Django imports).

The same signed envelopes that cross `/ws/coordinate` as JSON cross the RF link as CBOR (RFC
8949), compressed with zlib and a preset dictionary every station ships (`ZDICT`, version
`DICT_VERSION`): field names and message types cost a byte or two, not their spelling. Known
text fields that are hex or base64 on the LAN (`id`, `re`, `sig`) travel as bytes and are
turned back into the exact JSON values, so the signature over the canonical JSON still
verifies; so do base64 fields of payloads (`data` of a forwarded chunk, `m` of a
reconciliation message, signatures). Both the compression and the dictionary are public:
this obscures nothing (Part 97).

Nothing marked encrypted is ever encoded: an envelope whose payload holds, at any depth, a key
`encrypted` or `ciphertext` with a true value raises `EncryptedRefused`.

Each AX.25 information field of the mesh starts with `MAGIC` and a kind:

    DATA    MAGIC 0x01 msg(2) index(1) count(1) chunk   fragment `index` of `count` of message
                                                        number `msg` of the frame's source
    NACK    MAGIC 0x02 msg(2) missing indexes(1 each)   the receiver asks for these again
    BEACON  MAGIC 0x03 CBOR                             the station's ID beacon (see mesh.rf)

A message (at most `MAX_FRAGMENTS` fragments) is reassembled by `Reassembler`, per sender and
message number. When its fragments stop arriving for `gap` seconds while some are missing, the
receiver sends a NACK naming them (`Reassembler.due_nacks`), up to `max_nacks` times; the
sender keeps what it sent for a while (`SentMessages`) and repeats just those fragments. A
message not complete within `timeout` is dropped. Nothing is acknowledged when all is well:
on a shared 1200 bit/s channel silence is the cheapest acknowledgement.
"""

from __future__ import annotations

import base64
import secrets
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import cbor2

MAGIC = 0xA7
KIND_DATA = 0x01
KIND_NACK = 0x02
KIND_BEACON = 0x03
DATA_HEADER = 6
MAX_INFO = 256
MAX_FRAGMENTS = 255
MAX_MESSAGE = 64 * 1024  # decoded size limit of one message

DICT_VERSION = 1
FORMAT_CBOR = 0x00
FORMAT_ZLIB_DICT = 0x01

_WORDS = (
    "type", "id", "from", "ttl", "ts", "re", "req", "payload", "sig",
    "PING", "REPLY", "ERROR", "PEER_ANNOUNCE", "PEER_LIST", "CERT_SYNC", "BLACKLIST_UPDATE",
    "ROUTE_UPDATE", "SEQNO_REQUEST", "FORWARD", "FORWARD_CHUNK", "CONTENT_SYNC",
    "CONTENT_ENTRIES", "CONTENT_DEMAND", "RF_CREDENTIAL", "RF_CREDENTIAL_REQUEST",
    "stationId", "callsign", "fingerprint", "credential", "certificate", "chain", "delegation",
    "key", "endpoints", "capabilities", "version", "updates", "seqno", "metric", "cost",
    "destination", "source", "origin", "request", "kind", "path", "sha256", "size",
    "content_type", "priority", "created", "modified", "signature", "entries", "ranges",
    "digest", "count", "body", "chunk", "offset", "final", "error", "detail", "time",
    "-----BEGIN CERTIFICATE-----\n", "\n-----END CERTIFICATE-----\n", "text/html",
    "text/plain", "application/json",
)
ZDICT = b"".join(cbor2.dumps(word) for word in _WORDS)

_ENCRYPTED_KEYS = ("encrypted", "ciphertext")


class RfCodecError(ValueError):
    """Bytes that are not a mesh message or fragment, or a message that cannot go on the air."""


class EncryptedRefused(RfCodecError):
    """Part 97 forbids encryption on the air: the message is refused, never sent."""


# --- messages -------------------------------------------------------------------------------

def _marked_encrypted(value: Any, depth: int = 0) -> bool:
    if depth > 32:
        return True  # nothing of ours nests this deep: refuse rather than guess
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _ENCRYPTED_KEYS and item:
                return True
            if _marked_encrypted(item, depth + 1):
                return True
    elif isinstance(value, list):
        return any(_marked_encrypted(item, depth + 1) for item in value)
    return False


# Payload keys whose values are base64 on the LAN (a chunk of a body, a reconciliation
# message, a signature): on the air they travel as bytes, a quarter smaller and compressible.
_BASE64_KEYS = frozenset({"sig", "data", "m", "signature"})


def _b64_to_bytes(value: str) -> bytes | None:
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == value else None


def _pack_payload(value: Any, depth: int = 0) -> Any:
    if depth > 32:
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in _BASE64_KEYS and isinstance(item, str):
                raw = _b64_to_bytes(item)
                out[key] = item if raw is None else raw
            else:
                out[key] = _pack_payload(item, depth + 1)
        return out
    if isinstance(value, list):
        return [_pack_payload(item, depth + 1) for item in value]
    return value


def _unpack_payload(value: Any, depth: int = 0) -> Any:
    """JSON has no bytes: every byte string on the air was base64 text on the LAN."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if depth > 64:
        raise RfCodecError("message nests too deeply")
    if isinstance(value, dict):
        return {key: _unpack_payload(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_unpack_payload(item, depth + 1) for item in value]
    return value


def _pack_fields(envelope: dict[str, Any]) -> dict[Any, Any]:
    packed: dict[Any, Any] = _pack_payload(envelope)
    for name in ("id", "re"):
        value = packed.get(name)
        if isinstance(value, str) and value:
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                continue
            if raw.hex() == value:  # only what turns back into the very same text
                packed[name] = raw
    return packed


def _unpack_fields(packed: dict[Any, Any]) -> dict[str, Any]:
    envelope = dict(packed)
    for name in ("id", "re"):
        if isinstance(envelope.get(name), bytes):
            envelope[name] = envelope[name].hex()
    return _unpack_payload(envelope)


def encode_message(envelope: dict[str, Any]) -> bytes:
    """An envelope (a JSON object) -> the bytes that are fragmented onto the air."""
    if _marked_encrypted(envelope.get("payload")) or _marked_encrypted(envelope):
        raise EncryptedRefused(
            f"{envelope.get('type', 'message')} is marked encrypted: Part 97 forbids encrypted "
            "messages on the air, so it is not sent over RF")
    try:
        body = cbor2.dumps(_pack_fields(envelope), canonical=True)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise RfCodecError(f"message cannot be encoded as CBOR: {exc}") from exc
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, ZDICT)
    packed = compressor.compress(body) + compressor.flush()
    if len(packed) < len(body):
        out = bytes([FORMAT_ZLIB_DICT]) + packed
    else:
        out = bytes([FORMAT_CBOR]) + body
    if len(out) > MAX_MESSAGE:
        raise RfCodecError(f"message of {len(out)} bytes is larger than {MAX_MESSAGE} bytes, "
                           "the most one RF message carries")
    return out


def decode_message(data: bytes) -> dict[str, Any]:
    if not data:
        raise RfCodecError("empty message")
    form, rest = data[0], data[1:]
    if form == FORMAT_ZLIB_DICT:
        decompressor = zlib.decompressobj(-15, ZDICT)
        try:
            body = decompressor.decompress(rest, MAX_MESSAGE)
        except zlib.error as exc:
            raise RfCodecError(f"message does not decompress: {exc}") from exc
        if decompressor.unconsumed_tail:
            raise RfCodecError(f"message decompresses to more than {MAX_MESSAGE} bytes")
    elif form == FORMAT_CBOR:
        body = rest
    else:
        raise RfCodecError(f"unknown message format 0x{form:02X}")
    try:
        value = cbor2.loads(body)
    except Exception as exc:  # cbor2 raises several types on bad input
        raise RfCodecError(f"message is not CBOR: {exc}") from exc
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise RfCodecError("message is not a map with text keys")
    return _unpack_fields(value)


# --- fragments ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fragment:
    msg: int
    index: int
    count: int
    chunk: bytes


@dataclass(frozen=True)
class Nack:
    msg: int
    missing: tuple[int, ...]


@dataclass(frozen=True)
class BeaconInfo:
    body: bytes


def fragment(message: bytes, *, msg: int, max_info: int = MAX_INFO) -> list[bytes]:
    """Information fields carrying `message` as message number `msg` (0-65535)."""
    if not 0 <= msg <= 0xFFFF:
        raise RfCodecError(f"message number {msg} is out of range 0-65535")
    size = max_info - DATA_HEADER
    if size < 1:
        raise RfCodecError(f"information field of {max_info} bytes leaves no room for data")
    chunks = [message[i:i + size] for i in range(0, len(message), size)] or [b""]
    if len(chunks) > MAX_FRAGMENTS:
        raise RfCodecError(f"message of {len(message)} bytes needs {len(chunks)} fragments; "
                           f"at most {MAX_FRAGMENTS} fit one RF message")
    return [struct.pack(">BBHBB", MAGIC, KIND_DATA, msg, index, len(chunks)) + chunk
            for index, chunk in enumerate(chunks)]


def nack_info(msg: int, missing: list[int] | tuple[int, ...], *, max_info: int = MAX_INFO
              ) -> bytes:
    wanted = sorted(set(missing))[:max_info - 4]
    if not wanted:
        raise RfCodecError("a NACK names at least one missing fragment")
    return struct.pack(">BBH", MAGIC, KIND_NACK, msg) + bytes(wanted)


def beacon_info(body: bytes) -> bytes:
    return bytes([MAGIC, KIND_BEACON]) + body


def parse_info(info: bytes) -> Fragment | Nack | BeaconInfo | None:
    """An information field -> what it carries; None when it is not the mesh's (APRS, chat);
    `RfCodecError` when it is the mesh's but malformed."""
    if len(info) < 2 or info[0] != MAGIC:
        return None
    kind = info[1]
    if kind == KIND_DATA:
        if len(info) < DATA_HEADER:
            raise RfCodecError(f"DATA fragment of {len(info)} bytes is shorter than its header")
        _, _, msg, index, count = struct.unpack(">BBHBB", info[:DATA_HEADER])
        if count == 0 or index >= count:
            raise RfCodecError(f"fragment {index} of {count} is impossible")
        return Fragment(msg, index, count, bytes(info[DATA_HEADER:]))
    if kind == KIND_NACK:
        if len(info) < 5:
            raise RfCodecError("NACK names no missing fragment")
        (msg,) = struct.unpack(">H", info[2:4])
        return Nack(msg, tuple(info[4:]))
    if kind == KIND_BEACON:
        return BeaconInfo(bytes(info[2:]))
    raise RfCodecError(f"unknown mesh frame kind 0x{kind:02X}")


@dataclass
class _Partial:
    count: int
    chunks: dict[int, bytes]
    started: float
    last: float
    nacks: int = 0
    nacked_at: float = 0.0


@dataclass
class Reassembler:
    """Fragments in, whole messages out, per (sender, message number)."""

    timeout: float = 300.0  # a message not whole by then is dropped
    gap: float = 10.0  # silence on an incomplete message before asking for what is missing
    max_nacks: int = 10
    max_partials: int = 64
    partials: dict[tuple[str, int], _Partial] = field(default_factory=dict)
    done: dict[tuple[str, int], float] = field(default_factory=dict)  # recently completed
    dropped: int = 0

    def add(self, sender: str, frag: Fragment, now: float) -> bytes | None:
        key = (sender, frag.msg)
        if key in self.done:
            return None  # a repeat of a fragment of a message we already have
        partial = self.partials.get(key)
        if partial is not None and partial.count != frag.count:
            partial = None  # the number was reused for a new message: start again
        if partial is None:
            if len(self.partials) >= self.max_partials:
                oldest = min(self.partials, key=lambda k: self.partials[k].last)
                del self.partials[oldest]
                self.dropped += 1
            partial = self.partials[key] = _Partial(frag.count, {}, now, now)
        partial.chunks[frag.index] = frag.chunk
        partial.last = now
        if len(partial.chunks) < partial.count:
            return None
        del self.partials[key]
        self.done[key] = now
        return b"".join(partial.chunks[i] for i in range(partial.count))

    def receiving(self, sender: str, now: float) -> bool:
        """Whether a message from `sender` is partly here and still being completed (its
        missing fragments asked for or about to be)."""
        return any(key[0] == sender and partial.nacks < self.max_nacks and
                   now - partial.started <= self.timeout
                   for key, partial in self.partials.items())

    def due_nacks(self, now: float) -> list[tuple[str, int, list[int]]]:
        """(sender, msg, missing) for each message to ask again for; drops expired ones."""
        out = []
        for key, partial in list(self.partials.items()):
            if now - partial.started > self.timeout or (
                    partial.nacks >= self.max_nacks and now - partial.nacked_at > self.gap * 6):
                del self.partials[key]
                self.dropped += 1
                continue
            quiet_since = max(partial.last, partial.nacked_at)
            # Each NACK waits twice as long as the one before (up to 8 gaps): the sender's
            # repeats may be waiting for air time, and asking again only queues them twice.
            wait = self.gap * min(2 ** partial.nacks, 8)
            if partial.nacks < self.max_nacks and now - quiet_since >= wait:
                missing = [i for i in range(partial.count) if i not in partial.chunks]
                partial.nacks += 1
                partial.nacked_at = now
                out.append((key[0], key[1], missing))
        for key, at in list(self.done.items()):
            if now - at > self.timeout:
                del self.done[key]
        return out


@dataclass
class SentMessages:
    """What this station sent, kept `keep` seconds to repeat the fragments a receiver misses."""

    keep: float = 300.0
    limit: int = 256
    messages: dict[int, tuple[float, list[bytes]]] = field(default_factory=dict)
    next_msg: int = field(default_factory=lambda: secrets.randbelow(0x10000))

    def add(self, message: bytes, now: float, *,
            max_info: int = MAX_INFO) -> tuple[int, list[bytes]]:
        msg = self.next_msg
        self.next_msg = (self.next_msg + 1) & 0xFFFF
        infos = fragment(message, msg=msg, max_info=max_info)
        self.messages[msg] = (now, infos)
        for old in [m for m, (at, _) in self.messages.items() if now - at > self.keep]:
            del self.messages[old]
        while len(self.messages) > self.limit:
            del self.messages[next(iter(self.messages))]
        return msg, infos

    def repeat(self, nack: Nack) -> list[bytes]:
        entry = self.messages.get(nack.msg)
        if entry is None:
            return []
        infos = entry[1]
        return [infos[i] for i in sorted(set(nack.missing)) if i < len(infos)]


# --- the ID beacon --------------------------------------------------------------------------

BEACON_VERSION = 1
MAX_DIGEST = 16


@dataclass(frozen=True)
class Beacon:
    """Presence on the air: who (station key, owner callsign, owner certificate fingerprint),
    a short digest of its catalog (equal digests: nothing to reconcile) and when."""

    station_id: str
    public_key: bytes
    callsign: str
    fingerprint: str
    digest: bytes
    ts: int


def _beacon_signed_part(fields: dict[str, Any]) -> bytes:
    return b"meshsite-rf-beacon-v1\n" + cbor2.dumps(fields, canonical=True)


def beacon_encode(*, public_key: bytes, callsign: str, fingerprint: str, digest: bytes,
                  ts: int, sign: Any) -> bytes:
    """The body of a BEACON frame, signed with the station key (`sign(bytes) -> bytes`)."""
    try:
        fingerprint_raw = bytes.fromhex(fingerprint)
    except ValueError as exc:
        raise RfCodecError(f"fingerprint {fingerprint!r} is not hex") from exc
    fields = {"v": BEACON_VERSION, "k": public_key, "c": callsign, "f": fingerprint_raw,
              "d": digest[:MAX_DIGEST], "t": ts}
    fields["s"] = sign(_beacon_signed_part(fields))
    body = cbor2.dumps(fields, canonical=True)
    if len(body) > MAX_INFO - 2:
        raise RfCodecError(f"beacon of {len(body)} bytes does not fit one frame")
    return body


def beacon_decode(body: bytes, *, now_ms: int, window_ms: int) -> Beacon:
    """Check a BEACON body: shape, the signature by the key it carries, its age."""
    import hashlib

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ed25519

    try:
        fields = cbor2.loads(body)
    except Exception as exc:
        raise RfCodecError(f"beacon is not CBOR: {exc}") from exc
    if not isinstance(fields, dict) or fields.get("v") != BEACON_VERSION:
        raise RfCodecError("beacon is not a version 1 map")
    key, callsign, fingerprint = fields.get("k"), fields.get("c"), fields.get("f")
    digest, ts, signature = fields.get("d", b""), fields.get("t"), fields.get("s")
    if not (isinstance(key, bytes) and len(key) == 32 and isinstance(callsign, str)
            and 0 < len(callsign) <= 16 and isinstance(fingerprint, bytes)
            and len(fingerprint) <= 64 and isinstance(digest, bytes)
            and len(digest) <= MAX_DIGEST and isinstance(ts, int) and not isinstance(ts, bool)
            and isinstance(signature, bytes)):
        raise RfCodecError("beacon fields are missing or of the wrong type")
    unsigned = {name: value for name, value in fields.items() if name != "s"}
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(key).verify(
            signature, _beacon_signed_part(unsigned))
    except (InvalidSignature, ValueError) as exc:
        raise RfCodecError("beacon signature does not verify with the key it carries") from exc
    if abs(now_ms - ts) > window_ms:
        raise RfCodecError(f"beacon time {ts} is {abs(now_ms - ts) // 1000} s from now")
    station_id = hashlib.sha256(key).hexdigest()[:32]
    return Beacon(station_id, key, callsign, fingerprint.hex(), digest, ts)
