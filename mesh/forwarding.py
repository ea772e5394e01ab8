"""Multi-hop forwarding: a request this station cannot serve travels hop by hop over links to the
station that can, and the answer streams back the same way.

FORWARD (a request over a link):

    {"rid": "<32 hex>", "origin": "<station id>", "dest": "<station id>", "kind": "content",
     "request": {...}, "ttl": 8, "hop": 1, "credential": {origin's station credential},
     "sig": "<origin's station signature over rid, origin, dest, kind and request>"}

Each station that receives one checks it (TTL at most `MAX_TTL`, the origin's signature, the
request id never seen before: the seen-set that stops loops and replays), then serves it if it
holds what is asked (an app registers the kind with `registry.register_forward_source`), or
sends it on to the next hop of its route to `dest` with the TTL one lower. The reply is the
source's description (`size` and the app's fields) plus `via`, the callsigns it came through.
A TTL that runs out, a station with no route, a next hop that does not answer: the request ends
there with an ERROR whose detail says where (callsign, hop) and why; each hop passes it back.

The requester may ask for the body's first bytes in the same round trip: `"first": N` (at most
`CHUNK`). Each relay lowers N to the largest chunk its next hop's link states (an RF link's
`max_chunk`), and the holder answers with `"chunk"`, the N that reached it, and `"data"`, the
first min(N, size) bytes (base64): a small page crosses in one round trip per hop, and the
requester pulls the rest in chunks no link on the path refuses. A FORWARD without `first` (an
older station) gets no data.

FORWARD_CHUNK {"rid", "offset", "length"} then pulls the body, at most `CHUNK` bytes per reply
(base64), along the path the FORWARD took (each relay remembers the request id, the hop it came
from and the one it went to, in Redis, for `STATE_TTL` seconds after the last chunk, and in
the process holding the link, which the chunks reach without asking Redis again): the
requester keeps at most `WINDOW` chunk requests in flight, so no hop holds more than a few
chunks of a body, and none keeps any of it. The requester checks what it assembled against the
signed hash (the app does: `body_store`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings

from mesh import linkbus, protocol, registry, trust
from mesh.registry import MeshHandlerError

logger = logging.getLogger(__name__)

FORWARD = "FORWARD"
FORWARD_CHUNK = "FORWARD_CHUNK"
MAX_TTL = 10
CHUNK = 32 * 1024
WINDOW = 4
STATE_PREFIX = "meshsite:mesh:fwd:"
SEEN_PREFIX = "meshsite:mesh:fwdseen:"
STATE_TTL = 600  # seconds after the last chunk: a chunk over RF takes minutes
SEEN_TTL = 600
MAX_REQUEST_BYTES = 4096
_RID = re.compile(r"^[0-9a-f]{32}$")
_STATION = re.compile(r"^[0-9a-f]{16,64}$")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_proven: dict[str, tuple[float, trust.ProvenStation]] = {}


class ForwardError(MeshHandlerError):
    """A forwarded request that could not be served: `code` and a detail naming where."""


def signed_message(rid: str, origin: str, dest: str, kind: str, request: dict[str, Any]) -> bytes:
    return b"meshsite-forward\n" + protocol.canonical_json(
        {"rid": rid, "origin": origin, "dest": dest, "kind": kind, "request": request})


# -- checks on arrival --------------------------------------------------------------------------

def _check(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ForwardError("malformed", "a FORWARD payload is an object")
    rid, origin, dest = payload.get("rid"), payload.get("origin"), payload.get("dest")
    kind, request, ttl, hop = (payload.get("kind"), payload.get("request"), payload.get("ttl"),
                               payload.get("hop"))
    if not isinstance(rid, str) or not _RID.match(rid):
        raise ForwardError("malformed", "'rid' must be 32 lower-case hex digits")
    for name, value in (("origin", origin), ("dest", dest)):
        if not isinstance(value, str) or not _STATION.match(value):
            raise ForwardError("malformed", f"'{name}' must be a station id (hex)")
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise ForwardError("malformed", "'kind' must be a short lower-case name")
    if not isinstance(request, dict) or len(protocol.canonical_json(request)) > MAX_REQUEST_BYTES:
        raise ForwardError("malformed", f"'request' must be an object of at most "
                                        f"{MAX_REQUEST_BYTES} bytes")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
        raise ForwardError("bad_ttl", f"'ttl' must be an integer from 1 to {MAX_TTL}, "
                                      f"got {ttl!r}")
    if isinstance(hop, bool) or not isinstance(hop, int) or not 1 <= hop <= MAX_TTL:
        raise ForwardError("malformed", f"'hop' must be an integer from 1 to {MAX_TTL}")
    if not isinstance(payload.get("sig"), str):
        raise ForwardError("malformed", "'sig' (the origin's signature) is missing")
    first = payload.get("first", 0)
    if isinstance(first, bool) or not isinstance(first, int) or not 0 <= first <= CHUNK:
        raise ForwardError("malformed", f"'first' must be an integer from 0 to {CHUNK}")
    return payload


def _prove_origin(payload: dict[str, Any]) -> trust.ProvenStation:
    """The origin's credential and its signature over the request (sync: runs in a thread)."""
    credential = payload.get("credential")
    key = hashlib.sha256(protocol.canonical_json(credential)).hexdigest()
    cached = _proven.get(key)
    if cached is not None and time.monotonic() - cached[0] < 60:
        proven = cached[1]
    else:
        try:
            proven = trust.verify_credential(credential)
        except trust.TrustRefused as exc:
            raise ForwardError("forged_origin", f"the origin's credential is refused: "
                                                f"{exc.code}: {exc.detail}") from exc
        if len(_proven) > 1000:
            _proven.clear()
        _proven[key] = (time.monotonic(), proven)
    if proven.station_id != payload["origin"]:
        raise ForwardError("forged_origin", f"the credential is for {proven.station_id[:12]}, "
                                            f"not the origin {payload['origin'][:12]}")
    try:
        signature = protocol.b64decode(payload["sig"], "sig")
        trust.verify_station_signature(proven.public_key_b64, signature, signed_message(
            payload["rid"], payload["origin"], payload["dest"], payload["kind"],
            payload["request"]))
    except (protocol.ProtocolError, trust.TrustRefused) as exc:
        raise ForwardError("forged_origin", "the origin's signature over the request does not "
                                            "verify") from exc
    return proven


async def _first_time(rid: str) -> bool:
    """Whether `rid` is new here: the seen-set, shared by the station's processes."""
    return bool(await linkbus._redis().set(SEEN_PREFIX + rid, b"1", nx=True, ex=SEEN_TTL))


async def _remember(rid: str, state: dict[str, Any], via: dict[str, Any] | None = None) -> None:
    """Keep the path of a request this station serves or passes on, for its chunks: in Redis
    and in this process (with `via`, the next hop's link owner). Written only for a request id
    seen here for the first time: a replay never overwrites the path of the first."""
    await linkbus._redis().set(STATE_PREFIX + rid, json.dumps(state), ex=STATE_TTL)
    _states_keep(rid, state, via)


def _where(local: trust.LocalStation, hop: int) -> str:
    return f"at {local.callsign or local.station_id[:12]}, hop {hop}"


def _hop_timeout(ttl: int) -> float:
    return settings.MESH_FORWARD_TIMEOUT * max(1, ttl)


def _size(meta: dict[str, Any]) -> int:
    size = meta.get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 0


def _route(dest: str, lan_only: bool = False) -> tuple[str, int] | None:
    """(next hop, hops) of the stored route to `dest` (with `lan_only`, of the route over
    LAN/IP links only), or None."""
    from mesh import selectors

    route = selectors.next_hop_to(dest)
    if route is None:
        return None
    if lan_only:
        return (route.lan_next_hop, route.lan_hops or 1) if route.lan_next_hop else None
    return route.next_hop, route.hops


def _no_route(dest: str, lan_only: bool, where: str) -> ForwardError:
    if lan_only:
        return ForwardError("no_lan_route", f"no LAN/IP-only route to {dest[:12]} ({where}): "
                                            "this traffic never goes on the air")
    return ForwardError("no_route", f"no route to {dest[:12]} ({where})")


def _wait(ttl: int, hops: int) -> float:
    """How long to wait for the next hop: by the hops the route says are left (a dead next
    hop is given up on soon), never past what the TTL allows."""
    return _hop_timeout(min(ttl, hops + 1))


# -- handlers -------------------------------------------------------------------------------

@dataclass
class _Hop:
    """What a hop learnt from the database about a FORWARD (see `_at_this_hop`)."""

    local: trust.LocalStation
    refused: ForwardError | None = None
    meta: dict[str, Any] | None = None  # what this station holds of the request
    head: bytes = b""  # its first bytes, when asked for (`first`)
    onward: tuple[str, int] | None = None  # (next hop, hops) when it holds nothing


def _at_this_hop(payload: dict[str, Any], local: trust.LocalStation | None) -> _Hop:
    """Everything a hop needs from the database and the disk, in one trip to the sync thread
    (each trip costs milliseconds on a busy station): this station (`local`, the identity the
    link was proven under, when the link knows it: a change of identity closes the link), the
    origin's proof (or the error), what this station holds of the request and its first
    bytes, or the route onward when it holds nothing."""
    hop = _Hop(local or trust.local_station())
    try:
        _prove_origin(payload)
    except ForwardError as exc:
        hop.refused = exc
        return hop
    source = registry.forward_source(payload["kind"])
    if source is None:
        hop.refused = ForwardError("unknown_kind", f"no forwarded requests of kind "
                                                   f"{payload['kind']!r} here")
        return hop
    hop.meta = source.describe(payload["request"])
    if hop.meta is not None:
        first = min(payload.get("first", 0), _size(hop.meta))
        if first:
            hop.head = source.read(payload["request"], 0, first)
    elif payload["dest"] != hop.local.station_id:
        hop.onward = _route(payload["dest"], registry.forward_lan_only(payload["kind"]))
    return hop


async def on_forward(link: Any, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        payload = _check(payload)
    except ForwardError as exc:
        _refused(link, exc)
        raise
    hop = payload["hop"]
    # The seen-set is asked while the sync thread works: the request id is marked here even
    # when the origin's proof then fails, which only blocks an id someone already saw (and
    # could block by replaying the signed original as well).
    here, first_time = await asyncio.gather(
        sync_to_async(_at_this_hop)(payload, getattr(link, "local", None)),
        _first_time(payload["rid"]))
    local, meta = here.local, here.meta
    where = _where(local, hop)
    if here.refused is not None and here.refused.code == "forged_origin":
        _refused(link, here.refused)
        raise ForwardError(here.refused.code, f"{here.refused.detail} ({where})") from here.refused
    if payload["origin"] == local.station_id:
        exc = ForwardError("loop", f"our own request {payload['rid']} came back ({where})")
        _refused(link, exc)
        raise exc
    ttl = payload["ttl"] - 1
    lan_only = registry.forward_lan_only(payload["kind"])
    ends = here.refused
    if ends is None and meta is None:
        if payload["dest"] == local.station_id:
            ends = ForwardError("not_found", f"this station does not hold what was asked "
                                             f"({where})")
        elif ttl < 1:
            ends = ForwardError("ttl_expired", f"the TTL ran out ({where})")
        elif here.onward is None:
            ends = _no_route(payload["dest"], lan_only, where)
    if not first_time:
        exc = ForwardError("loop", f"request {payload['rid']} was already seen here ({where}): "
                                   "a loop or a replay")
        _refused(link, exc)
        raise exc
    if ends is not None:
        raise ends
    nxt, hops = here.onward or ("", 0)  # ("", 0): this station serves it
    state = {"prev": link.peer_station_id, "kind": payload["kind"],
             "request": payload["request"], "next": nxt}
    if meta is not None:
        await _remember(payload["rid"], state)
        reply = {**meta, "via": [local.callsign or local.station_id[:12]]}
        if here.head:
            reply.update(chunk=payload["first"], data=base64.b64encode(here.head).decode())
        return reply
    onward = {**payload, "ttl": ttl, "hop": hop + 1}
    via = None if linkbus.local_link(nxt) else await linkbus.owner(nxt)
    if payload.get("first"):
        chunk = linkbus.hints(nxt, via).get("chunk") or CHUNK
        onward["first"] = max(1, min(payload["first"], int(chunk)))
    try:  # the path is kept while the request goes on: its chunks come after the answer
        _, reply = await asyncio.gather(
            _remember(payload["rid"], state, via),
            linkbus.request(nxt, FORWARD, onward, _wait(ttl, hops), via=via))
    except linkbus.BusError as exc:
        raise ForwardError(exc.code, f"the next hop {nxt[:12]} did not answer: {exc.detail} "
                                     f"({where})") from exc
    via_calls = reply.get("via") if isinstance(reply.get("via"), list) else []
    return {**reply, "via": [local.callsign or local.station_id[:12], *via_calls[:MAX_TTL]]}


def _refused(link: Any, exc: ForwardError) -> None:
    logger.warning("mesh forward refused", extra={"peer": link.peer_station_id,
                                                  "error": exc.code, "detail": exc.detail})


async def on_forward_chunk(link: Any, payload: dict[str, Any]) -> dict[str, Any]:
    rid, offset, length = payload.get("rid"), payload.get("offset"), payload.get("length")
    if not isinstance(rid, str) or not _RID.match(rid):
        raise ForwardError("malformed", "'rid' must be 32 lower-case hex digits")
    for name, value in (("offset", offset), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ForwardError("malformed", f"'{name}' must be a non-negative integer")
    if not 1 <= length <= CHUNK:
        raise ForwardError("malformed", f"'length' must be from 1 to {CHUNK}")
    state, via = await _state_get(rid)  # and it lives STATE_TTL more
    if state is None or state.get("prev") != link.peer_station_id:
        raise ForwardError("unknown_request", f"no forwarded request {rid} from this link")
    if not state.get("next"):
        data = await _read_local(state["kind"], state["request"], offset, length)
        return {"data": base64.b64encode(data).decode(), "length": len(data)}
    try:
        return await linkbus.request(state["next"], FORWARD_CHUNK, payload,
                                     settings.MESH_FORWARD_TIMEOUT * 2, via=via)
    except linkbus.BusError as exc:
        raise ForwardError(exc.code, f"the next hop stopped answering: {exc.detail}") from exc


# The requests this process passed on or served, as in Redis (the path of each), with the
# owner record of the next hop's link: the chunks of a body come over the same link as its
# FORWARD, so to the same process, which then needs no Redis round trip to find either. Redis
# stays the truth (a link that came up again in another process finds the state there) and its
# copy's expiry is renewed at most every `STATE_TTL` / 4 seconds.
_states: dict[str, tuple[float, dict[str, Any], dict[str, Any] | None]] = {}
STATES_KEPT = 1000


def _states_keep(rid: str, state: dict[str, Any] | None,
                 via: dict[str, Any] | None = None) -> None:
    if state is None:
        return
    if len(_states) >= STATES_KEPT:
        for old in list(_states)[:STATES_KEPT // 4]:  # the oldest quarter
            del _states[old]
    _states.pop(rid, None)
    _states[rid] = (time.monotonic(), state, via)


async def _state_get(rid: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    kept = _states.get(rid)
    if kept is not None and time.monotonic() - kept[0] < STATE_TTL / 4:
        return kept[1], kept[2]
    raw = await linkbus._redis().getex(STATE_PREFIX + rid, ex=STATE_TTL)
    if raw is None:
        _states.pop(rid, None)
        return None, None
    state = json.loads(raw)
    via = kept[2] if kept is not None and kept[1] == state else None
    _states_keep(rid, state, via)
    return state, via


async def _read_local(kind: str, request: dict[str, Any], offset: int, length: int) -> bytes:
    source = registry.forward_source(kind)
    if source is None:
        raise ForwardError("unknown_kind", f"no forwarded requests of kind {kind!r} here")
    return await sync_to_async(source.read)(request, offset, length)


def register_handlers() -> None:
    registry.register_handler(FORWARD, on_forward)
    registry.register_handler(FORWARD_CHUNK, on_forward_chunk)


# -- the requesting end -----------------------------------------------------------------------

class Fetch:
    """A forwarded request from this station: `meta` once open, then `chunks()`."""

    def __init__(self, dest: str, kind: str, request: dict[str, Any], ttl: int | None = None):
        self.dest, self.kind, self.request = dest, kind, request
        self.ttl = ttl or settings.MESH_FORWARD_TTL
        self.rid = uuid.uuid4().hex
        self.first_hop = ""
        self.wait = _hop_timeout(self.ttl) + 2
        self.meta: dict[str, Any] = {}
        self.chunk = CHUNK  # smaller when a link on the path is slow (RF: its `max_chunk`)
        self.head = b""  # the first bytes, come with the holder's answer
        self.via: dict[str, Any] | None = None  # the first hop's link owner (another process)

    async def open(self) -> dict[str, Any]:
        lan_only = registry.forward_lan_only(self.kind)
        local, routed = await sync_to_async(lambda: (trust.local_station(),
                                                     _route(self.dest, lan_only)))()
        if local.credential is None:
            raise ForwardError("unclaimed", "this station is not claimed: it cannot sign a "
                                            "forwarded request")
        linked = {} if lan_only else await linkbus.linked_peers()
        # A LAN-only request goes by the LAN-only route even to a neighbour: the link to it
        # may be on the air.
        found = ((self.dest, 1) if not lan_only and (self.dest in linked
                                                     or linkbus.local_link(self.dest))
                 else routed)
        if found is None:
            raise _no_route(self.dest, lan_only,
                            f"at {local.callsign or 'this station'}, hop 0")
        first, hops = found
        self.first_hop = first
        self.wait = _wait(self.ttl, hops) + 2
        self.via = None if linkbus.local_link(first) else await linkbus.owner(first)
        hints = linkbus.hints(first, self.via)
        self.chunk = max(1, min(CHUNK, int(hints.get("chunk") or CHUNK)))
        signature = trust.sign(signed_message(  # inline: the key is cached, signing is fast
            self.rid, local.station_id, self.dest, self.kind, self.request))
        await _first_time(self.rid)  # our own request coming back is a loop
        payload = {"rid": self.rid, "origin": local.station_id, "dest": self.dest,
                   "kind": self.kind, "request": self.request, "ttl": self.ttl, "hop": 1,
                   "credential": local.credential, "sig": protocol.b64encode(signature),
                   "first": self.chunk}
        try:
            self.meta = await linkbus.request(first, FORWARD, payload, self.wait, via=self.via)
        except linkbus.BusError as exc:
            raise ForwardError(exc.code, f"the first hop {first[:12]} did not answer: "
                                         f"{exc.detail}") from exc
        except MeshHandlerError as exc:
            raise ForwardError(exc.code, exc.detail) from exc
        size = self.meta.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ForwardError("malformed", "the holder's answer has no size")
        self._take_head(self.meta.pop("chunk", None), self.meta.pop("data", None))
        return self.meta

    def _take_head(self, chunk: Any, data: Any) -> None:
        """The chunk size the path allows and the body's first bytes, from the answer."""
        if data is None:
            return
        if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= self.chunk:
            raise ForwardError("malformed", f"the holder's answer names a chunk of {chunk!r} "
                                            f"bytes (asked for at most {self.chunk})")
        try:
            head = base64.b64decode(data, validate=True) if isinstance(data, str) else None
        except ValueError:
            head = None
        if head is None or len(head) != min(chunk, self.meta["size"]):
            raise ForwardError("short_chunk", "the first bytes in the holder's answer are not "
                                              f"the {min(chunk, self.meta['size'])} asked for")
        self.chunk, self.head = chunk, head

    async def batch(self, offsets: list[int]) -> list[bytes]:
        size = self.meta["size"]
        replies = await asyncio.gather(*(
            linkbus.request(self.first_hop, FORWARD_CHUNK,
                            {"rid": self.rid, "offset": offset,
                             "length": min(self.chunk, size - offset)},
                            self.wait, via=self.via) for offset in offsets))
        out = []
        for offset, reply in zip(offsets, replies, strict=True):
            data = base64.b64decode(reply.get("data") or "")
            if len(data) != min(self.chunk, size - offset):
                raise ForwardError("short_chunk", f"chunk at {offset} has {len(data)} bytes")
            out.append(data)
        return out

    def offsets(self) -> Iterator[list[int]]:
        """The offsets of the chunks still to pull (after the head), `WINDOW` at a time."""
        size = self.meta["size"]
        every = list(range(len(self.head), size, self.chunk))
        for start in range(0, len(every), WINDOW):
            yield every[start:start + WINDOW]

    async def chunks(self) -> AsyncIterator[bytes]:
        if self.head:
            yield self.head
        for offsets in self.offsets():
            for data in await self.batch(offsets):
                yield data


def fetch_sync(dest: str, kind: str, request: dict[str, Any]) -> tuple[dict[str, Any],
                                                                        Iterator[bytes]]:
    """For sync code (a view, a Celery task): open the forwarded request, then a generator of
    the body's chunks, pulled `WINDOW` at a time. Raises ForwardError."""
    fetch = Fetch(dest, kind, request)
    meta = async_to_sync(fetch.open)()

    def chunks() -> Iterator[bytes]:
        if fetch.head:
            yield fetch.head
        for offsets in fetch.offsets():
            try:
                yield from async_to_sync(fetch.batch)(offsets)
            except linkbus.BusError as exc:
                raise ForwardError(exc.code, exc.detail) from exc
            except MeshHandlerError as exc:
                raise ForwardError(exc.code, exc.detail) from exc

    return meta, chunks()
