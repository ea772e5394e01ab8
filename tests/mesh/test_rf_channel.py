"""The simulated radio channel (bench/rf/channel.py) behaves as the tests that use it assume:
frames arrive after their air time and never back at their sender, loss drops frames per
receiver, a busy channel defers the others, two that key up at once collide and lose both, the
KISS TXDELAY parameter counts, and the channel stops by itself."""

from __future__ import annotations

import asyncio
import time

import pytest

from bench.rf.channel import SimulatedChannel
from mesh import kiss
from mesh.ax25 import Frame, air_time
from tests.mesh.stations import until


class Station:
    """A bare KISS client of the channel: sends UI frames, collects what it hears."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.heard: list[tuple[float, Frame]] = []
        self.decoder = kiss.KissDecoder()

    async def open(self, *, persistence: int = 255) -> Station:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(kiss.encode_parameter(kiss.Command.PERSISTENCE, persistence))
        self.task = asyncio.create_task(self._listen())
        return self

    async def _listen(self) -> None:
        while chunk := await self.reader.read(4096):
            for frame in self.decoder.feed(chunk):
                self.heard.append((time.monotonic(), Frame.decode(frame.data)))

    def send(self, info: bytes, call: str = "K1ABC-10") -> float:
        self.writer.write(kiss.encode(Frame.ui(source=call, destination="MESH",
                                               info=info).encode()))
        return time.monotonic()

    async def close(self) -> None:
        self.writer.close()
        self.task.cancel()



async def stations(channel: SimulatedChannel, count: int, **options: int) -> list[Station]:
    made = [await Station(channel.port).open(**options) for _ in range(count)]
    await until(lambda: len(channel.clients) == count)
    return made


async def test_frame_arrives_after_its_air_time_at_the_others_only() -> None:
    with SimulatedChannel(bitrate=1200, seed=1) as channel:
        a, b, c = await stations(channel, 3)
        sent = a.send(b"x" * 100)
        await until(lambda: b.heard and c.heard)
        frame_bytes = len(Frame.ui(source="K1ABC-10", destination="MESH", info=b"x" * 100)
                          .encode())
        expected = air_time(frame_bytes, bitrate=1200)  # 0.3 s + 118 bytes at 1200 bit/s
        assert b.heard[0][0] - sent >= expected - 0.02
        assert b.heard[0][1].info == b"x" * 100
        assert a.heard == []
        (tx,) = channel.snapshot()
        assert tx.air_time == pytest.approx(expected, abs=1e-6)
        assert not tx.collided and sorted(tx.delivered) == [2, 3]


async def test_loss_drops_frames_per_receiver() -> None:
    with SimulatedChannel(bitrate=96000, loss=0.5, seed=7) as channel:
        a, b, c = await stations(channel, 3)
        a.writer.write(kiss.encode_parameter(kiss.Command.TXDELAY, 0))
        for index in range(40):
            a.send(str(index).encode())
            await until(lambda n=index: len(channel.snapshot()) > n)
        await until(lambda: all(not t.frame_ends or t.end < channel.now()
                                for t in channel.snapshot()))

        def delivered_to(ident: int) -> int:
            return sum(len(t.delivered.get(ident, [])) for t in channel.snapshot())

        # Each receiver has read all the channel delivered to it (a is client 1, b 2, c 3).
        await until(lambda: len(b.heard) == delivered_to(2) and len(c.heard) == delivered_to(3))
        assert 5 < len(b.heard) < 35 and 5 < len(c.heard) < 35
        assert [f.info for _, f in b.heard] != [f.info for _, f in c.heard]


async def test_busy_channel_defers_the_others() -> None:
    with SimulatedChannel(bitrate=1200, seed=2) as channel:
        a, b, c = await stations(channel, 3)
        a.send(b"long" * 50)
        await until(lambda: channel.snapshot())
        await asyncio.sleep(0.2)  # well inside a's transmission, after carrier sense
        b.send(b"second", call="K2XYZ-10")
        await until(lambda: len(c.heard) == 2)
        first, second = channel.snapshot()
        assert second.start >= first.end
        assert not first.collided and not second.collided
        assert [f.info for _, f in a.heard] == [b"second"]


async def test_two_transmitters_at_once_collide_and_both_are_lost() -> None:
    with SimulatedChannel(bitrate=1200, seed=3, sense_delay=0.2) as channel:
        a, b, c = await stations(channel, 3)
        a.send(b"one")
        b.send(b"two", call="K2XYZ-10")
        await until(lambda: len(channel.snapshot()) == 2)
        first, second = channel.snapshot()
        await asyncio.sleep(max(first.end, second.end) - channel.now() + 0.3)
        assert first.collided and second.collided
        assert c.heard == [] and a.heard == [] and b.heard == []
        a.send(b"again")  # the channel recovers
        await until(lambda: c.heard)
        assert c.heard[0][1].info == b"again"


async def test_txdelay_parameter_counts() -> None:
    with SimulatedChannel(bitrate=1200, seed=4) as channel:
        a, _b = await stations(channel, 2)
        a.writer.write(kiss.encode_parameter(kiss.Command.TXDELAY, 10))  # 100 ms
        a.send(b"q")
        await until(lambda: channel.snapshot())
        frame_bytes = len(Frame.ui(source="K1ABC-10", destination="MESH", info=b"q").encode())
        assert channel.snapshot()[0].air_time == pytest.approx(
            air_time(frame_bytes, bitrate=1200, txdelay=0.1), abs=1e-6)


async def test_queued_frames_share_one_transmission() -> None:
    with SimulatedChannel(bitrate=1200, seed=5, max_burst=4) as channel:
        a, b = await stations(channel, 2)
        a.writer.write(b"".join(  # one write: all six are queued before the TNC keys up
            kiss.encode(Frame.ui(source="K1ABC", destination="MESH", info=bytes([65 + i]))
                        .encode()) for i in range(6)))
        await until(lambda: len(b.heard) == 6, timeout=60)
        assert [f.info for _, f in b.heard] == [b"A", b"B", b"C", b"D", b"E", b"F"]
        assert [len(t.frames) for t in channel.snapshot()] == [4, 2]


def test_the_channel_stops_by_itself() -> None:
    channel = SimulatedChannel(lifetime=0.5)
    channel.start()
    assert channel._thread is not None
    channel._thread.join(5)
    assert not channel._thread.is_alive()
