"""RF neighbours: every station heard on the air and authenticated by its credential is a link
of the mesh, as a `/ws/coordinate` link is (meshd holds them, `mesh.linkbus` reaches them).

Credentials over the air. An ID beacon names its owner's certificate fingerprint and carries
the station key, not the credential (kilobytes: the owner's certificate chain and the owner's
delegation of the station key). A station that hears a station it holds no verified credential
for asks it, addressed to its AX.25 address:

    RF_CREDENTIAL_REQUEST {"fingerprint": F, "station": S}      (kind `credential`)

and the station answers, to `MESH` so every station that lacks it learns it from one
transmission, at most once every `ANSWER_EVERY` seconds to the same asking station (and not
again within `ANSWER_SPACING` of the last answer, which answers every asker):

    RF_CREDENTIAL {"credential": {...}}                          (kind `credential`)

The credential is verified exactly as a LAN link's handshake verifies one
(`trust.verify_credential`: chain to a root this station trusts, blacklist, delegation), the
envelope's signature by the key it delegates, and the sender's AX.25 callsign must be the
credential's. Then it is kept by station id and fingerprint in the data dir
(`rf-credentials.json`), so a restart does not ask again; on later use it is verified again
(cheap, local), so a root or blacklist change applies. Its owner certificate is imported as
trust sync would (`trust.certificate_import`), so trust sync does not send it again. Asking
again for the same station waits `ASK_FIRST` seconds, then twice as long each time nothing
usable came (lost, or refused: an untrusted root, a blacklisted owner), up to `ASK_MAX`.

Messages. Every mesh message over RF is the same signed envelope as on a LAN link, encoded by
`mesh.rf_codec` (which refuses anything marked encrypted). `RfLinkSession` is a `LinkSession`
whose transport is the RF link layer: on receipt the frame's AX.25 source callsign must be the
credential's, and then the LAN link's own checks run (signature by the credential's key,
sender, timestamp window, replay, blacklist) and the registry's handlers answer, with the
session as their `LinkContext` (`kind == "rf"`). Over RF the replay window is `RF_WINDOW`, a
request waits at least `RF_TIMEOUT` for its reply (sent again after the link's measured
retransmission timeout, doubling), and bodies are pulled `RF_CHUNK` bytes at a
time (`timeout_floor`, `max_chunk`: every process sending over the link honours them).

Traffic kinds for the air-time ledger: ROUTE_UPDATE and SEQNO_REQUEST are `routing`, FORWARD
and FORWARD_CHUNK `request` (priority: an operator or a client is waiting), everything else
(trust and catalog sync) `sync`; a reply goes as the request it answers.

Neighbours. An authenticated station becomes a routing neighbour (`Router.link_up` with
`rf=True`, the fixed cost `link_cost.rf_base(MESHSITE_RF_BITRATE)` and periodic updates every
`MESHSITE_RF_ROUTE_INTERVAL`), unless a LAN/IP link to it is up (then that one is its link).
It is not pinged: its beacons are its heartbeat, and it stops being a neighbour when membership
finds it unreachable. Routing updates meant for every neighbour go on the air once, to `MESH`
(`broadcast`, the router's `rf_broadcast`: Babel's multicast updates on an interface), and each
station that holds our credential takes them as coming over its RF link to us (not when a
LAN/IP link to us carries its routing). Trust sync (certificates, blacklist) runs after the
catalog's when the link comes up and then at most every `TRUST_EVERY` sync intervals; catalog
sync when the link
comes up, when its beacon's catalog digest differs from ours and when ours changes, at most
every `MESHSITE_RF_SYNC_INTERVAL` per neighbour, started by the station with the lower id (the
other one starts too if the difference outlasts two intervals), and not while the neighbour
is syncing with us (a sync request from it within `PEER_SYNCING` seconds): one session
brings both sides level.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from mesh import ax25, link_cost, linkbus, protocol, registry, rf_codec, trust
from mesh.dbcall import db as _db
from mesh.links import LinkRefused, LinkSession

if TYPE_CHECKING:
    from mesh.radio import Radio

logger = logging.getLogger(__name__)

RF_CREDENTIAL = "RF_CREDENTIAL"
RF_CREDENTIAL_REQUEST = "RF_CREDENTIAL_REQUEST"
CREDENTIAL_FILE = "rf-credentials.json"
KIND_CREDENTIAL = "credential"
KIND_ROUTING = "routing"
KIND_SYNC = "sync"
KIND_REQUEST = "request"
ASK_FIRST = 30.0  # seconds before asking again for a station's credential (then doubling)
ASK_MAX = 1800.0  # ... up to this: a credential refused (untrusted root) is asked for rarely
ANSWER_EVERY = 60.0  # seconds between two answers to the same asking station
ANSWER_SPACING = 30.0  # seconds: a broadcast of our credential this recent answers anyone
MAX_ASKERS = 256
RF_TIMEOUT = 600.0  # seconds a request over RF waits for its reply, at least
# A request goes again when no reply came within the link's retransmission timeout after it
# left (RFC 6298's estimator over the round trips measured on this link, Karn's rule),
# doubling at each try: a message lost whole (a lone frame lost, a collision, the receiver
# keyed) leaves the receiver nothing to ask for (NACK), so only the requester can notice.
RTO_INITIAL = 30.0
RTO_MIN = 15.0
RTO_MAX = 120.0
RECEIVING_FOR = RTO_MAX  # seconds a reply partly heard from the peer may hold back a retry
PEER_SYNCING = RTO_MAX  # seconds a sync request of the peer shows its sync is under way
RF_WINDOW = 900.0  # replay window over RF: reassembly and NACKs take minutes
RF_CHUNK = 4096  # body bytes per FORWARD_CHUNK over RF (about 17 frames, 40 s at 1200 bit/s)
MAX_KINDS = 512
TRUST_EVERY = 6  # trust syncs over RF at most every this many MESHSITE_RF_SYNC_INTERVAL
MAX_ANSWERS = 64  # replies kept to send again when their request comes again

ROUTING_TYPES = ("ROUTE_UPDATE", "SEQNO_REQUEST")
_KIND_OF_TYPE = {"ROUTE_UPDATE": KIND_ROUTING, "SEQNO_REQUEST": KIND_ROUTING,
                 "FORWARD": KIND_REQUEST, "FORWARD_CHUNK": KIND_REQUEST}


def kind_of(message_type: str) -> str:
    return _KIND_OF_TYPE.get(message_type, KIND_SYNC)



class CredentialStore:
    """Verified credentials of stations heard on the air, by station id (with the owner
    certificate fingerprint they were verified for), in one JSON file of the data dir."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        if isinstance(data, dict):
            self.items = {key: value for key, value in data.items()
                          if isinstance(value, dict) and isinstance(value.get("credential"),
                                                                    dict)}

    def get(self, station_id: str, fingerprint: str | None = None) -> dict[str, Any] | None:
        item = self.items.get(station_id)
        if item is None or (fingerprint is not None and item.get("fingerprint") != fingerprint):
            return None
        return item["credential"]

    def put(self, station_id: str, fingerprint: str, credential: dict[str, Any]) -> None:
        self.items[station_id] = {"fingerprint": fingerprint, "credential": credential,
                                  "at": int(time.time())}
        self._save()

    def forget(self, station_id: str) -> None:
        if self.items.pop(station_id, None) is not None:
            self._save()

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.items, sort_keys=True))
        os.replace(tmp, self.path)


class RfLinkSession(LinkSession):
    """An authenticated RF neighbour as a mesh link: the LAN link's checks and dispatch, with
    the RF link layer (`RfLink.send`) as its transport."""

    kind = "rf"

    def __init__(self, *, neighbours: RfNeighbours, local: trust.LocalStation,
                 peer: trust.ProvenStation, address: ax25.Address) -> None:
        super().__init__(role="rf", send_text=self._send_rf, close=self._close_rf)
        self.neighbours = neighbours
        self.local = local
        self.peer = peer
        self.address = address
        self.window = RF_WINDOW
        self.timeout_floor = RF_TIMEOUT
        self.max_chunk = RF_CHUNK
        self.kinds: dict[str, str] = {}  # id of a request heard -> its kind, for the reply
        self.answers: dict[str, str] = {}  # id of a request answered -> the reply sent
        self.answer_msgs: dict[str, int] = {}  # ... and the RF message number it went as
        self.srtt: float | None = None  # smoothed round trip of a request and its reply
        self.rttvar = 0.0
        self.heard_ids: dict[str, None] = {}  # ids of the envelopes heard, oldest first
        self.kick = asyncio.Event()  # the peer asked for our credential: resend what waits
        self.established.set()
        self.last_heard = time.monotonic()

    def rto(self) -> float:
        """Seconds to wait for a reply before sending a request again (first try). Unlike
        TCP (RFC 6298 5.5), a timeout backed off by a retry does not carry over to the next
        request: on the air most requests that go again were lost (10 % of frames, and
        collisions), not delayed by congestion (the budget keeps the channel below it), and
        the answering side does not answer twice while its reply still waits to go."""
        if self.srtt is None:
            return RTO_INITIAL
        return min(RTO_MAX, max(RTO_MIN, self.srtt + 4 * self.rttvar))

    def rtt_sample(self, seconds: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = seconds, seconds / 2
            return
        self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - seconds)
        self.srtt = 0.875 * self.srtt + 0.125 * seconds

    async def request(self, type_: str, payload: dict[str, Any],
                      timeout: float = 10.0) -> dict[str, Any]:
        """Over RF a message lost whole leaves no trace (nothing is acknowledged): the request
        goes again, the same envelope, when no reply came within the retransmission timeout
        (`rto`, doubling at each try) after it left; the other side answers a request it has
        seen with the reply it sent. While a message from the peer is partly heard (likely
        the reply, its missing fragments asked for), the request waits for it instead."""
        if not self.established.is_set() or self.local is None:
            raise LinkRefused("not_established", "the link is not authenticated yet")
        envelope = protocol.build_envelope(
            type_=type_, sender=self.local.station_id, payload=payload, sign=trust.sign,
            ttl=settings.MESH_HOP_LIMIT, request=True)
        text = protocol.canonical_json(envelope).decode()
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[envelope["id"]] = future
        deadline = time.monotonic() + max(timeout, self.timeout_floor)
        gap = self.rto()
        tries = 0
        rf = self.neighbours.radio.rf
        try:
            while True:
                msg = self._transmit(text)
                tries += 1
                while rf.queued(msg) and not future.done() and time.monotonic() < deadline:
                    await asyncio.wait({future}, timeout=0.25)
                left_at = time.monotonic()
                kicked_now = await self._await_reply(future, left_at + gap, deadline)
                if future.done():
                    if tries == 1:  # Karn: a reply to a request sent again times nothing
                        self.rtt_sample(time.monotonic() - left_at)
                    return future.result()
                if kicked_now:
                    continue  # it lacked our credential, sent just now: again at once
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{type_} over RF: no reply in "
                                       f"{max(timeout, self.timeout_floor):g} s")
                gap = min(gap * 2, RTO_MAX)
                logger.info("RF request sent again", extra={"peer": self.peer_station_id,
                                                            "type": type_, "try": tries + 1})
        finally:
            self._pending.pop(envelope["id"], None)

    async def _await_reply(self, future: asyncio.Future, until: float, deadline: float) -> bool:
        """Wait for the reply until `until` (later while a message from the peer is partly
        heard, at most `RECEIVING_FOR`), or until the peer asks for our credential (True)."""
        rf = self.neighbours.radio.rf
        held = until + RECEIVING_FOR
        self.kick.clear()
        kicked = asyncio.ensure_future(self.kick.wait())
        try:
            while not future.done():
                now = time.monotonic()
                end = min(until, deadline)
                if now >= end:
                    if now >= deadline or now >= held or not rf.reassembler.receiving(
                            str(self.address), rf.clock()):
                        break
                    end = min(now + 2.0, deadline)
                await asyncio.wait({future, kicked}, timeout=max(0.0, end - now),
                                   return_when=asyncio.FIRST_COMPLETED)
                if self.kick.is_set() and not future.done():
                    return True
        finally:
            kicked.cancel()
        return False

    async def _pace(self, nbytes: int) -> None:
        """Nothing here: on the air the RF link layer's air-time budget is the pacing."""

    async def _send_rf(self, text: str) -> None:
        self._transmit(text)

    def _transmit(self, text: str) -> int:
        envelope = json.loads(text)
        message_type = str(envelope.get("type"))
        if message_type in (protocol.REPLY, protocol.ERROR):
            re = str(envelope.get("re"))
            kind = self.kinds.get(re, KIND_SYNC)
        else:
            re, kind = "", kind_of(message_type)
        if registry.lan_only_type(message_type):
            raise rf_codec.RfCodecError(f"{message_type} is LAN/IP-only traffic: it is never "
                                        "sent on the air")
        message = rf_codec.encode_message(envelope)  # EncryptedRefused: never on the air
        msg = self.neighbours.radio.rf.send(message, to=self.address, kind=kind,
                                            priority=kind == KIND_REQUEST)
        if re:
            self.answers[re] = text
            self.answer_msgs[re] = msg
            while len(self.answers) > MAX_ANSWERS:
                oldest = next(iter(self.answers))
                del self.answers[oldest]
                self.answer_msgs.pop(oldest, None)
        return msg

    async def _close_rf(self, _code: int) -> None:
        await self.neighbours.session_closed(self)

    async def hear(self, envelope: dict[str, Any]) -> None:
        message_id = envelope.get("id")
        if isinstance(message_id, str):
            if message_id in self.heard_ids:
                # Heard again: a request whose reply was lost gets the same reply again
                # (unless that reply still waits to go: it answers both); anything else was
                # handled already.
                answer = self.answers.get(message_id)
                msg = self.answer_msgs.get(message_id)
                if answer is not None and not (msg is not None and
                                               self.neighbours.radio.rf.queued(msg)):
                    self._transmit(answer)
                return
            self.heard_ids[message_id] = None
            while len(self.heard_ids) > MAX_KINDS:
                del self.heard_ids[next(iter(self.heard_ids))]
        if envelope.get("req") and isinstance(message_id, str):
            if registry.is_sync(str(envelope.get("type"))):
                self.neighbours.peer_syncing[self.peer_station_id] = time.monotonic()
            self.kinds[message_id] = kind_of(str(envelope.get("type")))
            while len(self.kinds) > MAX_KINDS:
                del self.kinds[next(iter(self.kinds))]
        await self.receive(protocol.canonical_json(envelope).decode())


class RfNeighbours:
    """meshd's RF neighbours: credential exchange, one `RfLinkSession` per authenticated
    station, its place in linkbus and in the routing table, and sync over it."""

    def __init__(self, radio: Radio) -> None:
        self.radio = radio
        self.daemon = radio.daemon
        self.store = CredentialStore(settings.DATA_DIR / CREDENTIAL_FILE)
        self.sessions: dict[str, RfLinkSession] = {}
        self.asked: dict[str, tuple[float, float]] = {}  # station -> (asked at, wait)
        self.answered: dict[str, float] = {}  # asking station's address -> answered at
        self.answered_at: float | None = None  # our last broadcast of the credential
        self.peer_syncing: dict[str, float] = {}  # neighbour -> its last sync request heard
        self.synced: dict[str, float] = {}
        self.trusted_at: dict[str, float] = {}  # neighbour -> when trust last synced with it
        self.syncing: set[str] = set()
        self.again: set[str] = set()  # our catalog changed while syncing with these
        self.differs_since: dict[str, float] = {}
        self.cost = link_cost.rf_base(settings.RF_BITRATE)
        self.refused = 0
        self.tasks: set[asyncio.Task] = set()

    # -- state -------------------------------------------------------------------------------

    def _local(self) -> trust.LocalStation | None:
        local = self.daemon.local if self.daemon is not None else None
        return local if local is not None and local.credential is not None else None

    def status(self) -> dict[str, Any]:
        return {"neighbours": sorted(s.peer_callsign for s in self.sessions.values()
                                     if not s.closed),
                "credentialsKnown": len(self.store.items), "refusedMessages": self.refused}

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def broadcast(self, payload: dict[str, Any]) -> None:
        """A routing message for every RF neighbour, in one transmission to `MESH` (the
        router's `rf_broadcast`): the same signed envelope a link would send, which each
        station that holds our credential takes as coming over its RF link to us."""
        local = self._local()
        if local is None:
            raise rf_codec.RfCodecError("this station is not claimed: it does not transmit")
        type_ = str(payload.get("type"))
        envelope = protocol.build_envelope(type_=type_, sender=local.station_id,
                                           payload=payload, sign=trust.sign,
                                           ttl=settings.MESH_HOP_LIMIT)
        self.radio.rf.send(rf_codec.encode_message(envelope), to=None, kind=kind_of(type_))

    # -- what we hear ------------------------------------------------------------------------

    async def on_beacon(self, beacon: rf_codec.Beacon, source: ax25.Address) -> None:
        """A verified beacon (signature, callsign = sender) of another station."""
        session = self.sessions.get(beacon.station_id)
        if session is not None and not session.closed:
            if session.peer_fingerprint == beacon.fingerprint:
                session.last_heard = time.monotonic()
                self.maybe_sync(session, beacon.digest)
                return
            await session.shutdown()  # a new owner: authenticate again
        session = await self._from_store(beacon.station_id, source, beacon.fingerprint)
        if session is not None:
            self.maybe_sync(session, beacon.digest)
            return
        await self.ask(beacon.station_id, beacon.fingerprint, source)

    async def on_message(self, source: ax25.Address, envelope: dict[str, Any]) -> None:
        """A whole message addressed to us or to everyone, decoded by `rf_codec`."""
        message_type, sender = envelope.get("type"), envelope.get("from")
        if not isinstance(sender, str) or not isinstance(message_type, str):
            self._refuse(source, "malformed", "a message names its type and sender")
            return
        if message_type == RF_CREDENTIAL_REQUEST:
            await self.answer(source, envelope)
            return
        if message_type == RF_CREDENTIAL:
            await self.credential_heard(source, envelope)
            return
        session = self.sessions.get(sender)
        if session is None or session.closed:
            session = await self._from_store(sender, source)
        if session is None:
            self._refuse(source, "unproven", f"{message_type} from {sender[:12]}, whose "
                                             "credential we do not hold yet: asking for it")
            await self.ask(sender, "", source)
            return
        if registry.lan_only_type(message_type):
            self._refuse(source, "lan_only", f"{message_type} never travels on the air")
            return
        if source.callsign != session.peer_callsign.upper():
            self._refuse(source, "wrong_callsign", f"sent as {source.callsign} by the station "
                                                   f"of {session.peer_callsign}")
            return
        if message_type in ROUTING_TYPES and linkbus.local_link(sender) is not session:
            # A routing broadcast on the air from a station we now reach over a LAN/IP link:
            # that link carries its routing (with the LAN-only view the air leaves out).
            return
        await session.hear(envelope)

    def _refuse(self, source: ax25.Address, code: str, detail: str) -> None:
        self.refused += 1
        logger.info("RF message refused", extra={"source": str(source), "error": code,
                                                 "detail": detail})

    # -- credentials -------------------------------------------------------------------------

    async def ask(self, station_id: str, fingerprint: str, source: ax25.Address) -> None:
        local = self._local()
        now = time.monotonic()
        if local is None:
            return
        # Asked before and nothing usable came (lost, or refused: an untrusted root, a
        # blacklisted owner): wait, twice as long each time, up to ASK_MAX.
        at, wait = self.asked.get(station_id, (None, 0.0))
        if at is not None and now - at < wait:
            return
        self.asked[station_id] = (now, ASK_FIRST if at is None else min(2 * wait, ASK_MAX))
        envelope = protocol.build_envelope(
            type_=RF_CREDENTIAL_REQUEST, sender=local.station_id, sign=trust.sign, ttl=1,
            payload={"fingerprint": fingerprint, "station": station_id}, request=True)
        self._transmit(envelope, to=ax25.Address(source.callsign, source.ssid))
        logger.info("RF credential asked for", extra={"station": station_id,
                                                      "source": str(source)})

    async def answer(self, source: ax25.Address, envelope: dict[str, Any]) -> None:
        local = self._local()
        payload = envelope.get("payload")
        if local is None or not isinstance(payload, dict) or payload.get("station") not in (
                None, local.station_id):
            return
        now = time.monotonic()
        asker = str(source)
        last = self.answered.get(asker)
        recent = self.answered_at is not None and now - self.answered_at < ANSWER_SPACING
        if (last is not None and now - last < ANSWER_EVERY) or recent:
            # Each asking station gets an answer at most once every ANSWER_EVERY, and a
            # broadcast a moment ago (it may still be on its way) answers this asker too.
            self._asker_lacked_us(envelope.get("from"))
            return
        self.answered[asker] = self.answered_at = now
        for old in [key for key, at in self.answered.items() if now - at >= ANSWER_EVERY]:
            del self.answered[old]
        while len(self.answered) > MAX_ASKERS:
            del self.answered[next(iter(self.answered))]
        answer = protocol.build_envelope(type_=RF_CREDENTIAL, sender=local.station_id,
                                         payload={"credential": local.credential},
                                         sign=trust.sign, ttl=1)
        self._transmit(answer, to=None)
        logger.info("RF credential sent", extra={"asked_by": str(source)})
        self._asker_lacked_us(envelope.get("from"))

    def _asker_lacked_us(self, station_id: Any) -> None:
        """The station that asked dropped what we sent it before it knew us: our requests
        waiting for it go again (after the credential, in the same queue), and it gets the
        whole routing table at the next periodic round."""
        session = self.session_for(station_id) if isinstance(station_id, str) else None
        if session is None:
            return
        session.kick.set()
        router = getattr(self.daemon, "router", None)
        if router is not None and station_id in router.rf_sent:
            router.rf_sent[station_id] = 0.0

    def _transmit(self, envelope: dict[str, Any], *, to: ax25.Address | None) -> None:
        try:
            self.radio.rf.send(rf_codec.encode_message(envelope), to=to, kind=KIND_CREDENTIAL)
        except rf_codec.RfCodecError as exc:
            logger.warning("RF credential message not sent", extra={"error": str(exc)})

    async def credential_heard(self, source: ax25.Address, envelope: dict[str, Any]) -> None:
        payload = envelope.get("payload")
        credential = payload.get("credential") if isinstance(payload, dict) else None
        local = self._local()
        if local is None:
            return
        proven = await self._verify(credential, source)
        if proven is None or proven.station_id == local.station_id:
            return

        def verify(signature: bytes, message: bytes) -> None:
            trust.verify_station_signature(proven.public_key_b64, signature, message)

        try:
            protocol.check_envelope(envelope, expected_sender=proven.station_id, verify=verify,
                                    window_ms=int(RF_WINDOW * 1000))
        except protocol.ProtocolError as exc:
            self._refuse(source, exc.code, f"credential message: {exc.detail}")
            return
        await _db(self.store.put)(proven.station_id, proven.fingerprint, credential)
        # Its owner's certificate (with its chain) just verified against our roots: keep it
        # as trust sync would, so the trust sync over this link does not carry it again.
        await _db(trust.certificate_import)({"fingerprint": proven.fingerprint,
                                             "certificate": credential.get("certificate"),
                                             "chain": credential.get("chain") or []})
        await _db(registry.credential_verified)(credential)  # the catalog: a known origin
        self.asked.pop(proven.station_id, None)
        logger.info("RF credential verified", extra={"station": proven.station_id,
                                                     "callsign": proven.callsign})
        await self.open(proven, source)

    async def _verify(self, credential: Any, source: ax25.Address) -> trust.ProvenStation | None:
        try:
            proven = await _db(trust.verify_credential)(credential)
        except trust.TrustRefused as exc:
            self._refuse(source, exc.code, f"credential refused: {exc.detail}")
            return None
        if proven.callsign.upper() != source.callsign:
            self._refuse(source, "wrong_callsign", f"a credential of {proven.callsign} sent "
                                                   f"as {source.callsign}")
            return None
        return proven

    async def _from_store(self, station_id: str, source: ax25.Address,
                          fingerprint: str | None = None) -> RfLinkSession | None:
        credential = self.store.get(station_id, fingerprint)
        if credential is None:
            return None
        proven = await self._verify(credential, source)
        if proven is None or proven.station_id != station_id:
            await _db(self.store.forget)(station_id)
            return None
        return await self.open(proven, source)

    # -- links -------------------------------------------------------------------------------

    async def open(self, proven: trust.ProvenStation,
                   source: ax25.Address) -> RfLinkSession | None:
        local = self._local()
        if local is None:
            return None  # an unclaimed station does not transmit: no link to speak over
        existing = self.sessions.get(proven.station_id)
        if existing is not None and not existing.closed:
            return existing
        session = RfLinkSession(neighbours=self, local=local, peer=proven,
                                address=ax25.Address(source.callsign, source.ssid))
        self.sessions[proven.station_id] = session
        logger.info("RF link up", extra={"peer": proven.station_id, "callsign": proven.callsign,
                                         "address": str(session.address)})
        from mesh import services

        await _db(services.peer_authenticated_on_air)(
            station_id=proven.station_id, callsign=proven.callsign,
            fingerprint=proven.fingerprint, address=str(session.address))
        await self.attach(session)
        self.maybe_sync(session, None)
        return session

    async def attach(self, session: RfLinkSession) -> None:
        """Make the session the station's link to its peer, unless a LAN/IP link is."""
        if session.closed or session.peer_station_id in await linkbus.linked_peers():
            return
        await linkbus.attach(session)
        router = getattr(self.daemon, "router", None)
        if router is not None:
            await router.link_up(session.peer_station_id, session.peer_callsign, rf=True,
                                 cost=self.cost, interval=settings.RF_ROUTE_INTERVAL)

    async def yield_to_lan(self, station_id: str) -> None:
        """A LAN/IP link to `station_id` came up in another process (daphne): it is the
        station's link now, so this process stops sending over the air to it."""
        session = self.session_for(station_id)
        if session is not None and linkbus.local_link(station_id) is session:
            await linkbus.detach(session)

    def session_for(self, station_id: str) -> RfLinkSession | None:
        session = self.sessions.get(station_id)
        return session if session is not None and not session.closed else None

    async def session_closed(self, session: RfLinkSession) -> None:
        station_id = session.peer_station_id
        if self.sessions.get(station_id) is session:
            del self.sessions[station_id]
        await linkbus.detach(session)
        if self.daemon is not None:
            await self.daemon.link_gone(station_id, "RF link closed")
        logger.info("RF link down", extra={"peer": station_id})

    async def close(self, station_id: str, reason: str) -> None:
        session = self.sessions.get(station_id)
        if session is not None:
            logger.info("RF link closing", extra={"peer": station_id, "reason": reason})
            await session.shutdown()

    async def close_all(self, reason: str) -> None:
        for station_id in list(self.sessions):
            await self.close(station_id, reason)

    # -- sync --------------------------------------------------------------------------------

    def maybe_sync(self, session: RfLinkSession, digest: bytes | None) -> None:
        """Trust and catalog sync with the neighbour (link up: `digest` None), when its
        catalog digest differs from ours; at most every MESHSITE_RF_SYNC_INTERVAL."""
        peer = session.peer_station_id
        now = time.monotonic()
        if digest is not None and digest == self.radio.digest:
            self.differs_since.pop(peer, None)
            return
        since = self.differs_since.setdefault(peer, now)
        if peer in self.syncing or now - self.synced.get(peer, -1e9) < settings.RF_SYNC_INTERVAL:
            return
        if now - self.peer_syncing.get(peer, -1e9) < PEER_SYNCING:
            # The neighbour is syncing with us (one session brings both sides level): a
            # second one at the same time would only halve the air each gets.
            return
        # One side is enough: the lower station id starts, the other if it lasts.
        if session.local is not None and session.local.station_id > peer and \
                now - since < 2 * settings.RF_SYNC_INTERVAL:
            return
        self.syncing.add(peer)
        self.synced[peer] = now
        self._spawn(self._sync(session))

    def catalog_changed(self) -> None:
        """Our catalog digest changed: sync with every neighbour (within the same limits);
        with one a sync is under way with, once more when it ends (it may have passed the
        catalog already)."""
        for session in list(self.sessions.values()):
            if not session.closed:
                if session.peer_station_id in self.syncing:
                    self.again.add(session.peer_station_id)
                self.maybe_sync(session, None)

    async def _sync(self, session: RfLinkSession) -> None:
        """The apps' syncs (the catalog) every time (again at once while our catalog changed
        during it), then trust (certificates, blacklist) when the link comes up and then at
        most every `TRUST_EVERY` syncs' interval. The catalog goes first on the air (on a LAN
        link trust does): the credentials heard already brought the neighbours' owner
        certificates, and each trust exchange costs two round trips of minutes before an
        entry could cross."""
        from mesh import gossip

        peer = session.peer_station_id
        started = time.monotonic()
        try:
            counts: dict[str, int] = {}
            await gossip.sync_apps(session)
            while peer in self.again and not session.closed:
                # Our catalog changed while it went (a publish): again before trust, so a
                # new entry does not wait behind two trust round trips.
                self.again.discard(peer)
                await gossip.sync_apps(session)
            last_trust = self.trusted_at.get(peer)
            if last_trust is None or started - last_trust >= TRUST_EVERY * \
                    settings.RF_SYNC_INTERVAL:
                counts = await gossip.sync_link(session, peers=False)
                self.trusted_at[peer] = started
            logger.info("RF sync done", extra={"peer": peer, **counts,
                                               "seconds": round(time.monotonic() - started)})
            self.differs_since.pop(peer, None)
        except Exception as exc:
            logger.info("RF sync failed", extra={"peer": peer,
                                                 "error": f"{type(exc).__name__}: {exc}"})
        finally:
            self.syncing.discard(peer)
            if peer in self.again and not session.closed:
                self.again.discard(peer)
                self.synced.pop(peer, None)
                self.maybe_sync(session, None)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.close_all("meshd stopping")
