"""One authenticated `/ws/coordinate` link, the same code on both ends.

`LinkSession` runs the handshake of `mesh.protocol` (server role in the daphne consumer, client
role in meshd), then checks every envelope (signature by the proven key, sender, timestamp
window, replay) and dispatches it to the handler registered for its type. It knows nothing of
the transport: it is given `send_text` and `close` coroutines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from mesh import linkbus, protocol, registry, selectors, trust
from mesh.airtime import SyncPacer
from mesh.protocol import ProtocolError
from mesh.registry import MeshHandlerError
from meshsite.redisconn import loop_redis

logger = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
CLOSE_REFUSED = 4403
MAX_REFUSALS_PER_MINUTE = 30
# Our identity changed (claim, hand-over, owner blacklisted) since the handshake: dial again.
# An application code: autobahn (daphne) refuses to send 1012 from a consumer.
CLOSE_IDENTITY = 4012
CLOSE_PROTOCOL = 4400

async def first_time_seen(message_id: str, window: float | None = None) -> bool:
    """Shared across the station's processes (daphne and meshd): SET NX with expiry (twice
    the replay window: `window` seconds, the station's setting by default)."""
    keep = int(2 * (window or settings.MESH_MESSAGE_WINDOW))
    return bool(await loop_redis().set(f"meshsite:mesh:seen:{message_id}", b"1", nx=True,
                                        ex=keep))


class LinkRefused(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class LinkSession:
    """One end of a link. `role` is "server" (accepted) or "client" (dialled)."""

    def __init__(self, *, role: str, send_text: Callable[[str], Awaitable[None]],
                 close: Callable[[int], Awaitable[None]],
                 on_established: Callable[[LinkSession], Awaitable[None]] | None = None,
                 on_heard: Callable[[LinkSession], None] | None = None) -> None:
        self.role = role
        self._send_text = send_text
        self._close = close
        self.on_established = on_established
        self.on_heard = on_heard
        self.local: trust.LocalStation | None = None
        self.peer: trust.ProvenStation | None = None
        self.peer_hello_id = ""
        self.my_nonce = protocol.new_nonce()
        self.established = asyncio.Event()
        self.closed = False
        self.refused: LinkRefused | None = None
        self.peer_announce: dict[str, Any] = {}
        self.peer_endpoints: list[str] = []  # what a dialling peer stated in its AUTH
        self._pending: dict[str, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self.last_heard = 0.0
        self._blacklist_checked = time.monotonic()
        self._refusals: list[float] = []
        self.window = float(settings.MESH_MESSAGE_WINDOW)  # replay window, seconds
        self.sync_pacer = SyncPacer(share=settings.MESH_SYNC_SHARE, now=time.monotonic())

    # -- LinkContext -----------------------------------------------------------------------

    @property
    def peer_station_id(self) -> str:
        return self.peer.station_id if self.peer else ""

    @property
    def peer_callsign(self) -> str:
        return self.peer.callsign if self.peer else ""

    @property
    def peer_fingerprint(self) -> str:
        return self.peer.fingerprint if self.peer else ""

    async def send(self, type_: str, payload: dict[str, Any], *, re: str | None = None,
                   request: bool = False, pace: bool | None = None) -> str:
        if not self.established.is_set() or self.local is None:
            raise LinkRefused("not_established", "the link is not authenticated yet")
        message_id, text = self._signed(type_, payload, re=re, request=request)
        if registry.is_sync(type_) if pace is None else pace:
            await self._pace(len(text))
        await self._send_text(text)
        return message_id

    def _signed(self, type_: str, payload: dict[str, Any], *, re: str | None = None,
                request: bool = False) -> tuple[str, str]:
        """(id, text) of a signed envelope from this station. Inline: an Ed25519 signature over
        at most one chunk costs well under a millisecond; a hop through the shared sync thread
        cost tens (it queues behind database work)."""
        return protocol.envelope_text(
            type_=type_, sender=self._me().station_id, payload=payload, sign=trust.sign,
            ttl=settings.MESH_HOP_LIMIT, re=re, request=request)

    async def _pace(self, nbytes: int) -> None:
        """Hold sync traffic to MESHSITE_MESH_SYNC_SHARE of the link's measured bandwidth."""
        bandwidth = await linkbus.bandwidth(self.peer_station_id)
        while (wait := self.sync_pacer.wait(nbytes, bandwidth, time.monotonic())) > 0:
            await asyncio.sleep(min(wait, 5.0))

    async def request(self, type_: str, payload: dict[str, Any],
                      timeout: float = 10.0) -> dict[str, Any]:
        if not self.established.is_set() or self.local is None:
            raise LinkRefused("not_established", "the link is not authenticated yet")
        message_id, text = self._signed(type_, payload, request=True)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        try:
            if registry.is_sync(type_):
                await self._pace(len(text))
            await self._send_text(text)
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(message_id, None)

    # -- handshake -------------------------------------------------------------------------

    async def start(self) -> None:
        """Server role: greet the dialler with our id and a fresh nonce (or refuse)."""
        self.local = await sync_to_async(trust.local_station)()
        if self.role != "server":
            return
        if self.local.credential is None:
            await self.refuse(self.local.withheld or "unclaimed", self.local.withheld_detail())
            return
        await self._send_json({"type": protocol.HELLO, "stationId": self.local.station_id,
                               "nonce": self.my_nonce, "protocol": protocol.PROTOCOL_VERSION})

    async def refuse(self, code: str, detail: str) -> None:
        self.refused = LinkRefused(code, detail)
        logger.warning("mesh link refused", extra={"role": self.role, "error": code,
                                                   "detail": detail})
        with contextlib.suppress(Exception):
            await self._send_json({"type": protocol.REFUSED, "error": code, "detail": detail})
        await self.shutdown(CLOSE_REFUSED)

    async def shutdown(self, code: int = 1000) -> None:
        if self.closed:
            return
        self.closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(LinkRefused("closed", "the link closed"))
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await self._close(code)

    def _me(self) -> trust.LocalStation:
        if self.local is None:
            raise RuntimeError("LinkSession.start() was not awaited")
        return self.local

    async def _send_json(self, data: dict[str, Any]) -> None:
        await self._send_text(protocol.canonical_json(data).decode())

    async def _verify_peer(self, frame: dict[str, Any], nonce: str, prover_role: str,
                           expected_id: str | None,
                           endpoints: list[str] | None = None) -> trust.ProvenStation:
        local = self._me()
        try:
            proven = await sync_to_async(trust.verify_credential)(frame.get("credential"))
        except trust.TrustRefused as exc:
            raise LinkRefused(exc.code, exc.detail) from exc
        if proven.station_id == local.station_id:
            raise LinkRefused("self", "this is a link to ourselves")
        if expected_id is not None and proven.station_id != expected_id:
            raise LinkRefused("wrong_station",
                              f"credential is for {proven.station_id}, hello said {expected_id}")
        try:
            proof = protocol.b64decode(frame.get("proof"), "proof")
        except ProtocolError as exc:
            raise LinkRefused("bad_proof", exc.detail) from exc
        message = protocol.proof_message(prover_role, nonce, proven.station_id,
                                         local.station_id, endpoints or ())
        try:
            await sync_to_async(trust.verify_station_signature)(proven.public_key_b64, proof,
                                                                message)
        except trust.TrustRefused as exc:
            raise LinkRefused("bad_proof", "the station key's signature over our nonce does "
                                           "not verify") from exc
        return proven

    async def _on_hello(self, frame: dict[str, Any]) -> None:
        """Client role: prove ourselves over the server's nonce."""
        local = self._me()
        if local.credential is None:
            await self.refuse(local.withheld or "unclaimed", local.withheld_detail())
            return
        nonce, server_id = frame.get("nonce"), frame.get("stationId")
        if not isinstance(nonce, str) or not isinstance(server_id, str) or len(nonce) < 16:
            await self.refuse("malformed", "HELLO needs a stationId and a nonce")
            return
        self.peer_hello_id = server_id
        endpoints = (await sync_to_async(selectors.own_endpoints)())[:protocol.MAX_ENDPOINTS]
        proof = await sync_to_async(trust.sign)(
            protocol.proof_message("client", nonce, local.station_id, server_id, endpoints))
        await self._send_json({"type": protocol.AUTH, "credential": local.credential,
                               "nonce": self.my_nonce, "endpoints": endpoints,
                               "proof": protocol.b64encode(proof)})

    async def _on_auth(self, frame: dict[str, Any]) -> None:
        """Server role: check the client's credential and proof, then prove ourselves."""
        local = self._me()
        nonce = frame.get("nonce")
        if not isinstance(nonce, str) or len(nonce) < 16:
            await self.refuse("malformed", "AUTH needs a nonce of at least 16 characters")
            return
        try:
            endpoints = protocol.endpoints_field(frame.get("endpoints"))
        except ProtocolError as exc:
            await self.refuse(exc.code, exc.detail)
            return
        try:
            self.peer = await self._verify_peer(frame, self.my_nonce, "client", None, endpoints)
        except LinkRefused as exc:
            await self.refuse(exc.code, exc.detail)
            return
        self.peer_endpoints = endpoints
        self.my_nonce = ""  # single use
        proof = await sync_to_async(trust.sign)(
            protocol.proof_message("server", nonce, local.station_id, self.peer.station_id))
        await self._send_json({"type": protocol.WELCOME, "credential": local.credential,
                               "proof": protocol.b64encode(proof)})
        await self._established()

    async def _on_welcome(self, frame: dict[str, Any]) -> None:
        try:
            self.peer = await self._verify_peer(frame, self.my_nonce, "server",
                                                self.peer_hello_id)
        except LinkRefused as exc:
            await self.refuse(exc.code, exc.detail)
            return
        await self._established()

    async def _established(self) -> None:
        self.established.set()
        self.last_heard = time.monotonic()
        logger.info("mesh link up", extra={"role": self.role, "peer": self.peer_station_id,
                                           "callsign": self.peer_callsign})
        if self.on_established is not None:
            self._spawn(self.on_established(self))

    # -- frames ----------------------------------------------------------------------------

    async def receive(self, text: str | bytes) -> None:
        """Feed one frame received from the transport."""
        if self.closed:
            return
        try:
            frame = protocol.parse_frame(text)
        except ProtocolError as exc:
            await self._error(None, exc.code, exc.detail)
            return
        kind = frame["type"]
        if not self.established.is_set():
            await self._handshake_frame(kind, frame)
            return
        await self._envelope(frame)

    async def _handshake_frame(self, kind: str, frame: dict[str, Any]) -> None:
        if kind == protocol.REFUSED:
            self.refused = LinkRefused(str(frame.get("error", "refused")),
                                       str(frame.get("detail", "")))
            await self.shutdown(CLOSE_REFUSED)
        elif self.role == "client" and kind == protocol.HELLO and not self.peer_hello_id:
            await self._on_hello(frame)
        elif self.role == "client" and kind == protocol.WELCOME and self.peer_hello_id:
            await self._on_welcome(frame)
        elif self.role == "server" and kind == protocol.AUTH and self.my_nonce:
            await self._on_auth(frame)
        else:
            await self.refuse("unproven", f"{kind} before the handshake finished: send AUTH "
                                          "with a station credential first")

    async def _error(self, re: str | None, code: str, detail: str) -> None:
        logger.info("mesh message refused", extra={"peer": self.peer_station_id, "error": code,
                                                   "detail": detail})
        if not self.established.is_set():
            await self.refuse(code, detail)
            return
        # Each refusal costs us a signed ERROR: a station that keeps sending bad frames is
        # cut off instead of being answered forever.
        now = time.monotonic()
        self._refusals = [t for t in self._refusals if now - t < 60] + [now]
        if len(self._refusals) > MAX_REFUSALS_PER_MINUTE:
            await self.refuse("abuse", f"more than {MAX_REFUSALS_PER_MINUTE} refused messages "
                                       "in a minute; closing the link")
            return
        with contextlib.suppress(Exception):
            await self.send(protocol.ERROR, {"error": code, "detail": detail}, re=re)

    async def _envelope(self, frame: dict[str, Any]) -> None:
        if self.peer is None:
            return
        public_key = self.peer.public_key_b64

        def verify(signature: bytes, message: bytes) -> None:
            trust.verify_station_signature(public_key, signature, message)

        try:
            envelope = protocol.check_envelope(  # inline, as the signing in _signed()
                frame, expected_sender=self.peer.station_id, verify=verify,
                window_ms=int(self.window * 1000))
        except ProtocolError as exc:
            await self._error(frame.get("id") if isinstance(frame.get("id"), str) else None,
                              exc.code, exc.detail)
            return
        if time.monotonic() - self._blacklist_checked > 5:
            self._blacklist_checked = time.monotonic()
            if await sync_to_async(trust.is_blacklisted)(self.peer.fingerprint):
                await self.refuse("blacklisted", "the owner certificate of this station has "
                                                 "been blacklisted")
                return
        # An answer (REPLY, ERROR with `re`) needs no shared seen-set: it counts only for a
        # request of ours still waiting in this process, whose id is new and random, and only
        # once (the wait ends with it). Anything else is checked across the station's processes
        # (the same message replayed over another link, held by another process).
        answer = envelope.type in (protocol.REPLY, protocol.ERROR) and envelope.re
        if not answer and not await first_time_seen(envelope.id, self.window):
            await self._error(envelope.id, "replay", f"message {envelope.id} was already seen")
            return
        future = self._pending.get(envelope.re) if answer else None
        if answer and (future is None or future.done()):
            return  # late, or a copy: nothing waits for it
        self.last_heard = time.monotonic()
        if self.on_heard is not None:
            self.on_heard(self)
        if future is not None:
            if envelope.type == protocol.REPLY:
                future.set_result(envelope.payload)
            else:
                future.set_exception(MeshHandlerError(
                    str(envelope.payload.get("error", "error")),
                    str(envelope.payload.get("detail", ""))))
            return
        if envelope.type == protocol.ERROR:
            logger.info("mesh peer reported an error", extra={
                "peer": self.peer_station_id, "error": envelope.payload.get("error"),
                "detail": envelope.payload.get("detail")})
            return
        self._spawn(self._dispatch(envelope))

    async def _dispatch(self, envelope: protocol.Envelope) -> None:
        handler = registry.get_handler(envelope.type)
        if handler is None:
            await self._error(envelope.id, "unknown_type",
                              f"no handler for message type {envelope.type}")
            return
        try:
            result = await handler(self, envelope.payload)
        except MeshHandlerError as exc:
            await self._error(envelope.id, exc.code, exc.detail)
            return
        except Exception as exc:
            logger.exception("mesh handler failed", extra={"type": envelope.type})
            await self._error(envelope.id, "handler_failed", f"{type(exc).__name__}: {exc}")
            return
        if envelope.request:
            with contextlib.suppress(LinkRefused):
                await self.send(protocol.REPLY, result or {}, re=envelope.id,
                                pace=registry.is_sync(envelope.type))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
