"""The signaling WebSockets, `/ws/signal` and `{path}peerjs`, as plain ASGI applications.

Not Channels consumers: a consumer's dispatch pays a thread hop per message
(`aclose_old_connections`) and a channel-layer round trip per relay, which holds a station under
1,000 messages per second (specs/signaling-performance.md). Here each frame is parsed once with
orjson, re-serialised once, and written straight to the recipient's socket when it is on this
process; other processes are reached through `signaling.hub`. The database sees one batched write
per second of session starts and ends, never a message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from signaling.hub import NATIVE, PEERJS, Connection, Hub, HubConfig
from signaling.limits import TokenBucket, frame_too_large
from signaling.mailbox import device_authenticate, device_group, message_ack
from signaling.recorder import SessionRecorder
from signaling.selectors import mailbox_pending

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_REPLACED = 4000

REGISTER_PURPOSE = "signal-register"
REGISTER_PREFIX = b"meshsite-signal-register:"

_dumps = orjson.dumps
_loads = orjson.loads
_JSONError = orjson.JSONDecodeError
# orjson reads 1024 levels of nesting but writes only 254: a frame it read can fail to relay.
_JSONEncodeError = orjson.JSONEncodeError
_MAX_DEPTH = 254
_now = time.monotonic


class _Station:
    """The process-wide hub and recorder, created on the first connection (inside the loop)."""

    hub: Hub | None = None
    recorder: SessionRecorder | None = None

    @classmethod
    def get(cls) -> tuple[Hub, SessionRecorder]:
        if cls.hub is None:
            hub = Hub(HubConfig(
                redis_url=settings.REDIS_URL,
                presence_refresh=settings.SIGNALING_PRESENCE_REFRESH,
                presence_ttl=settings.SIGNALING_PRESENCE_TTL,
                queue_expire=settings.SIGNALING_PEERJS_EXPIRE_TIMEOUT,
                queue_cleanup=settings.SIGNALING_PEERJS_CLEANUP_INTERVAL,
                queue_per_id=settings.SIGNALING_PEERJS_QUEUE_PER_ID,
                queue_total_bytes=settings.SIGNALING_PEERJS_QUEUE_TOTAL_BYTES,
                connect_rate=settings.SIGNALING_CONNECT_RATE,
                sweep_interval=min(0.5, settings.SIGNALING_PEERJS_CLEANUP_INTERVAL),
            ))
            hub.on_queue_expired = _peerjs_queue_expired
            hub.on_undeliverable = _undeliverable
            cls.hub = hub
            cls.recorder = SessionRecorder(process=hub.proc)
        return cls.hub, cls.recorder


def _error_native(code: str, details: str) -> str:
    return _dumps({"type": "ERROR", "error": code, "details": details}).decode()


def _error_peerjs(msg: str) -> str:
    return _dumps({"type": "ERROR", "payload": {"msg": msg}}).decode()


class _SocketApp:
    """Accept, check the per-address connection rate, then a receive loop with the limits every
    frame goes through (size, rate, warnings); subclasses handle the protocol."""

    protocol = ""
    ns = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        hub, recorder = _Station.get()
        await hub.start()
        remote = (scope.get("client") or ("?",))[0] or "?"
        await send({"type": "websocket.accept"})
        conn = Connection(ns=self.ns, send=send, remote=str(remote))
        if not await hub.connect_allowed(conn.remote):
            await conn.send_text(self.rate_refusal())
            await conn.close(CLOSE_POLICY, outcome="rejected",
                             reason="too many connection attempts")
            return
        conn.bucket = TokenBucket(settings.SIGNALING_RATE, settings.SIGNALING_BURST)
        hub.attach(conn)
        close_code = None
        try:
            await self.opened(hub, recorder, conn, scope)
            limit = settings.SIGNALING_MAX_MESSAGE_BYTES
            handle = self.handle
            while not conn.closed:
                event = await receive()
                kind = event["type"]
                if kind == "websocket.receive":
                    raw = event.get("text")
                    if raw is None:
                        raw = event.get("bytes") or b""
                    if frame_too_large(raw, limit):
                        await conn.close(CLOSE_TOO_BIG, outcome="too_large",
                                         reason=f"message over {limit} bytes")
                        break
                    conn.messages_in += 1
                    if not conn.bucket.take():
                        await self.rate_limited(conn)
                        continue
                    await handle(hub, conn, raw)
                elif kind == "websocket.disconnect":
                    close_code = event.get("code")
                    conn.closed = True
                    break
        finally:
            hub.detach(conn)
            await self.closing(hub, conn)
            if conn.registered or conn.client_id or conn.outcome:
                recorder.closed(conn, self.protocol, outcome=conn.outcome or "closed",
                                detail="" if close_code is None else f"close code {close_code}",
                                ended=time.time())

    async def warn(self, conn: Connection) -> None:
        """A limit was hit: after SIGNALING_MAX_WARNINGS of them the client is closed (1008)."""
        conn.warnings += 1
        if conn.warnings >= settings.SIGNALING_MAX_WARNINGS:
            await conn.close(CLOSE_POLICY, outcome="abuse",
                             reason="too many limit violations")

    def rate_refusal(self) -> str:
        raise NotImplementedError

    async def rate_limited(self, conn: Connection) -> None:
        raise NotImplementedError

    async def opened(self, hub: Hub, recorder: SessionRecorder, conn: Connection,
                     scope: Scope) -> None:
        raise NotImplementedError

    async def handle(self, hub: Hub, conn: Connection, raw: str | bytes) -> None:
        raise NotImplementedError

    async def closing(self, hub: Hub, conn: Connection) -> None:
        await hub.release(conn)


# --- PeerJS ---------------------------------------------------------------------------------

_PEERJS_RELAYED = frozenset(("OFFER", "ANSWER", "CANDIDATE", "LEAVE", "EXPIRE"))
_PEERJS_NOT_QUEUED = frozenset(("LEAVE", "EXPIRE"))
_BAD_ID = re.compile(r"[\x00-\x1f\x7f]")
_OPEN = '{"type":"OPEN"}'


def _first(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name)
    return values[0] if values else ""


class PeerJSSocket(_SocketApp):
    """`{path}peerjs?key=&id=&token=`: the PeerJS server protocol (specs/peerjs-protocol.md)."""

    protocol = "peerjs"
    ns = PEERJS

    def rate_refusal(self) -> str:
        return _error_peerjs("Too many connection attempts from your address: wait a minute "
                             "and try again")

    async def rate_limited(self, conn: Connection) -> None:
        # The peerjs client treats any ERROR as fatal: over-rate frames are dropped silently.
        await self.warn(conn)

    async def opened(self, hub: Hub, recorder: SessionRecorder, conn: Connection,
                     scope: Scope) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"),
                         keep_blank_values=True)
        key, peer_id, token = _first(query, "key"), _first(query, "id"), _first(query, "token")
        if not key or not peer_id or not token:
            await self._refuse(conn, _error_peerjs(
                "No id, token, or key supplied to websocket server"))
            return
        if key != settings.SIGNALING_PEERJS_KEY:
            await self._refuse(conn, _error_peerjs("Invalid key provided"))
            return
        if len(peer_id) > 128 or len(token) > 128 or _BAD_ID.search(peer_id + token):
            await self._refuse(conn, _error_peerjs(
                "Invalid id or token: at most 128 characters, no control characters"))
            return
        conn.client_id = peer_id
        conn.token = token
        binding = await _peerjs_binding(conn)
        if binding:
            await self._refuse(conn, _error_peerjs(binding))
            return
        status, old_proc, old_conn = await hub.claim(
            conn, limit=settings.SIGNALING_PEERJS_CONCURRENT_LIMIT)
        if status == "taken":
            await self._refuse(conn, '{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}')
            return
        if status == "full":
            await self._refuse(conn, _error_peerjs("Server has reached its concurrent user limit"))
            return
        if status == "reattach" and old_conn != conn.conn_id:
            await hub.control(old_proc, "S", old_conn, CLOSE_REPLACED)
        conn.expires_at = _now() + settings.SIGNALING_PEERJS_ALIVE_TIMEOUT
        await conn.send_text(_OPEN)
        recorder.opened(conn, self.protocol)
        for text in await hub.queue_take(peer_id):
            await conn.send_text(text)

    async def _refuse(self, conn: Connection, text: str) -> None:
        conn.outcome = "rejected"
        await conn.send_text(text)
        await conn.close(CLOSE_NORMAL)

    async def handle(self, hub: Hub, conn: Connection, raw: str | bytes) -> None:
        try:
            message = _loads(raw)
        except _JSONError:
            return  # the anchor ignores what it cannot parse
        if type(message) is not dict:
            return
        kind = message.get("type")
        if kind == "HEARTBEAT":
            conn.expires_at = _now() + settings.SIGNALING_PEERJS_ALIVE_TIMEOUT
            return
        if type(kind) is not str or kind not in _PEERJS_RELAYED or not conn.registered:
            return  # (a list or object `type` is unhashable: no set lookup for it)
        dst = message.get("dst")
        if kind == "LEAVE" and not dst:
            conn.outcome = "closed"
            await hub.release(conn)
            await conn.close(CLOSE_NORMAL)
            return
        if type(dst) is not str or not dst:
            return
        if kind == "CANDIDATE" and settings.SIGNALING_MAX_ICE_CANDIDATES:
            count = conn.counters.get(dst, 0) + 1
            if count > settings.SIGNALING_MAX_ICE_CANDIDATES or len(conn.counters) > 1000:
                await self.warn(conn)
                return
            conn.counters[dst] = count
        out: dict[str, Any] = {"type": kind, "src": conn.client_id, "dst": dst}
        if "payload" in message:
            out["payload"] = message["payload"]
        try:
            text = _dumps(out).decode()
        except _JSONEncodeError:
            return  # nested deeper than orjson writes (254 levels): as unparseable, ignored
        target = hub.local[PEERJS].get(dst)
        if target is not None:
            if not target.closed and await target.send_text(text):
                return
            # Ours but closed or closing (alive timeout, an admin's disconnect, a failed write),
            # its id not yet released: as the anchor, the sender learns the peer left.
            await conn.send_text(_dumps({"type": "LEAVE", "src": dst,
                                         "dst": conn.client_id}).decode())
            return
        if await hub.route(PEERJS, dst, text) is not None:
            return
        if kind in _PEERJS_NOT_QUEUED:
            return
        await _peerjs_enqueue(hub, conn.client_id, dst, text)


async def _peerjs_enqueue(hub: Hub, src: str, dst: str, text: str) -> None:
    """Keep a message for an absent id; when the queue is full the sender learns at once, with
    the EXPIRE it would otherwise get after the expire timeout."""
    result = await hub.queue_push(dst, text)
    if result == 2 and await hub.route(PEERJS, dst, text) is not None:
        return
    if result != 1:
        await hub.deliver(PEERJS, src, _expire_text(dst, src))


def _expire_text(unreachable: str, to: str) -> str:
    return _dumps({"type": "EXPIRE", "src": unreachable, "dst": to}).decode()


async def _peerjs_queue_expired(dst: str, items: list[bytes]) -> None:
    hub, _ = _Station.get()
    senders: list[str] = []
    for item in items:
        try:
            src = _loads(item).get("src")
        except (_JSONError, AttributeError):
            continue
        if isinstance(src, str) and src not in senders:
            senders.append(src)
    for src in senders:
        await hub.deliver(PEERJS, src, _expire_text(dst, src))


async def _undeliverable(ns: str, target: str, text: str) -> None:
    """A relay from another process found its target gone from here: queue PeerJS messages."""
    if ns != PEERJS:
        return
    try:
        message = _loads(text)
    except _JSONError:
        return
    if message.get("type") in _PEERJS_NOT_QUEUED:
        return
    hub, _ = _Station.get()
    await _peerjs_enqueue(hub, str(message.get("src", "")), target, text)


_CALLSIGN_ID = re.compile(r"^([A-Za-z0-9]{1,3}[0-9][A-Za-z0-9]{0,4}[A-Za-z])(?:[ _-].*)?$")
# The ids `{path}{key}/id` hands out: a third of them start with a group that reads as a
# callsign (`1a2b3c4d-…`), yet they name nobody.
_UUID_ID = re.compile(r"^[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$")


async def _peerjs_binding(conn: Connection) -> str:
    """With MESHSITE_PEERJS_ID_BINDING, ids that name a callsign (`W1AW`, `W1AW-phone`) need a
    token the station issued to that licensed operator (`peerjs_token_issue`); with `licensed`
    every id must. Answers the refusal text, or ''."""
    mode = settings.SIGNALING_PEERJS_ID_BINDING
    if mode == "off":
        return ""
    match = None if _UUID_ID.match(conn.client_id) else _CALLSIGN_ID.match(conn.client_id)
    if match is None:
        return ("This station only accepts ids of licensed operators: CALLSIGN or "
                "CALLSIGN-suffix" if mode == "licensed" else "")
    callsign = match.group(1).upper()
    from signaling.selectors import peerjs_token_callsign

    owner = await sync_to_async(peerjs_token_callsign)(token=conn.token)
    if owner != callsign:
        return (f"The id {conn.client_id!r} belongs to the licensed operator {callsign}: "
                "connect with the token the station issued to that operator")
    conn.callsign = callsign
    conn.licensed = True
    return ""


# --- /ws/signal -----------------------------------------------------------------------------

_RECEIVED = {"OFFER": "OFFER_RECEIVED", "ANSWER": "ANSWER_RECEIVED",
             "ICE_CANDIDATE": "ICE_CANDIDATE_RECEIVED"}
_CALLSIGN = re.compile(r"^[A-Za-z0-9/]{1,16}$")
_ROOM = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_TYPES = ("REGISTER, NONCE, LIST_PEERS, OFFER, ANSWER, ICE_CANDIDATE, HEARTBEAT, PING, "
          "PEERJS_TOKEN")


class SignalSocket(_SocketApp):
    """`/ws/signal`: the station's own signaling protocol (docs/signaling.md)."""

    protocol = "signal"
    ns = NATIVE

    def rate_refusal(self) -> str:
        return _error_native("too_many_connections",
                             "Too many connection attempts from your address: wait a minute")

    async def rate_limited(self, conn: Connection) -> None:
        await conn.send_text(_error_native(
            "rate_limited", f"More than {settings.SIGNALING_RATE:g} messages per second "
            "(MESHSITE_SIGNALING_RATE): this message was dropped"))
        await self.warn(conn)

    async def opened(self, hub: Hub, recorder: SessionRecorder, conn: Connection,
                     scope: Scope) -> None:
        self._touch(conn)
        conn.expiry_code = CLOSE_GOING_AWAY

    @staticmethod
    def _touch(conn: Connection) -> None:
        if settings.SIGNALING_IDLE_TIMEOUT:
            conn.expires_at = _now() + settings.SIGNALING_IDLE_TIMEOUT

    async def _error(self, conn: Connection, code: str, details: str, *,
                     warn: bool = False) -> None:
        await conn.send_text(_error_native(code, details))
        if warn:
            await self.warn(conn)

    async def handle(self, hub: Hub, conn: Connection, raw: str | bytes) -> None:
        try:
            message = _loads(raw)
        except _JSONError:
            await self._error(conn, "invalid_json", "The message is not valid JSON", warn=True)
            return
        if type(message) is not dict or type(message.get("type")) is not str:
            await self._error(conn, "invalid_message",
                              'A message is a JSON object with a "type"', warn=True)
            return
        self._touch(conn)
        kind = message["type"]
        received = _RECEIVED.get(kind)
        if received is not None:
            await self._relay(hub, conn, kind, received, message)
        elif kind == "HEARTBEAT":
            return
        elif kind == "PING":
            await conn.send_text('{"type":"PONG"}')
        elif kind == "REGISTER":
            await self._register(hub, conn, message)
        elif kind == "LIST_PEERS":
            if not conn.registered:
                await self._error(conn, "not_registered", "Send REGISTER first")
                return
            peers = await self._peers(hub, conn)
            await conn.room_told([peer["id"] for peer in peers])
            await conn.send_text(_dumps({"type": "PEER_LIST", "room": conn.room,
                                         "peers": peers}).decode())
        elif kind == "NONCE":
            await self._nonce(conn)
        elif kind == "PEERJS_TOKEN":
            await self._peerjs_token(conn)
        else:
            await self._error(conn, "unknown_type",
                              f"Unknown message type {kind[:40]!r}; known: {_TYPES}", warn=True)

    async def _relay(self, hub: Hub, conn: Connection, kind: str, received: str,
                     message: dict[str, Any]) -> None:
        if not conn.registered:
            await self._error(conn, "not_registered", "Send REGISTER before " + kind)
            return
        target = message.pop("target", None)
        if type(target) is not str or not target:
            await self._error(conn, "invalid_message",
                              f'{kind} needs a "target": a client id or a callsign')
            return
        if kind == "ICE_CANDIDATE" and settings.SIGNALING_MAX_ICE_CANDIDATES:
            count = conn.counters.get(target, 0) + 1
            if count > settings.SIGNALING_MAX_ICE_CANDIDATES or len(conn.counters) > 1000:
                await self._error(
                    conn, "too_many_candidates",
                    f"At most {settings.SIGNALING_MAX_ICE_CANDIDATES} ICE candidates per "
                    "session and peer (MESHSITE_SIGNALING_MAX_ICE_CANDIDATES)", warn=True)
                return
            conn.counters[target] = count
        message["type"] = received
        message["from"] = conn.client_id
        message["fromCallsign"] = conn.callsign
        try:
            text = _dumps(message).decode()
        except _JSONEncodeError:
            await self._error(conn, "invalid_message",
                              f"{kind} is nested too deeply: at most {_MAX_DEPTH} levels",
                              warn=True)
            return
        peer = hub.local[NATIVE].get(target)
        if (peer is not None and peer.room == conn.room and not peer.closed
                and await peer.send_text(text)):
            return
        if await hub.route(NATIVE, target, text, room=conn.room) is None:
            await self._error(conn, "unknown_target",
                              f"No peer {target[:64]!r} in room {conn.room!r}")

    async def _peers(self, hub: Hub, conn: Connection) -> list[dict[str, Any]]:
        peers = [_loads(raw) for raw in await hub.room_peers(conn.room)]
        return [peer for peer in peers if peer.get("id") != conn.client_id]

    async def _nonce(self, conn: Connection) -> None:
        try:
            from certificates.services import nonce_issue

            nonce = await sync_to_async(nonce_issue)(purpose=REGISTER_PURPOSE, ttl=300)
        except ImportError:
            await self._error(conn, "unavailable", "This station cannot verify licenses yet")
            return
        await conn.send_text(_dumps({"type": "NONCE", "nonce": nonce}).decode())

    async def _peerjs_token(self, conn: Connection) -> None:
        if not conn.licensed:
            await self._error(conn, "not_licensed",
                              "PeerJS tokens are for licensed operators: REGISTER with a "
                              "certificate first")
            return
        from signaling.services import peerjs_token_issue

        token = await sync_to_async(peerjs_token_issue)(callsign=conn.callsign)
        await conn.send_text(_dumps({"type": "PEERJS_TOKEN", "token": token,
                                     "callsign": conn.callsign}).decode())

    async def _register(self, hub: Hub, conn: Connection, message: dict[str, Any]) -> None:
        if conn.registered:
            await self._error(conn, "already_registered", "This connection is registered")
            return
        callsign = message.get("callsign") or "GUEST"
        room = message.get("room") or settings.SIGNALING_DEFAULT_ROOM
        if type(callsign) is not str or not _CALLSIGN.match(callsign):
            await self._error(conn, "invalid_callsign",
                              'callsign: "GUEST" or a callsign of letters, digits and "/"')
            return
        if type(room) is not str or not _ROOM.match(room):
            await self._error(conn, "invalid_room",
                              "room: 1 to 64 letters, digits, '_', '.' or '-'")
            return
        licensed = False
        if message.get("certificate"):
            verdict = await sync_to_async(_verify_register)(message)
            if isinstance(verdict, tuple):
                await self._error(conn, *verdict)
                return
            callsign, licensed = verdict, True
        elif callsign.upper() == "GUEST":
            callsign = "GUEST"
        conn.callsign = callsign.upper()
        conn.licensed = licensed
        conn.room = room
        conn.client_id = uuid.uuid4().hex
        peer = {"id": conn.client_id, "callsign": conn.callsign, "hasLicense": licensed}
        status, _, _ = await hub.claim(conn, limit=settings.SIGNALING_MAX_CLIENTS,
                                       room_capacity=settings.SIGNALING_ROOM_CAPACITY,
                                       peer_json=_dumps(peer).decode())
        if status == "full":
            conn.client_id = ""
            await self._error(conn, "server_full", "This station has reached its client limit "
                              "(MESHSITE_SIGNALING_MAX_CLIENTS); try again later")
            return
        if status == "room_full":
            conn.client_id = ""
            await self._error(conn, "room_full", f"Room {room!r} is full "
                              f"({settings.SIGNALING_ROOM_CAPACITY} peers); try another room")
            return
        peers = await self._peers(hub, conn)
        await conn.send_text(_dumps({
            "type": "REGISTERED", "clientId": conn.client_id, "callsign": conn.callsign,
            "hasLicense": licensed, "room": room, "serverOwner": await _server_owner(),
            "peers": peers}).decode())
        # Room events that came since the claim (another process's broadcast can be late) go
        # after REGISTERED, only those its peer list does not already hold.
        await conn.room_told([peer["id"] for peer in peers], first=True)
        await hub.broadcast_room(room, _dumps({"type": "PEER_JOINED", "peer": peer}).decode(),
                                 exclude=conn.client_id)
        _Station.get()[1].opened(conn, self.protocol)

    async def closing(self, hub: Hub, conn: Connection) -> None:
        room, client_id = conn.room, conn.client_id
        if await hub.release(conn) and room:
            await hub.broadcast_room(room, _dumps({"type": "PEER_LEFT",
                                                   "peerId": client_id}).decode())


def _verify_register(message: dict[str, Any]) -> str | tuple[str, str]:
    """The licensed callsign proven by a REGISTER, or (error code, details)."""
    try:
        from certificates.errors import CertificateError
        from certificates.services import license_verify, nonce_consume, signature_verify
    except ImportError:
        return "unavailable", "This station cannot verify licenses yet"
    certificate, chain = message.get("certificate"), message.get("chain") or []
    nonce, signature = message.get("nonce"), message.get("signature")
    if type(certificate) is not str or type(chain) is not list or not all(
            type(item) is str for item in chain):
        return "bad_certificate", "certificate: a PEM string; chain: a list of PEM strings"
    if type(nonce) is not str or type(signature) is not str:
        return "bad_proof", ('A licensed REGISTER needs "nonce" (from NONCE) and "signature" '
                             '(base64 of your signature over "meshsite-signal-register:" + nonce)')
    try:
        proof = base64.b64decode(signature + "=" * (-len(signature) % 4), altchars=b"-_"
                                 if ("-" in signature or "_" in signature) else None,
                                 validate=True)
    except (binascii.Error, ValueError):
        return "bad_proof", "signature is not base64"
    claimed = message.get("callsign")
    claimed = claimed if isinstance(claimed, str) and claimed.upper() != "GUEST" else None
    try:
        if not nonce_consume(purpose=REGISTER_PURPOSE, nonce=nonce):
            return "bad_nonce", "The nonce is unknown, used or expired: ask for a new NONCE"
        verified = license_verify(certificate=certificate, chain=chain, callsign=claimed)
        signature_verify(public_key=verified.public_key, signature=proof,
                         message=REGISTER_PREFIX + nonce.encode())
    except CertificateError as exc:
        return exc.code, str(getattr(exc, "detail", exc))
    return verified.callsign.upper()


class _OwnerCache:
    value: str | None = None
    stamp = 0.0


async def _server_owner() -> str | None:
    # Short: a claim, a hand-over or a blacklisted owner must show within seconds.
    if _now() - _OwnerCache.stamp > 2:
        _OwnerCache.value = await sync_to_async(_owner_from_status)()
        _OwnerCache.stamp = _now()
    return _OwnerCache.value


def _owner_from_status() -> str | None:
    from meshsite.status import apply_status

    data: dict[str, Any] = {"owner": None, "signaling": {}}
    try:
        apply_status(data)
    except Exception:
        return None
    if data.get("ownerBlacklisted"):
        return None  # the owner's certificate is blacklisted here: no licensed owner to vouch
    return data.get("owner")


# -- the mailbox ----------------------------------------------------------------------------------

MAILBOX_AUTH_TIMEOUT = 10.0
MAILBOX_BATCH = 100
CLOSE_MAILBOX_REPLACED = 4000
CLOSE_MAILBOX_UNAUTHORIZED = 4401


def _envelope_frame(row: Any) -> dict[str, Any]:
    # The frame's own `type` is "envelope"; the sender's ciphertext type (Signal's 1 or 3)
    # travels as `messageType`: one JSON object cannot carry two `type` members.
    return {"type": "envelope", "id": row.server_id, "source": row.source,
            "sourceDevice": row.source_device, "timestamp": row.timestamp,
            "messageType": row.message_type,
            "content": base64.b64encode(bytes(row.content)).decode("ascii")}


class MailboxConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/mailbox`: one device's queue. The first frame authenticates (`{"type": "auth",
    "token"}`); then every waiting envelope, oldest first, then `queue_empty`; later envelopes
    as their doorbell rings. `{"type": "ack", "id"}` deletes one (only this device's). A second
    connection of the device closes this one (4000)."""

    device_pk: int | None = None

    async def connect(self) -> None:
        self.device_pk = None
        self.last_pk = 0
        self.lock = asyncio.Lock()
        self.auth_timer = asyncio.get_running_loop().call_later(
            MAILBOX_AUTH_TIMEOUT, lambda: asyncio.ensure_future(self._auth_timeout()))
        await self.accept()

    async def _auth_timeout(self) -> None:
        if self.device_pk is None:
            await self._refuse("auth_timeout", f"no auth frame within {MAILBOX_AUTH_TIMEOUT:g} s")

    async def _refuse(self, code: str, detail: str) -> None:
        with contextlib.suppress(Exception):
            await self.send_json({"type": "error", "error": code, "detail": detail})
            await self.close(CLOSE_MAILBOX_UNAUTHORIZED)

    async def _error(self, code: str, detail: str) -> None:
        await self.send_json({"type": "error", "error": code, "detail": detail})

    async def disconnect(self, code: int) -> None:
        self.auth_timer.cancel()
        if self.device_pk is not None:
            await self.channel_layer.group_discard(device_group(self.device_pk),
                                                   self.channel_name)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return _loads(text_data)
        except _JSONError:
            return None

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if self.device_pk is None:
            if kind != "auth":
                await self._refuse("unauthorized", 'the first frame is {"type": "auth", '
                                                   '"token": "<device token>"}')
                return
            await self._authenticate(content.get("token"))
            return
        if kind == "ack":
            server_id = content.get("id")
            if not isinstance(server_id, str) or len(server_id) > 64:
                await self._error("invalid", "ack: 'id' is the envelope's id (a string)")
                return
            await database_sync_to_async(message_ack)(device_pk=self.device_pk,
                                                      server_id=server_id)
        elif kind == "auth":
            await self._error("already_authenticated", "this connection is authenticated")
        else:
            await self._error("unknown_type", f"unknown frame type {str(kind)[:32]!r}: send "
                                              "'ack'")

    async def _authenticate(self, token: Any) -> None:
        device = await database_sync_to_async(device_authenticate)(token)
        if device is None:
            await self._refuse("unauthorized", "the device token is unknown: register the "
                                               "device again")
            return
        self.auth_timer.cancel()
        self.device_pk = device.pk
        group = device_group(device.pk)
        await self.channel_layer.group_add(group, self.channel_name)
        await self.channel_layer.group_send(group, {"type": "mailbox.replace",
                                                    "channel": self.channel_name})
        await self._flush(initial=True)

    async def _flush(self, *, initial: bool = False) -> None:
        async with self.lock:
            while True:
                rows = await database_sync_to_async(mailbox_pending)(
                    device_pk=self.device_pk, after_pk=self.last_pk, limit=MAILBOX_BATCH)
                for row in rows:
                    await self.send_json(_envelope_frame(row))
                    self.last_pk = row.pk
                if len(rows) < MAILBOX_BATCH:
                    break
            if initial:
                await self.send_json({"type": "queue_empty"})

    async def mailbox_doorbell(self, event: dict[str, Any]) -> None:
        if self.device_pk is not None:
            await self._flush()

    async def mailbox_replace(self, event: dict[str, Any]) -> None:
        if event.get("channel") != self.channel_name:
            with contextlib.suppress(Exception):
                await self._error("replaced", "another connection of this device took over")
            await self.close(CLOSE_MAILBOX_REPLACED)

    async def mailbox_keys_low(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "keys_low", "oneTimePreKeyCount": event.get("count", 0)})

    async def mailbox_forwarded(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "forwarded", "batch": event.get("batch"),
                              "ids": event.get("ids") or []})

    async def mailbox_forward_failed(self, event: dict[str, Any]) -> None:
        await self.send_json({**{k: v for k, v in event.items() if k != "type"},
                              "type": "forward_failed"})

    async def mailbox_close(self, event: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await self._error("device_removed", str(event.get("reason", "")))
        await self.close(int(event.get("code", 4001)))

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return _dumps(content).decode()
