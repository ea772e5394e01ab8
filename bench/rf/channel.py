"""A simulated radio channel: a KISS-over-TCP hub several stations connect to as if to a TNC.

`python -m bench.rf.channel --bitrate 1200 --loss 0.1` runs one on 127.0.0.1 (it prints
`listening on 127.0.0.1:PORT` and stops by itself after `--lifetime` seconds or when its parent
dies); tests and `bench.rf` run it in a thread with `SimulatedChannel(...).start()`.

What it simulates, per connected client (one station's TNC):

- Half duplex with carrier sense: a client keys up only when it hears the channel idle. It hears
  another transmission only `sense_delay` seconds after that one keyed up, so two clients that
  key up within that window collide, and every frame of both transmissions is lost.
- p-persistence as a KISS TNC does it: when the channel turns idle the client transmits with
  probability (persistence + 1) / 256, else waits a slot time and listens again. TXDELAY,
  persistence and slot time are the TNC's KISS parameters (defaults as Direwolf's: 300 ms, 63,
  100 ms) and follow the KISS parameter frames a client sends.
- A transmission carries every frame the client had queued when it keyed up (at most
  `max_burst`), after one TXDELAY; each frame takes its bytes plus flags and FCS at the bit rate.
- Each frame reaches each other client at the end of its air time, unless it collided, unless
  that client was itself keyed during the frame (half duplex), and unless it is lost (each
  receiver independently, with probability `loss`).

Every transmission is recorded (`transmissions`) with the frames, who sent them, when and what
happened, so a test can check air time and what went on the air.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field

from mesh import kiss
from mesh.ax25 import DEFAULT_TXDELAY, HDLC_OVERHEAD_BYTES


@dataclass
class Transmission:
    client: int
    start: float  # loop time the client keyed up
    end: float
    frames: list[bytes]
    frame_ends: list[float]
    collided: bool = False
    delivered: dict[int, list[int]] = field(default_factory=dict)  # client -> frame indexes

    @property
    def air_time(self) -> float:
        return self.end - self.start


@dataclass
class _Client:
    ident: int
    writer: asyncio.StreamWriter
    queue: list[bytes] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    txdelay: float = DEFAULT_TXDELAY
    persistence: int = 63
    slot_time: float = 0.1
    keyed: list[tuple[float, float]] = field(default_factory=list)  # own transmissions
    dropped: int = 0


class SimulatedChannel:
    def __init__(self, *, bitrate: int = 1200, loss: float = 0.0, seed: int | None = None,
                 sense_delay: float = 0.05, lifetime: float = 900.0, max_burst: int = 8,
                 max_queue: int = 200, host: str = "127.0.0.1", port: int = 0) -> None:
        if bitrate <= 0:
            raise ValueError(f"bitrate {bitrate} must be positive")
        if not 0.0 <= loss < 1.0:
            raise ValueError(f"loss {loss} must be from 0 to below 1")
        self.bitrate = bitrate
        self.loss = loss
        self.sense_delay = sense_delay
        self.lifetime = lifetime
        self.max_burst = max_burst
        self.max_queue = max_queue
        self.host = host
        self.port = port
        self.random = random.Random(seed)
        self.transmissions: list[Transmission] = []
        self.clients: dict[int, _Client] = {}
        self._active: list[Transmission] = []
        self._changed: asyncio.Event | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._next_ident = 1
        self.started_at = 0.0

    # -- running ---------------------------------------------------------------------------

    def start(self) -> int:
        """Run in a daemon thread; returns the TCP port once listening."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self.serve()),
                                        name="rf-channel", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the simulated channel did not start listening within 10 s")
        return self.port

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> SimulatedChannel:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        self.started_at = self._loop.time()
        self._ready.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.lifetime)
        finally:
            server.close()
            for client in list(self.clients.values()):
                client.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    def now(self) -> float:
        """Seconds since the channel started (the time base of `transmissions`)."""
        assert self._loop is not None
        return self._loop.time() - self.started_at

    # -- figures for tests and benchmarks -----------------------------------------------------

    def snapshot(self) -> list[Transmission]:
        with self._lock:
            return list(self.transmissions)

    def air_time(self, client: int | None = None) -> float:
        return sum(t.air_time for t in self.snapshot() if client in (None, t.client))

    # -- one client ----------------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(self._next_ident, writer)
        self._next_ident += 1
        self.clients[client.ident] = client
        sender = asyncio.create_task(self._transmitter(client))
        decoder = kiss.KissDecoder()
        try:
            while chunk := await reader.read(4096):
                for frame in decoder.feed(chunk):
                    self._command(client, frame)
        except (ConnectionError, OSError):
            pass
        finally:
            self.clients.pop(client.ident, None)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            writer.close()

    def _command(self, client: _Client, frame: kiss.KissFrame) -> None:
        if frame.is_data:
            if len(client.queue) >= self.max_queue:
                client.dropped += 1
                return
            client.queue.append(frame.data)
            client.wake.set()
        elif frame.command == kiss.Command.TXDELAY and frame.data:
            client.txdelay = frame.data[0] / 100
        elif frame.command == kiss.Command.PERSISTENCE and frame.data:
            client.persistence = frame.data[0]
        elif frame.command == kiss.Command.SLOT_TIME and frame.data:
            client.slot_time = frame.data[0] / 100

    def _sensed_busy_until(self, client: _Client) -> float | None:
        """When the transmissions this client can hear now end (None: it hears the channel idle)."""
        now = self.now()
        ends = [t.end for t in self._active
                if t.client != client.ident and now - t.start >= self.sense_delay]
        return max(ends) if ends else None

    async def _transmitter(self, client: _Client) -> None:
        assert self._changed is not None
        while True:
            while not client.queue:
                client.wake.clear()
                await client.wake.wait()
            # Listen: defer while busy, then p-persistence in slot times.
            while True:
                busy_until = self._sensed_busy_until(client)
                if busy_until is not None:
                    await asyncio.sleep(max(0.0, busy_until - self.now()) + 0.001)
                    continue
                if self.random.random() < (client.persistence + 1) / 256:
                    break
                await asyncio.sleep(client.slot_time)
            burst, client.queue = client.queue[:self.max_burst], client.queue[self.max_burst:]
            await self._transmit(client, burst)

    async def _transmit(self, client: _Client, frames: list[bytes]) -> None:
        start = self.now()
        ends = []
        at = start + client.txdelay
        for frame in frames:
            at += (len(frame) + HDLC_OVERHEAD_BYTES) * 8 / self.bitrate
            ends.append(at)
        tx = Transmission(client.ident, start, at, frames, ends)
        for other in self._active:  # anyone still keyed overlaps us: both are garbled
            if other.end > start:
                other.collided = True
                tx.collided = True
        self._active.append(tx)
        client.keyed = [(s, e) for s, e in client.keyed if e > start - 60] + [(start, at)]
        with self._lock:
            self.transmissions.append(tx)
        for index, end in enumerate(ends):
            await asyncio.sleep(max(0.0, end - self.now()))
            self._deliver(tx, index)
        self._active.remove(tx)

    def _deliver(self, tx: Transmission, index: int) -> None:
        if tx.collided:
            return
        frame_start = tx.start if index == 0 else tx.frame_ends[index - 1]
        for receiver in list(self.clients.values()):
            if receiver.ident == tx.client:
                continue
            if any(s < tx.frame_ends[index] and e > frame_start for s, e in receiver.keyed):
                continue  # it was transmitting itself: a half-duplex radio hears nothing
            if self.loss and self.random.random() < self.loss:
                continue
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                receiver.writer.write(kiss.encode(tx.frames[index]))
            tx.delivered.setdefault(receiver.ident, []).append(index)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A simulated KISS radio channel on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bitrate", type=int, default=1200)
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--lifetime", type=float, default=900.0,
                        help="stop after this many seconds (default 900)")
    args = parser.parse_args(argv)
    channel = SimulatedChannel(bitrate=args.bitrate, loss=args.loss, seed=args.seed,
                               lifetime=args.lifetime, port=args.port)
    port = channel.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    parent = os.getppid()
    deadline = time.monotonic() + args.lifetime
    try:
        while time.monotonic() < deadline and os.getppid() == parent and channel._thread \
                and channel._thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    channel.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
