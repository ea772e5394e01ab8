"""The RF link layer: mesh messages over AX.25 UI frames within Part 97 and an air-time budget
(asyncio, no Django).

`RfLink` sits between the station and its TNC (`send_frame`, `on_frame`):

- Only a station with an identity transmits: `identity()` returns the AX.25 source (the owner's
  callsign with `MESHSITE_RF_SSID`) or None while the station is unclaimed, and then nothing is
  ever sent (what was queued is dropped and counted). Every frame's source is that address.
- Identification (Part 97.119): the ID beacon goes out when the station comes on the air and
  then at least every `id_interval` seconds (each one planned at 60-70 % of the interval and
  at least 5 s before it ends, so channel delays do not push it past), and a short ID frame
  ends every transmission sequence
  (nothing left to send) that carried anything else since the last ID, unless an ID went out
  within the last `id_holdoff` seconds (60): the source address of every frame names the
  station anyway, and a busy exchange would otherwise spend a tenth of its air time on IDs.
- Messages (`send`) are fragmented (`mesh.rf_codec`) to the destination station's address, or
  to `MESH` for everyone; receivers ask for missing fragments (NACK) and the sender repeats just
  those. Requests an operator or a client makes (`priority=True`) go first and are not held by
  the budget; beacons, routing and sync wait for the `AirtimeBucket` (`share` of the channel).
- Heard frames: fragments addressed to this station or to `MESH` are reassembled and handed to
  `on_message(source, message)`; beacons to `on_beacon(source, body)`; everything else on the
  channel (APRS, other stations' chat, our own frames echoed by a digipeater) is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mesh import ax25, rf_codec
from mesh.airtime import AirtimeBucket, AirtimeLedger

logger = logging.getLogger(__name__)

BROADCAST = ax25.Address("MESH")
ID_DESTINATION = ax25.Address("ID")

# Kinds of traffic, for the ledger; PRIORITY ones are what operators and clients asked for.
KIND_BEACON = "beacon"
KIND_ID = "id"
KIND_NACK = "nack"
KIND_REPEAT = "repeat"
ID_SAFETY = 5.0  # seconds: an ID is planned at least this long before the interval ends
# Each ID is planned at 60-70 % of the interval: on a busy channel (routing, sync and requests
# of several stations) carrier sense and the frames already in the TNC delay it, by tens of
# seconds while the stations' first minutes crowd the channel (32 s seen with three stations
# at 1200 bit/s and 10 % loss). At the default 600 s that is an ID beacon every 6-7 minutes.
ID_PLAN = (0.60, 0.70)
# Channel access (p-persistence, done by the TNC): when the channel turns idle, every station
# with frames waiting keys up with probability P/256 in each slot time. Stations that all
# waited for the same transmission to end decide in the same slots, so two that key up
# together collide and lose both bursts (seconds of air time, and the requests behind them
# time out). A slot left empty costs only the slot time (100 ms): so the more stations heard,
# the lower P, about 1/(4 n) for n other stations, between 1/32 and Direwolf's default 1/4.
PERSISTENCE_MAX = 63
PERSISTENCE_MIN = 7
KEYING_GAP = 0.1  # seconds: a slot time; frames further apart were separate keyings
# The TNC waits for every carrier it senses, but the station decodes only part of them (lost
# frames, collisions): what it heard counts a quarter more, so its estimate of when its frames
# leave the TNC errs late, and frames cannot pile up there unseen while the channel stays busy.
HEARD_MARGIN = 1.25
# ... but never past this long after the last frame we handed over: the TNC sends it at the
# latest in the first idle slots after that, however busy the channel (up to ~30 s of waiting
# was seen with three stations crowding it). Without the bound, on a channel others keep
# busier than about 1 / HEARD_MARGIN the estimate outruns the clock and the station is
# never heard again.
TNC_WAIT_MAX = 30.0
# A station that has just come on the air has not yet heard who shares the channel: for its
# first minutes it assumes two others (persistence and budget), as the first minutes of
# several stations (beacons, credentials asked and sent) crowd the channel most.
COLD_START = 180.0
COLD_START_OTHERS = 2
HEARD_WINDOW = 600.0  # seconds: a station heard this recently competes for the channel


# Background traffic of all the stations on one channel together should leave it idle part of
# the time: beyond about 60 % of offered load a CSMA channel spends more and more of its time
# on collisions and on the retries they cause, and frames pile up in every TNC (bursts of
# many seconds, IDs late). Each station's budget is therefore at most CHANNEL_LOAD / (n + 1)
# with n other stations heard, below MESHSITE_RF_AIRTIME_SHARE when many share the channel.
CHANNEL_LOAD = 0.6


def share_for(share: float, others: int) -> float:
    """The air-time share a station's background traffic gets: the configured `share`, at
    most an even part of CHANNEL_LOAD among itself and the `others` heard."""
    return min(share, CHANNEL_LOAD / (max(others, 0) + 1))


def persistence_for(others: int) -> int:
    """The KISS persistence value (P, the chance to key up being (P + 1) / 256) for a
    channel shared with `others` stations heard recently."""
    if others <= 1:
        return PERSISTENCE_MAX
    return max(PERSISTENCE_MIN, min(PERSISTENCE_MAX, round(256 / (4 * others)) - 1))


@dataclass
class _Outgoing:
    destination: ax25.Address
    info: bytes
    kind: str
    identifies: bool = False
    charged: bool = True  # counts against the budget (all but operator and client requests)


Callback = Callable[..., Awaitable[None] | None]


async def _call(callback: Callback | None, *args: Any) -> None:
    if callback is None:
        return
    try:
        result = callback(*args)
        if asyncio.iscoroutine(result):
            await result
    except Exception:
        logger.exception("RF link callback failed")


class RfLink:
    def __init__(self, *, send_frame: Callable[[bytes], Awaitable[None]],
                 identity: Callable[[], ax25.Address | None], bitrate: int, share: float,
                 id_interval: float, beacon_body: Callable[[], bytes],
                 on_message: Callback | None = None, on_beacon: Callback | None = None,
                 txdelay: float = ax25.DEFAULT_TXDELAY, nack_gap: float = 10.0,
                 reassembly_timeout: float = 600.0, clock: Callable[[], float] = time.monotonic,
                 bucket_window: float = 60.0, ready: Callable[[], bool] = lambda: True,
                 id_holdoff: float = 60.0) -> None:
        self.id_holdoff = id_holdoff
        self.send_frame = send_frame
        self.ready = ready  # the TNC is connected
        self.identity = identity
        self.id_interval = id_interval
        self.beacon_body = beacon_body
        self.on_message = on_message
        self.on_beacon = on_beacon
        self.clock = clock
        self.ledger = AirtimeLedger(bitrate=bitrate, txdelay=txdelay)
        self.share = share  # MESHSITE_RF_AIRTIME_SHARE; the bucket's may be less (share_for)
        self.bucket = AirtimeBucket.for_channel(share=share, now=clock(), window=bucket_window)
        self.sent = rf_codec.SentMessages(keep=reassembly_timeout)
        self.priority_of: dict[int, bool] = {}
        self.reassembler = rf_codec.Reassembler(timeout=reassembly_timeout, gap=nack_gap)
        self.urgent: deque[_Outgoing] = deque()
        self.background: deque[_Outgoing] = deque()
        self.wake = asyncio.Event()
        self.last_id: float | None = None
        self.next_beacon: float = clock()
        self.sent_since_id = False
        self.on_air: ax25.Address | None = None  # the identity we last transmitted as
        self.ids: list[float] = []  # clock times of every identification sent (for tests)
        self.refused_unclaimed = 0
        self.send_failures = 0
        self.bad_frames = 0
        self.max_queue = 2000
        # Frames are handed to the TNC only about `lookahead` seconds of air time ahead of the
        # channel: what waits here can still be overtaken by a request or an ID, what waits in
        # the TNC cannot.
        self.lookahead = 2.0
        self.busy_until = clock()
        self.heard_at: float | None = None  # when the last frame of another station ended
        self.handed_until = clock()  # when what we handed over would leave on an idle channel

    # -- sending ---------------------------------------------------------------------------

    def send(self, message: bytes, *, to: ax25.Address | None, kind: str,
             priority: bool = False) -> int:
        """Queue one encoded message (`rf_codec.encode_message`); returns its number."""
        if self.identity() is None:
            self.refused_unclaimed += 1
            raise rf_codec.RfCodecError("this station is not claimed: it does not transmit")
        queue = self.urgent if priority else self.background
        if len(queue) >= self.max_queue:
            raise rf_codec.RfCodecError(f"the RF send queue is full ({self.max_queue} frames)")
        msg, infos = self.sent.add(message, self.clock())
        self.priority_of[msg] = priority
        if len(self.priority_of) > 4 * self.sent.limit:
            for old in list(self.priority_of)[:len(self.priority_of) - self.sent.limit]:
                self.priority_of.pop(old, None)
        destination = to or BROADCAST
        queue.extend(_Outgoing(destination, info, kind, charged=not priority) for info in infos)
        self.wake.set()
        return msg

    def channel_shared_with(self, others: int) -> None:
        """`others` stations were heard lately: background traffic takes at most its part
        of the channel (`share_for`)."""
        share = share_for(self.share, others)
        if share != self.bucket.share:
            self.bucket.set_share(share, self.clock())

    def queued(self, msg: int) -> bool:
        """Whether a fragment of message number `msg` still waits to go on the air."""
        head = bytes([rf_codec.MAGIC, rf_codec.KIND_DATA]) + msg.to_bytes(2, "big")
        return any(item.info[:4] == head for queue in (self.urgent, self.background)
                   for item in queue)

    def _next(self, now: float) -> _Outgoing | None:
        if self.urgent:
            return self.urgent.popleft()
        if self.background and self.bucket.ready(now):
            return self.background.popleft()
        return None

    async def _transmit(self, item: _Outgoing, me: ax25.Address) -> None:
        frame = ax25.Frame.ui(source=me, destination=item.destination, info=item.info).encode()
        try:
            await self.send_frame(frame)
        except Exception as exc:
            self.send_failures += 1
            logger.warning("RF frame not sent", extra={"error": str(exc), "kind": item.kind})
            if not item.identifies:  # IDs are made afresh; anything else waits for the TNC
                (self.background if item.charged else self.urgent).appendleft(item)
            self.on_air = None  # identify again first when the TNC is back
            return
        now = self.clock()
        # Handed over while the previous frame is still on the air: the TNC sends it in the
        # same keying, without another TXDELAY.
        seconds = self.ledger.record(item.kind, len(frame), keyed=self.busy_until > now)
        self.busy_until = max(now, self.busy_until) + seconds
        self.handed_until = max(now, self.handed_until) + seconds
        if item.charged:
            self.bucket.take(seconds, now)
        self.on_air = me
        if item.identifies:
            self.last_id = now
            self.ids.append(now)
            self.sent_since_id = False
        else:
            self.sent_since_id = True

    def _queue_beacon(self, me: ax25.Address) -> None:
        self.urgent.appendleft(_Outgoing(ID_DESTINATION, rf_codec.beacon_info(self.beacon_body()),
                                         KIND_BEACON, identifies=True))
        # Planned early enough that the channel's delays cannot push it past the interval.
        planned = self.id_interval * random.uniform(*ID_PLAN)  # noqa: S311 - jitter
        self.next_beacon = self.clock() + min(planned, self.id_interval - ID_SAFETY)

    async def transmitter(self) -> None:
        while True:
            me = self.identity()
            now = self.clock()
            if me is None:
                dropped = len(self.urgent) + len(self.background)
                if dropped:
                    self.refused_unclaimed += dropped
                    self.urgent.clear()
                    self.background.clear()
                self.on_air = None
                self.last_id = None
                self.next_beacon = now
                await self._sleep(1.0)
                continue
            if not self.ready():
                self.on_air = None
                await self._sleep(0.5)
                continue
            if me != self.on_air:
                self.next_beacon = now  # on the air again, or as a new identity: identify first
            if now >= self.next_beacon:
                self._queue_beacon(me)
            ahead = self.busy_until - now
            identify = bool(self.urgent) and self.urgent[0].identifies
            if ahead > self.lookahead and not identify:
                # An ID does not wait for our estimate (which errs late on purpose): it goes
                # to the TNC at once, behind the little we handed it already.
                await self._sleep(max(0.01, min(ahead - self.lookahead,
                                                self.next_beacon - now)))
                continue
            item = self._next(now)
            if item is not None:
                await self._transmit(item, me)
                continue
            if self.sent_since_id and not self.background and (
                    self.last_id is None or now - self.last_id >= self.id_holdoff):
                # The end of a sequence: identify (every frame's source names us already; an
                # explicit ID within the last `id_holdoff` seconds covers this one too).
                info = str(me).encode("ascii")
                await self._transmit(_Outgoing(ID_DESTINATION, info, KIND_ID, True), me)
                continue
            wait = self.next_beacon - now
            if self.background:
                wait = min(wait, self.bucket.wait_time(now))
            await self._sleep(max(0.01, min(wait, 1.0)))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)
        self.wake.clear()

    # -- receiving -------------------------------------------------------------------------

    def _channel_heard(self, frame_bytes: int) -> None:
        """Another station's frame was on the air: what we handed the TNC and believed gone
        waited meanwhile (carrier sense), so it leaves that much later. Without this the
        station keeps handing frames over while others talk, the TNC sends them all in one
        long keying when the channel frees, and a collision then takes the whole lot. A frame
        that did not follow another one straight away began a keying: its TXDELAY and the
        slot the TNC then waits count too."""
        now = self.clock()
        frame = self.ledger.cost(frame_bytes, keyed=True)
        heard = frame
        if self.heard_at is None or now - self.heard_at > frame + KEYING_GAP:
            heard += self.ledger.txdelay + KEYING_GAP
        self.heard_at = now
        if self.busy_until > now - frame:
            self.busy_until = min(self.busy_until + heard * HEARD_MARGIN,
                                  max(self.handed_until + TNC_WAIT_MAX, now))

    async def on_frame(self, raw: bytes) -> None:
        try:
            frame = ax25.Frame.decode(raw)
        except ax25.Ax25Error:
            return
        self._channel_heard(len(raw))
        me = self.identity()
        if me is not None and (frame.source.callsign, frame.source.ssid) == (me.callsign,
                                                                             me.ssid):
            return  # our own frame, repeated by a digipeater
        try:
            item = rf_codec.parse_info(frame.info)
        except rf_codec.RfCodecError as exc:
            self.bad_frames += 1
            logger.debug("bad mesh frame", extra={"source": str(frame.source), "error": str(exc)})
            return
        if item is None:
            return
        if isinstance(item, rf_codec.BeaconInfo):
            await _call(self.on_beacon, frame.source, item.body)
            return
        to_us = me is not None and (frame.destination.callsign, frame.destination.ssid) == (
            me.callsign, me.ssid)
        if isinstance(item, rf_codec.Nack):
            if to_us:
                self._repeat(frame.source, item)
            return
        if not (to_us or frame.destination.callsign == BROADCAST.callsign):
            return
        source = ax25.Address(frame.source.callsign, frame.source.ssid)
        message = self.reassembler.add(str(source), item, self.clock())
        if message is not None:
            await _call(self.on_message, source, message)

    def _repeat(self, requester: ax25.Address, nack: rf_codec.Nack) -> None:
        infos = self.sent.repeat(nack)
        if not infos or self.identity() is None:
            return
        priority = self.priority_of.get(nack.msg, False)
        queue = self.urgent if priority else self.background
        destination = ax25.Address(requester.callsign, requester.ssid)
        queued = {item.info for item in queue}  # asked twice before the first repeat went
        items = [_Outgoing(destination, info, KIND_REPEAT, charged=not priority)
                 for info in infos if info not in queued]
        if priority:
            queue.extend(items)  # behind an ID waiting at the head of the urgent queue
        else:
            # Ahead of other background traffic: a message the receiver holds most of is
            # finished before new ones start (they would only compete with it for the air).
            queue.extendleft(reversed(items))
        self.wake.set()

    async def nack_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.identity() is None:
                continue
            for sender, msg, missing in self.reassembler.due_nacks(self.clock()):
                try:
                    to = ax25.Address.parse(sender)
                except ax25.Ax25Error:
                    continue
                self.urgent.append(_Outgoing(to, rf_codec.nack_info(msg, missing), KIND_NACK))
                self.wake.set()

    async def run(self) -> None:
        await asyncio.gather(self.transmitter(), self.nack_loop())

    # -- state -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {"airtime": self.ledger.as_dict(), "queued": len(self.urgent) +
                len(self.background), "refusedUnclaimed": self.refused_unclaimed,
                "badFrames": self.bad_frames, "sendFailures": self.send_failures,
                "lastId": self.last_id, "budgetTokens": round(self.bucket.tokens, 3),
                "budgetShare": round(self.bucket.share, 4)}
