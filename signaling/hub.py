"""Presence and relay across signaling processes (no Django imports).

One `Hub` per process holds every live WebSocket of this process in plain dicts, so a message
between two peers of the same process is delivered with one dict lookup and one socket write.
Redis is touched only where other processes are involved:

- ownership and presence: hash `{p}c:{ns}` maps a client id to
  `proc US conn US token US room US callsign US licensed US since` (US = \\x1f); native rooms are
  hashes `{p}r:{room}` (client id -> peer JSON) with a callsign index `{p}rc:{room}`. Claims and
  releases are Lua scripts, so id uniqueness, the concurrent limit and room capacity hold across
  processes.
- liveness with expiry: each process refreshes its score in the sorted set `{p}procs` every
  `presence_refresh` seconds. A process whose score is older than `presence_ttl` is dead: the first
  live process to notice takes a lock and removes all its ids (set `{p}pi:{proc}`) and announces
  PEER_LEFT to the rooms, so the peers of a killed process disappear within seconds.
- relay between processes: one pub/sub channel per process, `{p}p:{proc}`. The route script looks
  up the owner and publishes to its channel in one round trip; the frame text is serialised once
  by the sender and written as is by the receiving process.
- room events (PEER_JOINED / PEER_LEFT) go to every process on the channel `{p}b`. Each
  connection passes on only what changes the room its client was told of (`Connection.room_event`):
  held until the client has its REGISTERED with the peer list, then a join of a peer it already
  knows, or a leave of one it never knew, is dropped (a broadcast can arrive after the list that
  already holds it).
- PeerJS messages to ids not connected anywhere wait in `{p}q:{id}` lists (bounded per id and in
  total bytes), indexed by creation time in `{p}qi`; any process sweeps the expired ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio

logger = logging.getLogger(__name__)

US = "\x1f"
KEY_PREFIX = "sig:"
PEERJS = "pj"
NATIVE = "ws"


@dataclass(frozen=True)
class HubConfig:
    redis_url: str
    prefix: str = KEY_PREFIX
    presence_refresh: float = 1.0
    presence_ttl: float = 5.0
    sweep_interval: float = 0.5
    queue_expire: float = 5.0
    queue_cleanup: float = 1.0
    queue_per_id: int = 100
    queue_total_bytes: int = 16 * 1024 * 1024
    connect_rate: int = 120


class Connection:
    """One accepted WebSocket of this process; touched only from the event loop."""

    __slots__ = (
        "bucket", "callsign", "client_id", "closed", "conn_id", "counters", "expires_at",
        "expiry_code", "licensed", "messages_in", "ns", "outcome", "registered", "remote",
        "room", "room_held", "room_view", "send", "since", "superseded", "token", "warnings",
    )

    def __init__(self, *, ns: str, send: Callable[[dict], Awaitable[None]], remote: str) -> None:
        self.conn_id = uuid.uuid4().hex
        self.ns = ns
        self.send = send
        self.remote = remote
        self.client_id = ""
        self.room = ""
        self.token = ""
        self.callsign = ""
        self.licensed = False
        self.since = time.time()
        self.closed = False
        self.registered = False
        self.superseded = False
        self.warnings = 0
        self.messages_in = 0
        self.expires_at = 0.0
        self.expiry_code = 1000
        self.outcome = ""
        self.counters: dict[str, int] = {}
        self.bucket: Any = None
        # The peers of its room this client was told of (REGISTERED, PEER_LIST, then each
        # join and leave), and the room events held back until it had its REGISTERED.
        self.room_view: set[str] = set()
        self.room_held: list[tuple[bool, str, str]] | None = []

    async def room_event(self, joined: bool, peer_id: str, text: str) -> None:
        """A PEER_JOINED (`joined`) or PEER_LEFT of `peer_id` in this connection's room: held
        until `room_told`, then sent only when it changes what the client was told."""
        if self.room_held is not None:
            self.room_held.append((joined, peer_id, text))
            return
        await self._room_change(joined, peer_id, text)

    async def room_told(self, peer_ids: list[str], *, first: bool = False) -> None:
        """The client now holds this list of its room's peers (REGISTERED when `first`, or a
        PEER_LIST); with `first`, the events held meanwhile follow, those that change it."""
        self.room_view = set(peer_ids)
        if not first or self.room_held is None:
            return
        while self.room_held:  # events arriving during a send queue behind these
            await self._room_change(*self.room_held.pop(0))
        self.room_held = None

    async def _room_change(self, joined: bool, peer_id: str, text: str) -> None:
        if joined == (peer_id in self.room_view):
            return  # a join it already knows of, or a leave of a peer it never knew
        if joined:
            self.room_view.add(peer_id)
        else:
            self.room_view.discard(peer_id)
        await self.send_text(text)

    async def send_text(self, text: str) -> bool:
        if self.closed:
            return False
        try:
            await self.send({"type": "websocket.send", "text": text})
        except Exception:  # a socket that died between the lookup and the write
            self.closed = True
            return False
        return True

    async def close(self, code: int = 1000, outcome: str = "", reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        if outcome and not self.outcome:
            self.outcome = outcome
        if code != 1000 and not 3000 <= code <= 4999:
            if _close_through_daphne(self.send, code, reason):
                return
            code = 4000 + code % 1000  # a server that only sends 1000 / 3000-4999: 1008 -> 4008
        with contextlib.suppress(Exception):
            await self.send({"type": "websocket.close", "code": code})


def _close_through_daphne(send: Callable[[dict], Awaitable[None]], code: int,
                          reason: str) -> bool:
    """daphne hands `websocket.close` to autobahn's `sendClose`, which refuses every code but
    1000 and 3000-4999, so an ASGI app cannot close with 1008 or 1009 (RFC 6455 7.4.1) there.
    daphne's `send` is `partial(server.handle_reply, protocol)`: send the close frame on the
    protocol itself; the close handshake then ends as usual (websocket.disconnect)."""
    protocol = send.args[0] if isinstance(send, functools.partial) and send.args else None
    close_frame = getattr(protocol, "sendCloseFrame", None)
    if close_frame is None:
        return False
    try:
        close_frame(code=code, reasonUtf8=reason.encode()[:120] or None, isReply=False)
    except Exception:
        return False
    return True


# --- Lua ------------------------------------------------------------------------------------

_LUA_SPLIT = """
local function split(s)
  local out = {}
  for field in string.gmatch(s .. '\\31', '([^\\31]*)\\31') do out[#out + 1] = field end
  return out
end
"""

# KEYS: clients, procs, my ids, room hash ('' if none), callsign index ('' if none)
# ARGV: id, value, token, limit, now, ttl, member, room capacity, peer json, callsign, me,
#       ids set prefix, conn
_CLAIM = _LUA_SPLIT + """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local reattach = nil
if cur and split(cur)[2] == ARGV[13] then cur = nil end
if cur then
  local f = split(cur)
  local seen = redis.call('ZSCORE', KEYS[2], f[1])
  if f[1] == ARGV[11] or (seen and tonumber(seen) >= tonumber(ARGV[5]) - tonumber(ARGV[6])) then
    if ARGV[3] ~= '' and f[3] == ARGV[3] then
      reattach = {'reattach', f[1], f[2]}
    else
      return {'taken'}
    end
  end
  if f[1] ~= ARGV[11] then
    redis.call('SREM', ARGV[12] .. f[1], ARGV[7])
  end
end
if not reattach then
  local limit = tonumber(ARGV[4])
  if limit > 0 and redis.call('HLEN', KEYS[1]) >= limit and not cur then return {'full'} end
  if KEYS[4] ~= '' then
    local cap = tonumber(ARGV[8])
    if cap > 0 and redis.call('HLEN', KEYS[4]) >= cap then return {'room_full'} end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[7])
if KEYS[4] ~= '' then redis.call('HSET', KEYS[4], ARGV[1], ARGV[9]) end
if KEYS[5] ~= '' and ARGV[10] ~= '' then redis.call('HSET', KEYS[5], ARGV[10], ARGV[1]) end
if reattach then return reattach end
return {'ok'}
"""

# KEYS: clients, my ids, room hash, callsign index; ARGV: id, conn, member, callsign
_RELEASE = _LUA_SPLIT + """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local f = split(cur)
if f[2] ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[3])
if KEYS[3] ~= '' then redis.call('HDEL', KEYS[3], ARGV[1]) end
if KEYS[4] ~= '' and ARGV[4] ~= '' and redis.call('HGET', KEYS[4], ARGV[4]) == ARGV[1] then
  redis.call('HDEL', KEYS[4], ARGV[4])
end
return 1
"""

# KEYS: clients, room hash ('' if none), callsign index ('' if none)
# ARGV: target, me, channel prefix, ns, text
_ROUTE = _LUA_SPLIT + """
local id = ARGV[1]
if KEYS[2] ~= '' and redis.call('HEXISTS', KEYS[2], id) == 0 then
  if KEYS[3] == '' then return false end
  id = redis.call('HGET', KEYS[3], id)
  if not id then return false end
end
local v = redis.call('HGET', KEYS[1], id)
if not v then return false end
local proc = split(v)[1]
if proc == ARGV[2] then return {'local', id} end
redis.call('PUBLISH', ARGV[3] .. proc, 'D\\31' .. ARGV[4] .. '\\31' .. id .. '\\31' .. ARGV[5])
return {'sent', id}
"""

# KEYS: procs, dead proc's ids; ARGV: dead proc, key prefix -> flat list room, id for PEER_LEFT
_REAP = _LUA_SPLIT + """
local left = {}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local m = split(member)
  local ns, id, room, callsign = m[1], m[2], m[3] or '', m[4] or ''
  local ckey = ARGV[2] .. 'c:' .. ns
  local cur = redis.call('HGET', ckey, id)
  if cur and split(cur)[1] == ARGV[1] then
    redis.call('HDEL', ckey, id)
    if room ~= '' then
      redis.call('HDEL', ARGV[2] .. 'r:' .. room, id)
      local rc = ARGV[2] .. 'rc:' .. room
      if callsign ~= '' and redis.call('HGET', rc, callsign) == id then
        redis.call('HDEL', rc, callsign)
      end
      left[#left + 1] = room
      left[#left + 1] = id
    end
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return left
"""

# KEYS: queue, index, bytes, clients; ARGV: text, now, per id, total bytes
_QUEUE_PUSH = """
if redis.call('HEXISTS', KEYS[4], ARGV[5]) == 1 then return 2 end
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
local total = tonumber(ARGV[4])
if total > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') + #ARGV[1] > total then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('INCRBY', KEYS[3], #ARGV[1])
redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[5])
return 1
"""

# KEYS: index, bytes; ARGV: key prefix, id -> queued texts
_QUEUE_TAKE = """
local key = ARGV[1] .. 'q:' .. ARGV[2]
local items = redis.call('LRANGE', key, 0, -1)
redis.call('DEL', key)
redis.call('ZREM', KEYS[1], ARGV[2])
local size = 0
for _, item in ipairs(items) do size = size + #item end
if size > 0 then redis.call('DECRBY', KEYS[2], size) end
return items
"""

# KEYS: index, bytes; ARGV: key prefix, cutoff, batch -> flat list id, count, texts...
_QUEUE_EXPIRE = """
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])) do
  local key = ARGV[1] .. 'q:' .. id
  local items = redis.call('LRANGE', key, 0, -1)
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], id)
  local size = 0
  for _, item in ipairs(items) do size = size + #item end
  if size > 0 then redis.call('DECRBY', KEYS[2], size) end
  out[#out + 1] = id
  out[#out + 1] = #items
  for _, item in ipairs(items) do out[#out + 1] = item end
end
return out
"""


def _peer_json(conn: Connection) -> str:
    if conn.ns != NATIVE:
        return ""
    return json.dumps({"id": conn.client_id, "callsign": conn.callsign,
                       "hasLicense": conn.licensed}, separators=(",", ":"))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Hub:
    """The per-process registry of live connections and its link to the other processes."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.proc = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        p = config.prefix
        self.k_procs = p + "procs"
        self.k_bytes = p + "qb"
        self.k_qindex = p + "qi"
        self.channel = f"{p}p:{self.proc}"
        self.broadcast_channel = p + "b"
        self.local: dict[str, dict[str, Connection]] = {PEERJS: {}, NATIVE: {}}
        self.conns: dict[str, Connection] = {}
        self.rooms: dict[str, set[Connection]] = {}
        self.redis: redis.asyncio.Redis | None = None
        self.on_queue_expired: Callable[[str, list[bytes]], Awaitable[None]] | None = None
        self.on_undeliverable: Callable[[str, str, str], Awaitable[None]] | None = None
        self.on_closed: Callable[[Connection], None] | None = None
        self._ready: asyncio.Future | None = None
        self._tasks: list[asyncio.Task] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._start())
        await asyncio.shield(self._ready)

    async def _start(self) -> None:
        self.redis = redis.asyncio.Redis.from_url(
            self.config.redis_url, socket_connect_timeout=5, max_connections=2000)
        r = self.redis
        self._claim = r.register_script(_CLAIM)
        self._release = r.register_script(_RELEASE)
        self._route = r.register_script(_ROUTE)
        self._reap_script = r.register_script(_REAP)
        self._qpush = r.register_script(_QUEUE_PUSH)
        self._qtake = r.register_script(_QUEUE_TAKE)
        self._qexpire = r.register_script(_QUEUE_EXPIRE)
        # Load the scripts now: otherwise every call that races the first one during a
        # connection storm gets NOSCRIPT, raises, and retries with the whole script.
        for script in (_CLAIM, _RELEASE, _ROUTE, _REAP, _QUEUE_PUSH, _QUEUE_TAKE, _QUEUE_EXPIRE):
            await r.script_load(script)
        await r.zadd(self.k_procs, {self.proc: time.time()})
        pubsub = r.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.channel, self.broadcast_channel)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen(pubsub)),
            loop.create_task(self._refresh_loop()),
            loop.create_task(self._sweep_loop()),
        ]
        logger.info("signaling hub started", extra={"proc": self.proc})

    # -- ownership ---------------------------------------------------------------------------

    def _value(self, conn: Connection) -> str:
        return US.join((self.proc, conn.conn_id, conn.token, conn.room, conn.callsign,
                        "1" if conn.licensed else "0", str(int(conn.since))))

    def _member(self, conn: Connection) -> str:
        return US.join((conn.ns, conn.client_id, conn.room, conn.callsign if conn.licensed else ""))

    async def claim(self, conn: Connection, *, limit: int = 0, room_capacity: int = 0,
                    peer_json: str = "", token: str | None = None) -> tuple[str, str, str]:
        """Take `conn.client_id` in its namespace: ('ok'|'taken'|'full'|'room_full'|'reattach',
        old proc, old conn). A holder of a dead process, or with the same token, is replaced."""
        p = self.config.prefix
        room_key = f"{p}r:{conn.room}" if conn.room else ""
        rc_key = f"{p}rc:{conn.room}" if conn.room else ""
        result = await self._claim(
            keys=[f"{p}c:{conn.ns}", self.k_procs, f"{p}pi:{self.proc}", room_key, rc_key],
            args=[conn.client_id, self._value(conn), conn.token if token is None else token,
                  limit, time.time(), self.config.presence_ttl, self._member(conn),
                  room_capacity, peer_json, conn.callsign if conn.licensed else "", self.proc,
                  f"{p}pi:", conn.conn_id])
        status = _s(result[0])
        if status in ("ok", "reattach"):
            conn.registered = True
            self.local[conn.ns][conn.client_id] = conn
            if conn.room:
                self.rooms.setdefault(conn.room, set()).add(conn)
        if status == "reattach":
            return status, _s(result[1]), _s(result[2])
        return status, "", ""

    async def release(self, conn: Connection) -> bool:
        """Give up `conn`'s id if it still holds it (a re-attached id stays with its new owner)."""
        if not conn.registered:
            return False
        conn.registered = False
        table = self.local[conn.ns]
        if table.get(conn.client_id) is conn:
            del table[conn.client_id]
        members = self.rooms.get(conn.room)
        if members is not None:
            members.discard(conn)
            if not members:
                del self.rooms[conn.room]
        if conn.superseded:
            return False
        p = self.config.prefix
        room_key = f"{p}r:{conn.room}" if conn.room else ""
        rc_key = f"{p}rc:{conn.room}" if conn.room else ""
        try:
            done = await self._release(
                keys=[f"{p}c:{conn.ns}", f"{p}pi:{self.proc}", room_key, rc_key],
                args=[conn.client_id, conn.conn_id, self._member(conn),
                      conn.callsign if conn.licensed else ""])
        except Exception:
            logger.exception("signaling release failed", extra={"client": conn.client_id})
            return False
        return bool(done)

    def attach(self, conn: Connection) -> None:
        self.conns[conn.conn_id] = conn

    def detach(self, conn: Connection) -> None:
        self.conns.pop(conn.conn_id, None)

    # -- relay -------------------------------------------------------------------------------

    async def route(self, ns: str, target: str, text: str, *, room: str = "") -> str | None:
        """Deliver `text` to `target` on another process (or find it is ours): the resolved id,
        or None when nobody holds it (in `room`, by id or licensed callsign)."""
        p = self.config.prefix
        room_key = f"{p}r:{room}" if room else ""
        rc_key = f"{p}rc:{room}" if room else ""
        result = await self._route(keys=[f"{p}c:{ns}", room_key, rc_key],
                                   args=[target, self.proc, f"{p}p:", ns, text])
        if not result:
            return None
        resolved = _s(result[1])
        if _s(result[0]) == "local":
            conn = self.local[ns].get(resolved)
            if conn is None or not await conn.send_text(text):
                return None
        return resolved

    async def deliver(self, ns: str, target: str, text: str) -> bool:
        """Send to `target` wherever it is connected; False when it is nowhere."""
        conn = self.local[ns].get(target)
        if conn is not None and not conn.closed:
            return await conn.send_text(text)
        return await self.route(ns, target, text) is not None

    async def broadcast_room(self, room: str, text: str, *, exclude: str = "") -> None:
        """PEER_JOINED / PEER_LEFT to every member of `room` on every process."""
        await self._room_local(room, text, exclude)
        await self.redis.publish(self.broadcast_channel,
                                 US.join(("R", self.proc, room, exclude, text)))

    async def _room_local(self, room: str, text: str, exclude: str) -> None:
        members = [conn for conn in self.rooms.get(room, ()) if conn.client_id != exclude]
        if not members:
            return
        event = json.loads(text)  # built by a station process: PEER_JOINED or PEER_LEFT
        joined = event["type"] == "PEER_JOINED"
        peer_id = event["peer"]["id"] if joined else event["peerId"]
        for conn in members:
            await conn.room_event(joined, peer_id, text)

    async def room_peers(self, room: str) -> list[bytes]:
        return await self.redis.hvals(f"{self.config.prefix}r:{room}")

    async def control(self, proc: str, command: str, conn_id: str, code: int = 1000) -> None:
        """Ask `proc` to act on one of its connections: 'K' close it, 'S' it was superseded."""
        if proc == self.proc:
            await self._control_local(command, conn_id, code)
            return
        await self.redis.publish(f"{self.config.prefix}p:{proc}",
                                 US.join((command, conn_id, str(code))))

    async def _control_local(self, command: str, conn_id: str, code: int) -> None:
        conn = self.conns.get(conn_id)
        if conn is None:
            return
        if command == "S":
            conn.superseded = True
            await conn.close(code, outcome="replaced")
        else:
            await conn.close(code, outcome="disconnected")

    async def _listen(self, pubsub: Any) -> None:
        while True:
            try:
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("signaling pub/sub listener failed; resubscribing")
                await asyncio.sleep(1)
                with contextlib.suppress(Exception):
                    pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                    await pubsub.subscribe(self.channel, self.broadcast_channel)

    async def _dispatch(self, data: bytes) -> None:
        kind = data[:1]
        if kind == b"D":
            _, ns, target, text = data.decode().split(US, 3)
            conn = self.local.get(ns, {}).get(target)
            if conn is not None and await conn.send_text(text):
                return
            if self.on_undeliverable is not None:
                await self.on_undeliverable(ns, target, text)
        elif kind == b"R":
            _, origin, room, exclude, text = data.decode().split(US, 4)
            if origin != self.proc:
                await self._room_local(room, text, exclude)
        elif kind in (b"K", b"S"):
            command, conn_id, code = data.decode().split(US, 2)
            await self._control_local(command, conn_id, int(code))

    # -- PeerJS queue for absent ids ---------------------------------------------------------

    async def queue_push(self, dst: str, text: str) -> int:
        """1 queued, 0 refused (queue full), 2 the id is connected now (route again)."""
        p = self.config.prefix
        return int(await self._qpush(
            keys=[f"{p}q:{dst}", self.k_qindex, self.k_bytes, f"{p}c:{PEERJS}"],
            args=[text, time.time(), self.config.queue_per_id, self.config.queue_total_bytes,
                  dst]))

    async def queue_take(self, dst: str) -> list[str]:
        items = await self._qtake(keys=[self.k_qindex, self.k_bytes],
                                  args=[self.config.prefix, dst])
        return [_s(item) for item in items]

    async def _expire_queues(self) -> None:
        cutoff = time.time() - self.config.queue_expire
        flat = await self._qexpire(keys=[self.k_qindex, self.k_bytes],
                                   args=[self.config.prefix, cutoff, 500])
        i = 0
        while i < len(flat):
            dst, count = _s(flat[i]), int(flat[i + 1])
            items = flat[i + 2:i + 2 + count]
            i += 2 + count
            if self.on_queue_expired is not None:
                await self.on_queue_expired(dst, items)

    # -- limits ------------------------------------------------------------------------------

    async def connect_allowed(self, address: str) -> bool:
        """Count a connection attempt from `address` in this minute; False over the limit."""
        limit = self.config.connect_rate
        if limit <= 0:
            return True
        key = f"{self.config.prefix}cr:{address}:{int(time.time() // 60)}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = await pipe.execute()
        return int(count) <= limit

    # -- liveness ----------------------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.presence_refresh)
            try:
                now = time.time()
                added = await self.redis.zadd(self.k_procs, {self.proc: now})
                if added:
                    await self._reassert()
                dead = await self.redis.zrangebyscore(self.k_procs, "-inf",
                                                      now - self.config.presence_ttl)
                for proc in dead:
                    proc = _s(proc)
                    if proc != self.proc:
                        await self.reap(proc)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("signaling presence refresh failed")

    async def reap(self, proc: str) -> None:
        """Remove every id of the dead process `proc` and tell the rooms they left."""
        p = self.config.prefix
        if not await self.redis.set(f"{p}reap:{proc}", self.proc, nx=True, ex=30):
            return
        left = await self._reap_script(keys=[self.k_procs, f"{p}pi:{proc}"], args=[proc, p])
        logger.warning("signaling process gone; its peers removed",
                       extra={"proc": proc, "peers": len(left) // 2})
        for i in range(0, len(left), 2):
            room, peer = _s(left[i]), _s(left[i + 1])
            await self.broadcast_room(room, f'{{"type":"PEER_LEFT","peerId":"{peer}"}}')

    async def _reassert(self) -> None:
        """We were taken for dead (a stalled loop, a flushed Redis): claim our connections' ids
        again. One that somebody else took meanwhile is closed as replaced."""
        logger.warning("signaling process was reaped while alive; re-registering its peers")
        for table in self.local.values():
            for conn in list(table.values()):
                try:
                    status, _, _ = await self.claim(conn, token="", peer_json=_peer_json(conn))
                except Exception:
                    logger.exception("signaling re-register failed")
                    continue
                if status != "ok":
                    if table.get(conn.client_id) is conn:
                        del table[conn.client_id]
                    conn.superseded = True
                    await conn.close(4000, outcome="replaced")

    async def _sweep_loop(self) -> None:
        next_expiry = 0.0
        while True:
            await asyncio.sleep(self.config.sweep_interval)
            try:
                now = time.monotonic()
                for conn in list(self.conns.values()):
                    if conn.expires_at and now > conn.expires_at and not conn.closed:
                        await conn.close(conn.expiry_code, outcome="timeout")
                if now >= next_expiry:
                    next_expiry = now + self.config.queue_cleanup
                    await self._expire_queues()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("signaling sweep failed")
