"""Range-based set reconciliation over (timestamp, id), in the style of negentropy.

Two stations each hold a set of catalog items: a 64-bit HLC timestamp (`catalog.hlc`, packed)
and a 32-byte id (the SHA-256 of the signed entry, which commits to the timestamp). They find
the symmetric difference by exchanging messages until neither has anything left to say.

The key space, ordered by (timestamp, id), is cut into consecutive ranges. A message is a
header and a list of range entries; each names its upper bound (the lower bound is the previous
entry's upper bound, the first starts at the bottom of the key space) and a mode:

- SKIP: nothing to do here.
- FINGERPRINT: "my items in this range hash to F". The receiver compares with its own: equal
  ranges are done; a differing range is split into sub-ranges with their fingerprints (cut at
  the receiver's own items), or, once it holds at most `leaf_threshold` items, answered by LEAF.
- LEAF: "here are short (4-byte, salted) hashes of all my items in this range". The receiver
  learns which of its items the sender lacks and which short hashes it lacks itself and answers
  LEAF_REPLY.
- LEAF_REPLY: full keys the leaf's sender lacks, and the short hashes the replier needs.
- ITEMS: full keys answering the short hashes a LEAF_REPLY asked for.

Fingerprints are a salted BLAKE2b of (sum mod 2^256 of each item's BLAKE2b(timestamp, id),
count), so the fingerprint of any range costs O(1) with prefix sums. The salt is chosen per
session by the initiator, so a truncated fingerprint that collides once does not collide again
in the next session.

Bounds are delta-encoded against the previous bound and chosen, when a range is split, as the
value with the most trailing zero bits between two neighbouring items, plus the shortest id
prefix only when both share a timestamp; a typical bound costs two or three bytes.

Messages are bounded: the header carries the maximum message size and the leaf threshold the
initiator chose, both sides honour them, and a side that runs out of room ends its message with
one fingerprint covering everything from there to the top of the key space, which the other side
continues next message. So the same protocol runs over 256-byte radio frames, only in more round
trips. Every atomic entry fits in an empty message, so every message makes progress.

The cost grows with the number of differences (each needs about log_b(n / leaf) levels of
fingerprints), not with the size of the catalogs: equal catalogs take one fingerprint.

The responder is stateless: it needs only its catalog and the message. Each side accumulates
`have` (its items the other lacks) and `need` (the other's items it lacks).

No Django imports: used by the station, the tests and `bench/catalog_sync` alike.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

VERSION = 1
ID_BYTES = 32
FINGERPRINT_BYTES = 6
SHORT_HASH_BYTES = 4
MAX_TIMESTAMP = (1 << 64) - 1
MAX_MESSAGE_SIZE = 1 << 20
SKIP, FINGERPRINT, LEAF, LEAF_REPLY, ITEMS = range(5)
_MODE_NAMES = ("SKIP", "FINGERPRINT", "LEAF", "LEAF_REPLY", "ITEMS")

_ZERO_KEY = (0, b"\0" * ID_BYTES)
_TOP_TS = 1 << 64  # above every timestamp: the "infinity" bound
_TOP_KEY = (_TOP_TS, b"")
_HEADER_MAX = 1 + 4 + 1 + 3
_BOUND_MAX = 2 + 10 + ID_BYTES  # entry header varint, timestamp delta varint, id prefix
# What ending a message early costs at most: flushing a pending SKIP plus one top fingerprint.
_RESERVE = _BOUND_MAX + 1 + FINGERPRINT_BYTES
_LEAF_REPLY_BASE = _BOUND_MAX + 2 + 2
_KEY_MAX = 10 + ID_BYTES


def max_leaf_threshold(max_message_size: int) -> int:
    """The largest leaf threshold whose biggest entry (a LEAF_REPLY) fits a message of this
    size next to the header and the reserve for ending early."""
    room = max_message_size - _HEADER_MAX - _RESERVE - _BOUND_MAX - _LEAF_REPLY_BASE
    return min(255, max(0, room // (_KEY_MAX + SHORT_HASH_BYTES)))


MIN_MESSAGE_SIZE = (_HEADER_MAX + _RESERVE + _BOUND_MAX + _LEAF_REPLY_BASE + _KEY_MAX
                    + SHORT_HASH_BYTES)


class ReconcileError(ValueError):
    """A message that breaks the protocol; the text says what was wrong."""


@dataclass(frozen=True, order=True, slots=True)
class Item:
    """One catalog item: packed HLC timestamp and 32-byte id."""

    timestamp: int
    id: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.timestamp, int) or not 0 <= self.timestamp <= MAX_TIMESTAMP:
            raise ReconcileError(f"timestamp {self.timestamp!r} is not a 64-bit unsigned integer")
        if not isinstance(self.id, bytes) or len(self.id) != ID_BYTES:
            raise ReconcileError(f"an item id must be {ID_BYTES} bytes")


# --- encoding -----------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def done(self) -> bool:
        return self.pos >= len(self.data)

    def varint(self, what: str) -> int:
        value = shift = 0
        for _ in range(11):
            if self.pos >= len(self.data):
                raise ReconcileError(f"message ends inside {what}")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise ReconcileError(f"{what} is a varint longer than 11 bytes")

    def take(self, count: int, what: str) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise ReconcileError(f"message ends inside {what}")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk


def _pad(prefix: bytes) -> bytes:
    return prefix + b"\0" * (ID_BYTES - len(prefix))


@dataclass(frozen=True, slots=True)
class _Bound:
    """An upper bound: a timestamp and an id prefix, or the top of the key space."""

    ts: int
    prefix: bytes = b""

    @property
    def key(self) -> tuple[int, bytes]:
        return _TOP_KEY if self.ts == _TOP_TS else (self.ts, _pad(self.prefix))


_TOP = _Bound(_TOP_TS)


def _encode_entry(bound: _Bound, mode: int, payload: bytes, prev_ts: int) -> bytes:
    if bound.ts == _TOP_TS:
        return _varint(mode | 8) + payload
    delta = bound.ts - prev_ts
    shift = 0
    if delta:
        shift = min(63, (delta & -delta).bit_length() - 1)
    head = _varint(mode | (len(bound.prefix) << 4))
    return head + _varint(((delta >> shift) << 6) | shift) + bound.prefix + payload


def _choose_bound(before: tuple[int, bytes], after: tuple[int, bytes], base_ts: int) -> _Bound:
    """The cheapest bound b with before < b <= after: the timestamp with the most trailing zero
    bits in its delta from base_ts, and an id prefix only when the two share a timestamp."""
    low_ts, high_ts = before[0], after[0]
    if low_ts < high_ts:
        low, high = low_ts - base_ts, high_ts - base_ts  # want low < delta <= high
        for shift in range(high.bit_length(), -1, -1):
            candidate = (high >> shift) << shift
            if candidate > low:
                return _Bound(base_ts + candidate)
    common = 0
    while before[1][common] == after[1][common]:
        common += 1
    return _Bound(high_ts, after[1][:common + 1])


def _encode_keys(keys: list[tuple[int, bytes]], base_ts: int) -> bytes:
    out = bytearray(_varint(len(keys)))
    prev = base_ts
    for ts, item_id in keys:
        out += _varint(ts - prev) + item_id
        prev = ts
    return bytes(out)


# --- the catalog --------------------------------------------------------------------------


class Catalog:
    """An immutable sorted set of items with prefix sums, for O(log n) range fingerprints."""

    def __init__(self, items: Iterable[Item | tuple[int, bytes]] = ()) -> None:
        keys = set()
        for item in items:
            checked = item if isinstance(item, Item) else Item(*item)
            keys.add((checked.timestamp, checked.id))
        self.keys: list[tuple[int, bytes]] = sorted(keys)
        sums = [0] * (len(self.keys) + 1)
        running = 0
        for index, (ts, item_id) in enumerate(self.keys, start=1):
            # Hash the timestamp in: two items with one id but different timestamps differ.
            element = hashlib.blake2b(ts.to_bytes(8, "little") + item_id).digest()[:32]
            running = (running + int.from_bytes(element, "little")) & ((1 << 256) - 1)
            sums[index] = running
        self._sums = sums

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, item: Item) -> bool:
        key = (item.timestamp, item.id)
        index = bisect.bisect_left(self.keys, key)
        return index < len(self.keys) and self.keys[index] == key

    def items(self) -> list[Item]:
        return [Item(ts, item_id) for ts, item_id in self.keys]

    def span(self, low: tuple[int, bytes], high: tuple[int, bytes]) -> tuple[int, int]:
        return bisect.bisect_left(self.keys, low), bisect.bisect_left(self.keys, high)

    def fingerprint(self, start: int, end: int, salt: bytes) -> bytes:
        total = (self._sums[end] - self._sums[start]) % (1 << 256)
        data = total.to_bytes(32, "little") + _varint(end - start)
        return hashlib.blake2b(data, digest_size=FINGERPRINT_BYTES, key=salt).digest()


def short_hash(key: tuple[int, bytes], salt: bytes) -> bytes:
    return hashlib.blake2b(key[0].to_bytes(8, "little") + key[1],
                           digest_size=SHORT_HASH_BYTES, key=salt).digest()


# --- the protocol -------------------------------------------------------------------------


@dataclass(slots=True)
class _Out:
    low: tuple[int, bytes]
    bound: _Bound
    mode: int
    payload: bytes = b""


@dataclass
class Reconciler:
    """One side of a reconciliation session over `catalog`.

    The initiator calls `initiate()` and then `reconcile()` on each reply until it returns
    None; the responder calls `reconcile()` on each message it receives (and may be a fresh
    object each time: it keeps no state beyond `have` / `need`).
    """

    catalog: Catalog
    max_message_size: int = 4096
    leaf_threshold: int = 16
    branching: int = 16
    top_branching: int = 64
    have: set[Item] = field(default_factory=set)
    need: set[Item] = field(default_factory=set)
    salt: bytes = b""
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def __post_init__(self) -> None:
        if not MIN_MESSAGE_SIZE <= self.max_message_size <= MAX_MESSAGE_SIZE:
            raise ReconcileError(f"max_message_size must be {MIN_MESSAGE_SIZE}.."
                                 f"{MAX_MESSAGE_SIZE} bytes, not {self.max_message_size}")
        if self.branching < 2 or self.top_branching < 2:
            raise ReconcileError("branching factors must be at least 2")
        if not 1 <= self.leaf_threshold <= 255:
            raise ReconcileError("leaf_threshold must be 1..255")
        self.leaf_threshold = min(self.leaf_threshold, max_leaf_threshold(self.max_message_size))
        self._initiator = False

    # public API

    def initiate(self) -> bytes:
        """The first message: one fingerprint over the whole key space."""
        self._initiator = True
        self.salt = os.urandom(4)
        fp = self.catalog.fingerprint(0, len(self.catalog), self.salt)
        return self._finish([_Out(_ZERO_KEY, _TOP, FINGERPRINT, fp)])

    def reconcile(self, message: bytes) -> bytes | None:
        """Process one message; return the reply, or None when there is nothing left to say."""
        entries = self._parse(message)
        self.messages_in += 1
        self.bytes_in += len(message)
        out: list[_Out] = []
        for low, bound, mode, payload in entries:
            self._answer(low, bound, mode, payload, out)
        return self._finish(out)

    # parsing

    def _parse(self, message: bytes) -> list[tuple[tuple[int, bytes], _Bound, int, object]]:
        if not isinstance(message, bytes | bytearray | memoryview):
            raise ReconcileError("a reconciliation message must be bytes")
        message = bytes(message)
        if len(message) > MAX_MESSAGE_SIZE:
            raise ReconcileError(f"message of {len(message)} bytes is over {MAX_MESSAGE_SIZE}")
        reader = _Reader(message)
        version = reader.take(1, "the header")[0]
        if version != VERSION:
            raise ReconcileError(f"protocol version {version} is not supported (only {VERSION})")
        salt = reader.take(4, "the header")
        leaf = reader.take(1, "the header")[0]
        limit = reader.varint("the header")
        if self._initiator:
            if salt != self.salt:
                raise ReconcileError("message belongs to another session (salt differs)")
        else:
            if not MIN_MESSAGE_SIZE <= limit <= MAX_MESSAGE_SIZE:
                raise ReconcileError(f"message size limit {limit} is outside "
                                     f"{MIN_MESSAGE_SIZE}..{MAX_MESSAGE_SIZE}")
            if not 1 <= leaf <= max_leaf_threshold(limit):
                raise ReconcileError(f"leaf threshold {leaf} does not fit messages of {limit}")
            self.salt, self.leaf_threshold, self.max_message_size = salt, leaf, limit
        if len(message) > self.max_message_size:
            raise ReconcileError(f"message of {len(message)} bytes is over the session limit "
                                 f"of {self.max_message_size}")
        entries = []
        low = _ZERO_KEY
        prev_ts = 0
        while not reader.done():
            if low == _TOP_KEY:
                raise ReconcileError("entries after the top of the key space")
            head = reader.varint("an entry header")
            mode, top, prefix_len = head & 7, head & 8, head >> 4
            if mode > ITEMS:
                raise ReconcileError(f"unknown range mode {mode}")
            if top:
                if prefix_len:
                    raise ReconcileError("the top bound has no id prefix")
                bound = _TOP
            else:
                if prefix_len > ID_BYTES:
                    raise ReconcileError(f"id prefix of {prefix_len} bytes is over {ID_BYTES}")
                raw = reader.varint("a bound")
                ts = prev_ts + ((raw >> 6) << (raw & 63))
                if ts > MAX_TIMESTAMP:
                    raise ReconcileError("a bound's timestamp is over 64 bits")
                bound = _Bound(ts, reader.take(prefix_len, "a bound's id prefix"))
                prev_ts = ts
            high = bound.key
            if high <= low:
                raise ReconcileError("range bounds are not ascending")
            payload = self._parse_payload(reader, mode, low, high)
            entries.append((low, bound, mode, payload))
            low = high
        return entries

    def _parse_payload(self, reader: _Reader, mode: int, low: tuple[int, bytes],
                       high: tuple[int, bytes]) -> object:
        if mode == FINGERPRINT:
            return reader.take(FINGERPRINT_BYTES, "a fingerprint")
        if mode == LEAF:
            return self._parse_hashes(reader)
        if mode == LEAF_REPLY:
            return self._parse_keys(reader, low, high), self._parse_hashes(reader)
        if mode == ITEMS:
            return self._parse_keys(reader, low, high)
        return None

    def _parse_hashes(self, reader: _Reader) -> list[bytes]:
        count = reader.varint("a hash count")
        if count > self.max_message_size // SHORT_HASH_BYTES:
            raise ReconcileError(f"hash count {count} cannot fit the message")
        return [reader.take(SHORT_HASH_BYTES, "a short hash") for _ in range(count)]

    def _parse_keys(self, reader: _Reader, low: tuple[int, bytes],
                    high: tuple[int, bytes]) -> list[tuple[int, bytes]]:
        count = reader.varint("an item count")
        if count > self.max_message_size // ID_BYTES:
            raise ReconcileError(f"item count {count} cannot fit the message")
        keys = []
        prev = low[0]
        for _ in range(count):
            ts = prev + reader.varint("an item timestamp")
            key = (ts, reader.take(ID_BYTES, "an item id"))
            if not low <= key < high or ts > MAX_TIMESTAMP:
                raise ReconcileError("an item lies outside its range")
            keys.append(key)
            prev = ts
        return keys

    # answering

    def _answer(self, low: tuple[int, bytes], bound: _Bound, mode: int, payload: object,
                out: list[_Out]) -> None:
        high = bound.key
        start, end = self.catalog.span(low, high)
        count = end - start
        salt = self.salt
        if mode == SKIP:
            out.append(_Out(low, bound, SKIP))
        elif mode == FINGERPRINT:
            if self.catalog.fingerprint(start, end, salt) == payload:
                out.append(_Out(low, bound, SKIP))
            elif count <= self.leaf_threshold:
                out.append(_Out(low, bound, LEAF, self._hash_list(start, end)))
            else:
                self._split(low, bound, start, end, out)
        elif mode == LEAF:
            if len(payload) > self.leaf_threshold:  # type: ignore[arg-type]
                raise ReconcileError("a LEAF lists more items than the session's leaf threshold")
            theirs = set(payload)  # type: ignore[arg-type]
            mine = {short_hash(key, salt): key for key in self.catalog.keys[start:end]}
            lacking = [key for digest, key in mine.items() if digest not in theirs]
            self.have.update(Item(*key) for key in lacking)
            if count > self.leaf_threshold:
                self._split(low, bound, start, end, out)
                return
            needs = [digest for digest in payload if digest not in mine]  # type: ignore[attr-defined]
            if not lacking and not needs:
                out.append(_Out(low, bound, SKIP))
                return
            lacking.sort()
            body = _encode_keys(lacking, low[0]) + _varint(len(needs)) + b"".join(needs)
            out.append(_Out(low, bound, LEAF_REPLY, body))
        elif mode == LEAF_REPLY:
            keys, needs = payload  # type: ignore[misc]
            if len(keys) > self.leaf_threshold or len(needs) > self.leaf_threshold:
                raise ReconcileError("a LEAF_REPLY lists more items than the leaf threshold")
            self.need.update(Item(*key) for key in keys
                             if Item(*key) not in self.catalog)
            if not needs:
                out.append(_Out(low, bound, SKIP))
                return
            if count > self.leaf_threshold:
                raise ReconcileError("LEAF_REPLY for a range larger than a leaf")
            wanted = set(needs)
            send = [key for key in self.catalog.keys[start:end]
                    if short_hash(key, salt) in wanted]
            self.have.update(Item(*key) for key in send)
            if send:
                out.append(_Out(low, bound, ITEMS, _encode_keys(send, low[0])))
            else:
                out.append(_Out(low, bound, SKIP))
        else:  # ITEMS
            if len(payload) > self.leaf_threshold:  # type: ignore[arg-type]
                raise ReconcileError("ITEMS lists more items than the session's leaf threshold")
            self.need.update(Item(*key) for key in payload  # type: ignore[attr-defined]
                             if Item(*key) not in self.catalog)
            out.append(_Out(low, bound, SKIP))

    def _hash_list(self, start: int, end: int) -> bytes:
        hashes = [short_hash(key, self.salt) for key in self.catalog.keys[start:end]]
        return _varint(len(hashes)) + b"".join(hashes)

    def _split(self, low: tuple[int, bytes], bound: _Bound, start: int, end: int,
               out: list[_Out]) -> None:
        count = end - start
        width = self.top_branching if low == _ZERO_KEY and bound.ts == _TOP_TS \
            else self.branching
        parts = max(2, min(width, -(-count // self.leaf_threshold)))
        keys = self.catalog.keys
        sub_low = low
        sub_start = start
        base_ts = low[0]
        for part in range(1, parts + 1):
            if part == parts:
                sub_end, sub_bound = end, bound
            else:
                sub_end = start + part * count // parts
                sub_bound = _choose_bound(keys[sub_end - 1], keys[sub_end], base_ts)
            fp = self.catalog.fingerprint(sub_start, sub_end, self.salt)
            out.append(_Out(sub_low, sub_bound, FINGERPRINT, fp))
            sub_low, sub_start, base_ts = sub_bound.key, sub_end, sub_bound.ts

    # serialising

    def _finish(self, out: list[_Out]) -> bytes | None:
        header = (bytes([VERSION]) + self.salt + bytes([self.leaf_threshold])
                  + _varint(self.max_message_size))
        message = bytearray(header)
        prev_ts = 0
        pending: _Out | None = None
        emitted = False
        for entry in out:
            if entry.mode == SKIP:
                pending = entry
                continue
            chunk = b""
            ts = prev_ts
            if pending is not None:
                chunk = _encode_entry(pending.bound, SKIP, b"", ts)
                ts = pending.bound.ts
            chunk += _encode_entry(entry.bound, entry.mode, entry.payload, ts)
            if len(message) + len(chunk) + _RESERVE > self.max_message_size:
                # Out of room: one fingerprint for everything from here up; the other side
                # continues it in the next message.
                if pending is not None:
                    message += _encode_entry(pending.bound, SKIP, b"", prev_ts)
                start, end = self.catalog.span(entry.low, _TOP_KEY)
                fp = self.catalog.fingerprint(start, end, self.salt)
                message += _encode_entry(_TOP, FINGERPRINT, fp, 0)
                emitted = True
                break
            message += chunk
            prev_ts = entry.bound.ts
            pending = None
            emitted = True
        if not emitted:
            return None
        self.messages_out += 1
        self.bytes_out += len(message)
        return bytes(message)


def reconcile_local(a: Catalog, b: Catalog, *, max_rounds: int = 10_000,
                    **options: int) -> dict[str, object]:
    """Run a whole session between two in-process catalogs (tests and benchmarks): returns
    round trips, bytes each way, the largest message and both sides' have/need."""
    initiator = Reconciler(a, **options)
    responder = Reconciler(b, **options)
    message: bytes | None = initiator.initiate()
    rounds = 0
    largest = len(message)
    replies_bytes = 0
    while message is not None:
        rounds += 1
        if rounds > max_rounds:
            raise ReconcileError(f"no agreement after {max_rounds} round trips")
        reply = responder.reconcile(message)
        if reply is None:
            replies_bytes += 1  # the "done" reply on the wire: an empty body
            break
        largest = max(largest, len(reply))
        message = initiator.reconcile(reply)
        if message is not None:
            largest = max(largest, len(message))
    return {
        "rounds": rounds,
        "bytes_initiator": initiator.bytes_out,
        "bytes_responder": responder.bytes_out + replies_bytes,
        "bytes_total": initiator.bytes_out + responder.bytes_out + replies_bytes,
        "largest_message": largest,
        "initiator": initiator,
        "responder": responder,
    }
