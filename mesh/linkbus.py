"""Every authenticated link of the station, whichever process holds it.

A link lives in the process at its end of the socket: meshd for the links it dialled, a daphne
process for the links other stations dialled to us. Routing and forwarding treat both the same:
`request(peer, type, payload)` and `send(peer, type, payload)` go over the link to `peer`
directly when this process holds it, and otherwise through Redis to the process that does:

- `OWNERS_KEY` (a hash): peer station id -> the bus queue of the process holding its link;
- each process holding links serves its own queue (`serve`, a BLPOP loop started by `attach`)
  and answers on the reply list named in each request;
- `DAEMON_INBOX`: what the holder of a link must hand to meshd (routing messages that arrived
  on a link daphne holds, links coming up and going down there); meshd reads it.

A link opened twice between the same two stations (both dialled at once) is used through the
latest one; the older is dropped from the bus when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any

from mesh.registry import MeshHandlerError

logger = logging.getLogger(__name__)

OWNERS_KEY = "meshsite:mesh:linkowners"
QUEUE_PREFIX = "meshsite:mesh:bus:"
REPLY_PREFIX = "meshsite:mesh:busreply:"
DAEMON_INBOX = "meshsite:mesh:daemon-inbox"
BANDWIDTH_KEY = "meshsite:mesh:bandwidth"  # peer station id -> bytes/s measured by meshd
BANDWIDTH_CACHE = 5.0
DAEMON_INBOX_MAX = 10_000  # meshd down for long: older news is dropped, not hoarded
POLL = 2.0  # seconds a BLPOP waits before looking again (well under redis' socket timeout)
OWNER_KEEP = 2.0  # seconds a process keeps a link's owner record for its requests

PROCESS = uuid.uuid4().hex[:16]
QUEUE = QUEUE_PREFIX + PROCESS


class BusError(MeshHandlerError):
    """No link to that station, or it did not answer in time (code: no_link, timeout)."""


_local: dict[str, Any] = {}  # peer station id -> LinkSession held by this process
_servers: dict[int, asyncio.Task] = {}  # event loop id -> serve task
_owners: dict[str, tuple[float, dict[str, Any]]] = {}  # peer -> (read at, owner record)


def _redis() -> Any:
    from meshsite.redisconn import loop_redis

    return loop_redis()


def local_link(peer: str) -> Any | None:
    link = _local.get(peer)
    if link is None or link.closed:
        return None
    return link


async def owner(peer: str, *, fresh: bool = False) -> dict[str, Any] | None:
    """The record of the process holding the link to `peer` (`q`: its bus queue, and the
    link's hints), None when no process holds one. Pass it to `request` for several requests
    in a row over the same link (a forwarded body's chunks): one Redis round trip less each.

    A record is kept in this process for `OWNER_KEEP` seconds (every relayed request asks for
    its next hop's), unless `fresh`: a kept record that is out of date costs one round trip
    more, as `request` then hears no_link from that process and reads the record anew."""
    now = time.monotonic()
    kept = None if fresh else _owners.get(peer)
    if kept is not None and now - kept[0] < OWNER_KEEP:
        return kept[1]
    raw = await _redis().hget(OWNERS_KEY, peer)
    record = None
    with contextlib.suppress(ValueError, TypeError):
        record = json.loads(raw) if raw is not None else None
    if not isinstance(record, dict) or not isinstance(record.get("q"), str):
        _owners.pop(peer, None)
        return None
    _owners[peer] = (now, record)
    return record


def hints(peer: str, record: dict[str, Any] | None) -> dict[str, Any]:
    """What the link to `peer` states about itself (`floor`: least request timeout in
    seconds, `chunk`: largest body chunk to ask for): from the link when this process holds
    it, else from its owner `record`; {} if none."""
    link = local_link(peer)
    if link is not None:
        return {key: value for key, value in (("floor", getattr(link, "timeout_floor", 0)),
                                              ("chunk", getattr(link, "max_chunk", 0)))
                if value}
    return {key: record[key] for key in ("floor", "chunk") if record and record.get(key)}


_bandwidths: dict[str, tuple[float, float | None]] = {}


async def bandwidth_note(peer: str, bytes_per_second: float | None) -> None:
    """meshd's router measured the link to `peer` (`mesh.link_cost`): for every process."""
    if bytes_per_second:
        await _redis().hset(BANDWIDTH_KEY, peer, f"{bytes_per_second:.1f}")


async def bandwidth(peer: str) -> float | None:
    """The measured bandwidth of the link to `peer` in bytes/s (None: not measured yet)."""
    now = time.monotonic()
    cached = _bandwidths.get(peer)
    if cached is not None and now - cached[0] < BANDWIDTH_CACHE:
        return cached[1]
    value: float | None = None
    with contextlib.suppress(Exception):
        raw = await _redis().hget(BANDWIDTH_KEY, peer)
        value = float(raw) if raw is not None else None
    _bandwidths[peer] = (now, value)
    return value


def local_peers() -> list[str]:
    return [peer for peer, link in _local.items() if not link.closed]


async def attach(link: Any) -> None:
    """An authenticated link is up in this process: route the station's traffic for its peer
    here."""
    peer = link.peer_station_id
    _local[peer] = link
    _owners.pop(peer, None)
    _ensure_server()
    record = {"q": QUEUE, "role": link.role, "t": time.time()}
    # A slow link (RF) states the least time a request over it may take and the largest
    # body chunk worth asking for at once; every process sending over it honours them.
    if getattr(link, "timeout_floor", 0):
        record["floor"] = link.timeout_floor
    if getattr(link, "max_chunk", 0):
        record["chunk"] = link.max_chunk
    await _redis().hset(OWNERS_KEY, peer, json.dumps(record))


async def detach(link: Any) -> None:
    """The link closed: forget it, unless a newer link to the same peer replaced it."""
    peer = link.peer_station_id
    if not peer or _local.get(peer) is not link:
        return
    del _local[peer]
    _owners.pop(peer, None)
    redis = _redis()
    with contextlib.suppress(Exception):
        raw = await redis.hget(OWNERS_KEY, peer)
        if raw is not None and json.loads(raw).get("q") == QUEUE:
            await redis.hdel(OWNERS_KEY, peer)


async def linked_peers() -> dict[str, dict[str, Any]]:
    """Every peer the station holds a link to, in any process: station id -> owner record."""
    raw = await _redis().hgetall(OWNERS_KEY)
    out: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        with contextlib.suppress(ValueError, TypeError):
            out[key.decode() if isinstance(key, bytes) else str(key)] = json.loads(value)
    return out


async def request(peer: str, type_: str, payload: dict[str, Any],
                  timeout: float = 10.0, *, via: dict[str, Any] | None = None) -> dict[str, Any]:
    """Send a request over the link to `peer` and return its reply payload. Raises
    MeshHandlerError with the peer's error, or BusError (no_link, timeout). `via`: the link's
    `owner` record, read before (None: `owner`'s, when another process holds the link); when
    that process no longer holds the link (it came up again in another), it is read anew once."""
    record = None if local_link(peer) is not None else via or await owner(peer)
    try:
        return await _request_once(peer, type_, payload, timeout, record)
    except BusError as exc:
        if record is None or exc.code != "no_link":
            raise
    # That process no longer holds the link: it may have come up again in another (or here).
    return await _request_once(peer, type_, payload, timeout, await owner(peer, fresh=True))


async def _request_once(peer: str, type_: str, payload: dict[str, Any], timeout: float,
                        record: dict[str, Any] | None) -> dict[str, Any]:
    link = local_link(peer)
    if link is not None:
        try:
            return await link.request(type_, payload, timeout)
        except TimeoutError as exc:
            raise BusError("timeout", f"{peer[:12]} did not answer in {timeout:g} s") from exc
    return await _remote(peer, {"type": type_, "payload": payload, "timeout": timeout,
                                "oneway": False}, timeout, record)


async def send(peer: str, type_: str, payload: dict[str, Any]) -> None:
    """Send a one-way message over the link to `peer` (no reply)."""
    link = local_link(peer)
    if link is not None:
        await link.send(type_, payload)
        return
    # Nothing answers a one-way message, so nothing would tell a kept owner record stale.
    await _remote(peer, {"type": type_, "payload": payload, "timeout": 10.0, "oneway": True},
                  None, await owner(peer, fresh=True))


async def _remote(peer: str, item: dict[str, Any], timeout: float | None,
                  record: dict[str, Any] | None) -> dict[str, Any]:
    """Hand `item` to the process whose owner `record` this is (None: no process holds the
    link) and wait `timeout` seconds for its answer (None: a one-way item, no answer)."""
    redis = _redis()
    if record is None:
        raise BusError("no_link", f"no link to {peer[:12]}")
    if timeout is not None:
        timeout = max(timeout, float(record.get("floor") or 0))
    item["timeout"] = max(float(item.get("timeout") or 0), float(record.get("floor") or 0))
    item["peer"] = peer
    item["expires"] = time.time() + (timeout or item["timeout"] or 10.0)
    if timeout is None:
        await _push(redis, record["q"], item)
        return {}
    reply_key = REPLY_PREFIX + uuid.uuid4().hex
    item["reply"] = reply_key
    await _push(redis, record["q"], item)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BusError("timeout", f"{peer[:12]} did not answer in {timeout:g} s")
        answer = await redis.blpop([reply_key], timeout=max(0.01, min(POLL, left)))
        if answer is not None:
            break
    data = json.loads(answer[1])
    if "error" in data:
        cls = BusError if data["error"] in ("no_link", "timeout") else MeshHandlerError
        raise cls(str(data["error"]), str(data.get("detail", "")))
    return data.get("payload") or {}


def _ensure_server() -> None:
    loop = asyncio.get_running_loop()
    task = _servers.get(id(loop))
    if task is None or task.done():
        _servers[id(loop)] = loop.create_task(serve())


async def serve() -> None:
    """Carry other processes' requests over the links this process holds."""
    from meshsite.redisconn import get_async_redis

    redis = get_async_redis()  # a connection of its own: BLPOP holds it
    tasks: set[asyncio.Task] = set()
    while True:
        try:
            item = await redis.blpop([QUEUE], timeout=POLL)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("mesh link bus read failed", extra={"error": str(exc)})
            await asyncio.sleep(1)
            continue
        if item is None:
            continue
        task = asyncio.ensure_future(_carry(item[1]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def _carry(raw: bytes) -> None:
    try:
        item = json.loads(raw)
        peer, type_ = str(item["peer"]), str(item["type"])
    except (ValueError, KeyError, TypeError):
        return
    if time.time() > float(item.get("expires", 0)):
        return
    link = local_link(peer)
    answer: dict[str, Any]
    if link is None:
        answer = {"error": "no_link", "detail": f"the link to {peer[:12]} closed"}
    elif item.get("oneway"):
        with contextlib.suppress(Exception):
            await link.send(type_, item.get("payload") or {})
        return
    else:
        try:
            payload = await link.request(type_, item.get("payload") or {},
                                         float(item.get("timeout", 10)))
            answer = {"payload": payload}
        except TimeoutError:
            answer = {"error": "timeout", "detail": f"{peer[:12]} did not answer in time"}
        except MeshHandlerError as exc:
            answer = {"error": exc.code, "detail": exc.detail}
        except Exception as exc:
            answer = {"error": getattr(exc, "code", "failed"),
                      "detail": getattr(exc, "detail", str(exc))}
    reply = item.get("reply")
    if reply:
        await _push(_redis(), reply, answer)


async def _push(redis: Any, key: str, item: dict[str, Any]) -> None:
    """Append to a list that lives a minute after its last item: one round trip to Redis (a
    relayed request crosses this twice per hop)."""
    pipe = redis.pipeline(transaction=False)
    pipe.rpush(key, json.dumps(item))
    pipe.expire(key, 60)
    await pipe.execute()


# -- meshd's inbox ----------------------------------------------------------------------------

async def to_daemon(event: dict[str, Any]) -> None:
    """Hand `event` (JSON-able, with a "type") to meshd."""
    redis = _redis()
    await redis.rpush(DAEMON_INBOX, json.dumps(event))
    await redis.ltrim(DAEMON_INBOX, -DAEMON_INBOX_MAX, -1)
