"""The RF link layer (mesh/rf_link.py) over the simulated channel through real TNC connections:
an unclaimed station never transmits; a claimed one identifies at once, at least every ID
interval and at the end of each transmission sequence, with its callsign and SSID as the source
of every frame; messages reach their station whole through loss (receiver-driven repeats);
operator requests go before background traffic, which stays within the air-time budget."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from bench.rf.channel import SimulatedChannel
from mesh import rf_codec
from mesh.airtime import AirtimeBucket
from mesh.ax25 import Address, Frame
from mesh.rf_link import (
    HEARD_MARGIN,
    ID_SAFETY,
    KEYING_GAP,
    PERSISTENCE_MAX,
    PERSISTENCE_MIN,
    TNC_WAIT_MAX,
    RfLink,
    _Outgoing,
    persistence_for,
)
from mesh.tnc import TncLink, parse_kiss_url
from tests.mesh.stations import until


@dataclass
class Node:
    call: Address | None
    rf: RfLink
    tnc: TncLink
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    beacons: list[tuple[str, bytes]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def nodes(channel: SimulatedChannel, calls: list[str | None], **options: float
                ) -> AsyncIterator[list[Node]]:
    made: list[Node] = []
    tasks: list[asyncio.Task] = []
    for call in calls:
        address = Address.parse(call) if call else None
        holder: dict[str, Node] = {}
        tnc = TncLink(parse_kiss_url(f"tcp://127.0.0.1:{channel.port}"),
                      on_frame=lambda raw, h=holder: h["node"].rf.on_frame(raw))
        rf = RfLink(send_frame=tnc.send, identity=lambda a=address: a,
                    bitrate=channel.bitrate, share=options.get("share", 0.1),
                    id_interval=options.get("id_interval", 600),
                    beacon_body=lambda c=call: f"presence of {c}".encode(),
                    nack_gap=options.get("nack_gap", 2.0), ready=lambda t=tnc: t.connected,
                    id_holdoff=options.get("id_holdoff", 0.0))
        node = holder["node"] = Node(address, rf, tnc)
        rf.on_message = lambda source, message, n=node: n.messages.append((str(source), message))
        rf.on_beacon = lambda source, body, n=node: n.beacons.append((str(source), body))
        made.append(node)
        tasks += [asyncio.create_task(tnc.run()), asyncio.create_task(rf.run())]
    try:
        for node in made:
            assert await node.tnc.wait_connected(10)
        yield made
    finally:
        for node in made:
            await node.tnc.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def frames_from(channel: SimulatedChannel, client: int) -> list[tuple[float, Frame]]:
    out = []
    for tx in channel.snapshot():
        if tx.client == client:
            out += [(end, Frame.decode(raw)) for raw, end in zip(tx.frames, tx.frame_ends,
                                                               strict=True)]
    return out


def test_the_more_stations_heard_the_less_each_keys_up_in_a_slot() -> None:
    values = [persistence_for(n) for n in range(12)]
    assert values[:2] == [63, 63]  # alone or with one other: Direwolf's default, 1/4
    assert values[2] == 31 and values[3] == 20  # about 1/(4 n)
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert min(values) >= PERSISTENCE_MIN and max(values) <= PERSISTENCE_MAX
    assert persistence_for(1000) == PERSISTENCE_MIN


async def test_frames_heard_hold_back_what_waits_in_the_tnc_with_each_keyings_txdelay() -> None:
    now = [100.0]
    rf = RfLink(send_frame=_nothing_sent, identity=lambda: Address("DL1A", 10), bitrate=1200,
                share=0.1, id_interval=600, beacon_body=lambda: b"", clock=lambda: now[0])
    rf.busy_until = 102.0  # two seconds of our frames still wait in the TNC
    other = Frame.ui(source="DL2B-10", destination="APRS", info=b"x" * 100).encode()
    frame_time = rf.ledger.cost(len(other), keyed=True)
    await rf.on_frame(other)  # the first frame of a keying: its TXDELAY and a slot too
    # ... and a quarter more for what the TNC senses but the station does not decode.
    assert rf.busy_until == pytest.approx(
        102.0 + (frame_time + rf.ledger.txdelay + KEYING_GAP) * HEARD_MARGIN)
    before = rf.busy_until
    now[0] += frame_time  # the next frame of the same keying, straight after
    await rf.on_frame(other)
    assert rf.busy_until == pytest.approx(before + frame_time * HEARD_MARGIN)
    rf.busy_until = now[0] - 60  # nothing of ours waits: what others send changes nothing
    now[0] += 30
    await rf.on_frame(other)
    assert rf.busy_until == pytest.approx(now[0] - 90)


async def test_a_channel_others_keep_busy_cannot_push_our_estimate_past_a_bound() -> None:
    now = [100.0]
    rf = RfLink(send_frame=_nothing_sent, identity=lambda: Address("DL1A", 10), bitrate=1200,
                share=0.1, id_interval=600, beacon_body=lambda: b"", clock=lambda: now[0])
    await rf._transmit(_Outgoing(Address("MESH"), b"x" * 200, "sync"), Address("DL1A", 10))
    handed = rf.handed_until
    other = Frame.ui(source="DL2B-10", destination="MESH", info=b"y" * 250).encode()
    frame_time = rf.ledger.cost(len(other), keyed=True)
    for _ in range(200):  # others talk back to back for minutes, one keying each
        now[0] += frame_time + 0.2
        await rf.on_frame(other)
        assert rf.busy_until <= max(handed + TNC_WAIT_MAX, now[0])
    assert rf.busy_until - now[0] < rf.lookahead  # our next frame may go to the TNC


async def _nothing_sent(_frame: bytes) -> None:
    return None


async def test_an_id_goes_to_the_tnc_when_due_whatever_our_estimate_of_its_queue() -> None:
    handed: list[tuple[float, Frame]] = []

    async def to_tnc(raw: bytes) -> None:
        handed.append((time.monotonic(), Frame.decode(raw)))

    rf = RfLink(send_frame=to_tnc, identity=lambda: Address("DL1A", 10), bitrate=1200,
                share=1.0, id_interval=10, beacon_body=lambda: b"presence")
    task = asyncio.create_task(rf.run())
    try:
        await until(lambda: len(handed) == 1, timeout=5)  # on the air: it identifies first
        first = handed[0][0]
        rf.busy_until = time.monotonic() + 600  # we believe ten minutes of frames wait there
        rf.send(b"sync traffic", to=None, kind="sync")
        await until(lambda: len(handed) == 2, timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [str(frame.destination) for _, frame in handed] == ["ID", "ID"]  # not the sync
    assert handed[1][0] - first <= 10 - ID_SAFETY + 0.5  # planned at least 5 s early


async def test_unclaimed_station_never_transmits_and_claimed_one_identifies() -> None:
    with SimulatedChannel(bitrate=9600, seed=1) as channel:
        async with nodes(channel, ["K1ABC-10", None], id_interval=10) as (claimed, unclaimed):
            with pytest.raises(rf_codec.RfCodecError, match="not claimed"):
                unclaimed.rf.send(b"hello", to=None, kind="sync")
            await until(lambda: len(claimed.rf.ids) >= 3, timeout=30)
            await until(lambda: len(unclaimed.beacons) >= 3, timeout=10)
        clients = sorted(channel.clients) or [1, 2]
        assert all(tx.client == 1 for tx in channel.snapshot()), clients
        assert unclaimed.rf.refused_unclaimed == 1
        beacons = frames_from(channel, 1)
        assert all(str(frame.source) == "K1ABC-10" for _, frame in beacons)
        assert unclaimed.beacons[0] == ("K1ABC-10", b"presence of K1ABC-10")
        times = [at for at, frame in beacons if str(frame.destination) == "ID"]
        assert times[0] < 2.0  # identifies as it comes on the air
        assert max(b - a for a, b in itertools.pairwise(times)) <= 10.0


async def test_a_message_arrives_whole_through_loss_with_an_id_at_the_end() -> None:
    with SimulatedChannel(bitrate=9600, loss=0.3, seed=5) as channel:
        async with nodes(channel, ["K1ABC-10", "W1AW-3"], nack_gap=1.0, share=0.5) as (a, b):
            big = bytes(range(256)) * 8  # 9 fragments
            a.rf.send(big, to=Address.parse("W1AW-3"), kind="sync")
            await until(lambda: ("K1ABC-10", big) in b.messages, timeout=120)
            await until(lambda: not a.rf.sent_since_id and not a.rf.urgent, timeout=30)
        sent = frames_from(channel, 1)
        assert {str(frame.source) for _, frame in sent} == {"K1ABC-10"}
        assert str(sent[-1][1].destination) == "ID"  # the sequence ended with an ID
        assert a.rf.ledger.frames.get("repeat", 0) > 0  # loss made repeats necessary
        assert b.rf.ledger.frames.get("nack", 0) > 0


async def test_unicast_reaches_its_station_and_broadcast_everyone() -> None:
    with SimulatedChannel(bitrate=9600, seed=6) as channel:
        async with nodes(channel, ["K1ABC-10", "W1AW-3", "N0CALL-1"]) as (a, b, c):
            a.rf.send(b"for w1aw", to=Address.parse("W1AW-3"), kind="request", priority=True)
            a.rf.send(b"x" * 600, to=None, kind="routing")
            await until(lambda: len(b.messages) == 2 and len(c.messages) == 1, timeout=30)
            assert sorted(m for _, m in b.messages) == sorted([b"for w1aw", b"x" * 600])
            assert c.messages == [("K1ABC-10", b"x" * 600)]


async def test_requests_go_first_and_background_stays_within_budget() -> None:
    with SimulatedChannel(bitrate=9600, seed=9) as channel:
        async with nodes(channel, ["K1ABC-10", "W1AW-3"], share=0.05) as (a, b):
            a.rf.bucket = AirtimeBucket.for_channel(share=0.05, now=a.rf.clock(), window=10)
            started = a.rf.clock()
            for index in range(20):
                a.rf.send(bytes([index]) * 240, to=None, kind="sync")
            a.rf.send(b"operator asks", to=Address.parse("W1AW-3"), kind="request",
                      priority=True)
            await until(lambda: any(m == b"operator asks" for _, m in b.messages), timeout=20)
            await asyncio.sleep(6)
            background = len([m for _, m in b.messages if len(m) == 240])
            elapsed = a.rf.clock() - started
            sync_seconds = a.rf.ledger.seconds["sync"]
            assert background < 20  # held back by the budget
            one_frame = a.rf.ledger.cost(16 + 2 + 246)
            assert sync_seconds <= 0.5 + 0.05 * elapsed + one_frame + 0.3, (sync_seconds, elapsed)
        order = [bytes(rf_codec.parse_info(f.info).chunk)[:1]  # type: ignore[union-attr]
                 for _, f in frames_from(channel, 1)
                 if rf_codec.parse_info(f.info).__class__ is rf_codec.Fragment]
        assert order.index(b"o") < 3  # the request overtook the queued sync traffic
