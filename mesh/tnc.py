"""The station's connection to its TNC: KISS over TCP or a serial port (asyncio, no Django).

`MESHSITE_RF_KISS` names the TNC: `tcp://HOST:PORT` (Direwolf and most software modems listen
on 8001) or `serial:///dev/ttyUSB0?baud=9600` (a hardware TNC in KISS mode; baud defaults to
9600). `TncLink.run()` keeps the connection up: when the TNC goes away (Direwolf restarted, USB
cable pulled) it reconnects with exponential backoff between `backoff_min` and `backoff_max`
seconds, and `status()` says where it stands (`connecting`, `connected`, `waiting`,
`stopped`), since when, the last error and the frame counts, for `/api/status` and the admin.

Frames given to `send` are AX.25 frames without FCS; each goes out as one KISS data frame on
port 0. Frames the TNC hears arrive at `on_frame` in order; KISS noise and parameter frames
are dropped (counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

from mesh import kiss

logger = logging.getLogger(__name__)

DEFAULT_SERIAL_BAUD = 9600
SERIAL_BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
CONNECT_TIMEOUT = 10.0
MAX_QUEUED_BYTES = 64 * 1024  # written but not yet taken by the TNC: beyond this, sends wait

CONNECTING = "connecting"
CONNECTED = "connected"
WAITING = "waiting"  # between attempts, after a failure
STOPPED = "stopped"


class TncError(ValueError):
    """A KISS URL that names no TNC we can reach, or a send with no TNC connected."""


@dataclass(frozen=True)
class KissEndpoint:
    scheme: str  # tcp | serial
    host: str = ""
    port: int = 0
    device: str = ""
    baud: int = DEFAULT_SERIAL_BAUD

    def __str__(self) -> str:
        if self.scheme == "tcp":
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"tcp://{host}:{self.port}"
        return f"serial://{self.device}?baud={self.baud}"


def parse_kiss_url(url: str) -> KissEndpoint:
    """`tcp://HOST:PORT` or `serial:///dev/DEVICE[?baud=N]`; `TncError` says what is wrong."""
    text = url.strip()
    parsed = urlparse(text)
    if parsed.scheme == "tcp":
        try:
            port = parsed.port
        except ValueError as exc:
            raise TncError(f"{text!r}: the port must be a number from 1 to 65535") from exc
        if not parsed.hostname or port is None or port == 0:
            raise TncError(f"{text!r}: expected tcp://HOST:PORT, e.g. tcp://127.0.0.1:8001")
        if parsed.path not in ("", "/") or parsed.query:
            raise TncError(f"{text!r}: a tcp:// KISS URL has only a host and a port")
        return KissEndpoint("tcp", host=parsed.hostname, port=port)
    if parsed.scheme == "serial":
        device = parsed.path
        if parsed.netloc or not device.startswith("/"):
            raise TncError(f"{text!r}: expected serial:///dev/DEVICE (three slashes), e.g. "
                           "serial:///dev/ttyUSB0?baud=9600")
        query = parse_qs(parsed.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"baud"})
        if unknown:
            raise TncError(f"{text!r}: unknown option {', '.join(unknown)} (only baud=N)")
        baud = DEFAULT_SERIAL_BAUD
        if "baud" in query:
            value = query["baud"][-1]
            if not value.isdigit() or int(value) not in SERIAL_BAUDS:
                raise TncError(f"{text!r}: baud={value!r} is not one of "
                               + ", ".join(str(b) for b in SERIAL_BAUDS))
            baud = int(value)
        return KissEndpoint("serial", device=device, baud=baud)
    raise TncError(f"{text!r}: expected tcp://HOST:PORT or serial:///dev/DEVICE?baud=N")


FrameHandler = Callable[[bytes], Awaitable[None] | None]


class TncLink:
    def __init__(self, endpoint: KissEndpoint, *, on_frame: FrameHandler,
                 on_state: Callable[[dict[str, Any]], None] | None = None,
                 backoff_min: float = 0.5, backoff_max: float = 30.0,
                 parameters: dict[int, int] | None = None) -> None:
        self.endpoint = endpoint
        self.on_frame = on_frame
        self.on_state = on_state
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.parameters = dict(parameters or {})  # KISS command -> value, sent on connect
        self.state = CONNECTING
        self.since = time.time()
        self.last_error = ""
        self.connects = 0
        self.frames_in = 0
        self.frames_out = 0
        self.bytes_out = 0
        self.dropped_in = 0
        self.next_attempt: float | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._send_lock = asyncio.Lock()

    # -- state -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {"url": str(self.endpoint), "state": self.state, "since": self.since,
                "lastError": self.last_error, "connects": self.connects,
                "framesIn": self.frames_in, "framesOut": self.frames_out,
                "bytesOut": self.bytes_out, "droppedIn": self.dropped_in,
                "nextAttempt": self.next_attempt}

    def _set_state(self, state: str, error: str | None = None) -> None:
        if error is not None:
            self.last_error = error
        if state != self.state:
            self.state = state
            self.since = time.time()
        if self.on_state is not None:
            try:
                self.on_state(self.status())
            except Exception:
                logger.exception("TNC state callback failed")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self.connected

    # -- running ---------------------------------------------------------------------------

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.endpoint.scheme == "tcp":
            return await asyncio.wait_for(
                asyncio.open_connection(self.endpoint.host, self.endpoint.port), CONNECT_TIMEOUT)
        import serial_asyncio  # pyserial-asyncio: only stations with a serial TNC need it

        return await asyncio.wait_for(serial_asyncio.open_serial_connection(
            url=self.endpoint.device, baudrate=self.endpoint.baud), CONNECT_TIMEOUT)

    async def run(self) -> None:
        """Connect, read, and reconnect until `stop()`."""
        delay = self.backoff_min
        while not self._stopping.is_set():
            self.next_attempt = None
            self._set_state(CONNECTING)
            try:
                reader, writer = await self._open()
            except (OSError, TimeoutError, ValueError) as exc:
                error = f"cannot open {self.endpoint}: {exc or type(exc).__name__}"
            else:
                delay = self.backoff_min
                error = await self._session(reader, writer)
            if self._stopping.is_set():
                break
            wait = delay * (0.8 + 0.4 * random.random())  # noqa: S311 - jitter, not secrecy
            self.next_attempt = time.time() + wait
            self._set_state(WAITING, error)
            logger.warning("TNC link down, retrying", extra={
                "tnc": str(self.endpoint), "error": error, "retry_in": round(wait, 1)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait)
            delay = min(self.backoff_max, delay * 2)
        self._set_state(STOPPED)

    async def _session(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> str:
        self._writer = writer
        self.connects += 1
        try:
            for command, value in self.parameters.items():
                writer.write(kiss.encode_parameter(command, value))
            await writer.drain()
        except (OSError, ConnectionError) as exc:
            writer.close()
            self._writer = None
            return f"{self.endpoint} closed at once: {exc}"
        self._connected.set()
        self._set_state(CONNECTED, "")
        logger.info("TNC connected", extra={"tnc": str(self.endpoint)})
        decoder = kiss.KissDecoder()
        stop = asyncio.ensure_future(self._stopping.wait())
        error = "the TNC closed the connection"
        try:
            while True:
                read = asyncio.ensure_future(reader.read(4096))
                done, _ = await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    read.cancel()
                    error = "stopped"
                    break
                chunk = read.result()
                if not chunk:
                    break
                dropped = decoder.dropped
                for frame in decoder.feed(chunk):
                    if not frame.is_data or frame.port != 0:
                        self.dropped_in += 1
                        continue
                    self.frames_in += 1
                    try:
                        result = self.on_frame(frame.data)
                        if asyncio.iscoroutine(result):
                            await result
                    except Exception:
                        logger.exception("handling a frame from the TNC failed")
                self.dropped_in += decoder.dropped - dropped
        except (OSError, ConnectionError) as exc:
            error = f"connection to {self.endpoint} failed: {exc}"
        finally:
            stop.cancel()
            self._connected.clear()
            self._writer = None
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)
        return error

    async def send(self, frame: bytes) -> None:
        """Hand one AX.25 frame (no FCS) to the TNC; `TncError` when none is connected."""
        async with self._send_lock:
            writer = self._writer
            if writer is None or not self.connected:
                raise TncError(f"no TNC connected ({self.endpoint} is {self.state})")
            data = kiss.encode(frame)
            try:
                writer.write(data)
                await asyncio.wait_for(writer.drain(), CONNECT_TIMEOUT)
            except (OSError, ConnectionError, TimeoutError) as exc:
                raise TncError(f"sending to {self.endpoint} failed: {exc}") from exc
            self.frames_out += 1
            self.bytes_out += len(frame)

    async def set_parameter(self, command: int, value: int) -> None:
        """Set a KISS parameter (TXDELAY, persistence, slot time, ...): now if a TNC is
        connected, and again at every later connection."""
        if self.parameters.get(command) == value:
            return
        self.parameters[command] = value
        async with self._send_lock:
            writer = self._writer
            if writer is None or not self.connected:
                return  # sent on connect
            try:
                writer.write(kiss.encode_parameter(command, value))
                await asyncio.wait_for(writer.drain(), CONNECT_TIMEOUT)
            except (OSError, ConnectionError, TimeoutError) as exc:
                logger.warning("TNC parameter not sent", extra={
                    "tnc": str(self.endpoint), "command": command, "error": str(exc)})

    async def stop(self) -> None:
        self._stopping.set()
