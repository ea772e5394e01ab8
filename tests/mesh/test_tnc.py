"""The TNC connection (mesh/tnc.py): KISS URLs, KISS over TCP against the simulated channel,
reconnection with backoff when the TNC goes away and comes back, and KISS over a serial port
through a pseudo-terminal pair."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty

import pytest

from bench.rf.channel import SimulatedChannel
from mesh import kiss
from mesh.ax25 import Frame
from mesh.tnc import CONNECTED, STOPPED, WAITING, KissEndpoint, TncError, TncLink, parse_kiss_url
from tests.mesh.stations import until

# --- URLs -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "endpoint"), [
    ("tcp://127.0.0.1:8001", KissEndpoint("tcp", host="127.0.0.1", port=8001)),
    ("tcp://tnc.local:8001/", KissEndpoint("tcp", host="tnc.local", port=8001)),
    ("tcp://[::1]:8001", KissEndpoint("tcp", host="::1", port=8001)),
    ("serial:///dev/ttyUSB0", KissEndpoint("serial", device="/dev/ttyUSB0", baud=9600)),
    ("serial:///dev/ttyACM1?baud=1200", KissEndpoint("serial", device="/dev/ttyACM1", baud=1200)),
])
def test_kiss_urls(url: str, endpoint: KissEndpoint) -> None:
    assert parse_kiss_url(url) == endpoint
    assert parse_kiss_url(str(endpoint)) == endpoint


@pytest.mark.parametrize(("url", "message"), [
    ("127.0.0.1:8001", "expected tcp://HOST:PORT or serial"),
    ("http://127.0.0.1:8001", "expected tcp://HOST:PORT or serial"),
    ("tcp://127.0.0.1", "expected tcp://HOST:PORT"),
    ("tcp://127.0.0.1:99999", "port must be a number"),
    ("tcp://127.0.0.1:8001/x", "only a host and a port"),
    ("serial://dev/ttyUSB0", "three slashes"),
    ("serial:///dev/ttyUSB0?baud=1234", "baud='1234' is not one of"),
    ("serial:///dev/ttyUSB0?parity=N", "unknown option parity"),
])
def test_bad_kiss_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(TncError, match=message):
        parse_kiss_url(url)


# --- TCP ------------------------------------------------------------------------------------

def ui(info: bytes, call: str = "K1ABC-10") -> bytes:
    return Frame.ui(source=call, destination="MESH", info=info).encode()


async def test_two_stations_over_tcp_on_the_channel() -> None:
    with SimulatedChannel(bitrate=9600, seed=1) as channel:
        heard: list[bytes] = []
        endpoint = parse_kiss_url(f"tcp://127.0.0.1:{channel.port}")
        a = TncLink(endpoint, on_frame=lambda frame: None,
                    parameters={kiss.Command.TXDELAY: 20})
        b = TncLink(endpoint, on_frame=heard.append)
        tasks = [asyncio.create_task(link.run()) for link in (a, b)]
        try:
            assert await a.wait_connected(10) and await b.wait_connected(10)
            await a.send(ui(b"hello"))
            await until(lambda: heard)
            assert Frame.decode(heard[0]).info == b"hello"
            assert a.status()["state"] == CONNECTED and a.status()["framesOut"] == 1
            assert b.status()["framesIn"] == 1
            assert [c.txdelay for c in channel.clients.values()] == [0.2, 0.3]
        finally:
            for link in (a, b):
                await link.stop()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert a.state == STOPPED


async def test_a_parameter_set_while_connected_reaches_the_tnc_and_is_sent_again_on_connect(
) -> None:
    with SimulatedChannel(bitrate=9600, seed=2) as channel:
        link = TncLink(parse_kiss_url(f"tcp://127.0.0.1:{channel.port}"),
                       on_frame=lambda frame: None)
        task = asyncio.create_task(link.run())
        try:
            assert await link.wait_connected(10)
            await until(lambda: len(channel.clients) == 1)
            (client,) = channel.clients.values()
            assert client.persistence == 63  # the TNC's own default until told otherwise
            await link.set_parameter(kiss.Command.PERSISTENCE, 31)
            await until(lambda: client.persistence == 31)
            # The TNC goes away and comes back: it is told again (the channel runs in a
            # thread of its own: its loop closes the connection).
            channel._loop.call_soon_threadsafe(client.writer.close)
            await until(lambda: link.connects == 2 and link.connected)
            await until(lambda: [c.persistence for c in channel.clients.values()] == [31])
        finally:
            await link.stop()
            await asyncio.wait_for(task, 10)


async def test_reconnects_with_backoff_when_the_tnc_goes_and_comes_back() -> None:
    heard: list[bytes] = []
    states: list[str] = []
    sockets: list[asyncio.StreamWriter] = []

    async def tnc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sockets.append(writer)
        writer.write(kiss.encode(ui(b"from the tnc")))
        with contextlib.suppress(ConnectionError):
            await reader.read()

    probe = await asyncio.start_server(tnc, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()  # nothing listens yet: the first attempts fail

    link = TncLink(parse_kiss_url(f"tcp://127.0.0.1:{port}"), on_frame=heard.append,
                   on_state=lambda s: states.append(s["state"]), backoff_min=0.1,
                   backoff_max=0.4)
    task = asyncio.create_task(link.run())
    try:
        await until(lambda: link.state == WAITING)
        assert "cannot open tcp://127.0.0.1" in link.last_error
        assert link.status()["nextAttempt"] is not None
        server = await asyncio.start_server(tnc, "127.0.0.1", port)
        await until(lambda: link.connected and heard)
        assert link.status()["lastError"] == ""
        sockets[0].close()  # the TNC goes away
        server.close()
        await until(lambda: link.state == WAITING)
        assert "closed the connection" in link.last_error
        with pytest.raises(TncError, match="no TNC connected"):
            await link.send(ui(b"x"))
        server = await asyncio.start_server(tnc, "127.0.0.1", port)
        await until(lambda: link.connected and len(heard) == 2)
        assert link.connects == 2
        assert states.count(CONNECTED) >= 2
        server.close()
    finally:
        await link.stop()
        await asyncio.wait_for(task, 10)


# --- serial ---------------------------------------------------------------------------------

async def test_serial_tnc_through_a_pseudo_terminal() -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    os.set_blocking(master, False)
    path = os.ttyname(slave)
    heard: list[bytes] = []
    link = TncLink(parse_kiss_url(f"serial://{path}?baud=9600"), on_frame=heard.append,
                   parameters={kiss.Command.TXDELAY: 25})
    task = asyncio.create_task(link.run())
    received = bytearray()

    def read_master() -> bytes:
        with contextlib.suppress(BlockingIOError):
            received.extend(os.read(master, 4096))
        return bytes(received)

    try:
        assert await link.wait_connected(10), link.status()
        await until(lambda: kiss.encode_parameter(kiss.Command.TXDELAY, 25) in read_master())
        # The TNC hears a frame, with noise on the line before it, in two pieces.
        wire = kiss.encode(ui(b"over serial\xc0\xdb", call="W1AW-3"))
        os.write(master, b"\x00\xffnoise" + wire[:9])
        await asyncio.sleep(0.05)
        os.write(master, wire[9:])
        await until(lambda: heard)
        frame = Frame.decode(heard[0])
        assert (str(frame.source), frame.info) == ("W1AW-3", b"over serial\xc0\xdb")
        await link.send(ui(b"to the tnc"))
        expected = kiss.encode(ui(b"to the tnc"))
        await until(lambda: expected in read_master())
        decoded = kiss.KissDecoder().feed(bytes(received))
        assert [f.data for f in decoded if f.is_data] == [ui(b"to the tnc")]
    finally:
        await link.stop()
        await asyncio.wait_for(task, 10)
        os.close(master)
        os.close(slave)


async def test_serial_device_missing_is_reported_and_retried() -> None:
    link = TncLink(parse_kiss_url("serial:///dev/meshsite-no-such-tnc"), on_frame=print,
                   backoff_min=0.1, backoff_max=0.2)
    task = asyncio.create_task(link.run())
    try:
        await until(lambda: link.state == WAITING)
        assert "/dev/meshsite-no-such-tnc" in link.last_error
        await until(lambda: link.status()["connects"] == 0 and link.state == WAITING)
    finally:
        await link.stop()
        await asyncio.wait_for(task, 10)
