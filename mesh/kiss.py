"""KISS framing between a host and a TNC (no Django imports).

KISS (Chepponis and Karn, 1987) wraps each frame in FEND (0xC0) bytes. Inside a frame a FEND in
the data is sent as FESC TFEND (0xDB 0xDC) and a FESC as FESC TFESC (0xDB 0xDD). The first byte
of a frame names the TNC port (high nibble) and the command (low nibble): 0 carries an AX.25
frame, 1 to 6 set TXDELAY, persistence, slot time, TX tail, full duplex and a hardware value,
and the whole byte 0xFF leaves KISS mode. The TNC adds and checks the FCS; none appears here.

`KissDecoder` is incremental: feed it whatever a socket or serial port delivered, split or
joined anywhere, with line noise between frames, and it returns the frames completed so far.
A FEND always ends the frame in progress, so whatever garbage came before, the next frame that
starts with a FEND is decoded; a frame with a bad escape or longer than the limit is dropped
and counted, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

FEND = 0xC0
FESC = 0xDB
TFEND = 0xDC
TFESC = 0xDD

# An AX.25 frame with eight digipeaters and a 256-byte information field is 330 bytes; some
# TNCs pass longer ones. Anything past this between two FENDs is noise, not a frame.
DEFAULT_MAX_FRAME = 4096


class Command(IntEnum):
    DATA = 0
    TXDELAY = 1
    PERSISTENCE = 2
    SLOT_TIME = 3
    TX_TAIL = 4
    FULL_DUPLEX = 5
    SET_HARDWARE = 6


RETURN = 0xFF  # the whole type byte: leave KISS mode (no port)


class KissError(ValueError):
    """A KISS frame or parameter that cannot be encoded or decoded."""


@dataclass(frozen=True)
class KissFrame:
    port: int
    command: int
    data: bytes

    @property
    def is_data(self) -> bool:
        return self.command == Command.DATA

    @property
    def is_return(self) -> bool:
        return self.port == 0x0F and self.command == 0x0F


def escape(data: bytes) -> bytes:
    """Transparency: FEND and FESC in `data` become two-byte escapes."""
    return data.replace(bytes([FESC]), bytes([FESC, TFESC])).replace(
        bytes([FEND]), bytes([FESC, TFEND]))


def unescape(data: bytes) -> bytes:
    """The inverse of `escape`; a FESC not followed by TFEND or TFESC is an error."""
    out = bytearray()
    index = 0
    length = len(data)
    while index < length:
        byte = data[index]
        if byte == FEND:
            raise KissError(f"unescaped FEND (0xC0) at offset {index} inside a frame")
        if byte == FESC:
            if index + 1 >= length:
                raise KissError("frame ends in the middle of an escape (FESC 0xDB last)")
            following = data[index + 1]
            if following == TFEND:
                out.append(FEND)
            elif following == TFESC:
                out.append(FESC)
            else:
                raise KissError(
                    f"bad escape FESC 0x{following:02X} at offset {index}: expected 0xDC or 0xDD")
            index += 2
            continue
        out.append(byte)
        index += 1
    return bytes(out)


def _type_byte(port: int, command: int) -> int:
    if not 0 <= port <= 15:
        raise KissError(f"KISS port {port} is out of range: expected 0 to 15")
    if not 0 <= command <= 15:
        raise KissError(f"KISS command {command} is out of range: expected 0 to 15")
    return port << 4 | command


def encode(data: bytes, *, port: int = 0, command: int = Command.DATA) -> bytes:
    """One KISS frame: FEND, type byte, escaped data, FEND."""
    body = bytes([_type_byte(port, command)]) + bytes(data)
    return bytes([FEND]) + escape(body) + bytes([FEND])


def encode_parameter(command: int, value: int, *, port: int = 0) -> bytes:
    """A TNC parameter frame (TXDELAY and slot time in 10 ms units, persistence 0-255)."""
    if command == Command.DATA:
        raise KissError("command 0 carries data, not a parameter")
    if not 0 <= value <= 255:
        raise KissError(f"KISS parameter value {value} is out of range: expected 0 to 255")
    return encode(bytes([value]), port=port, command=command)


def encode_return() -> bytes:
    """The frame that takes a TNC out of KISS mode."""
    return bytes([FEND, RETURN, FEND])


class KissDecoder:
    """Incremental KISS decoder: `feed(chunk)` returns the frames that chunk completed."""

    def __init__(self, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 2:
            raise KissError("max_frame must allow at least the type byte and one data byte")
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._in_frame = False  # False until the first FEND: bytes before it are noise
        self._overflow = False
        self.dropped = 0  # frames discarded: bad escape, too long, or empty of a type byte
        self.noise_bytes = 0  # bytes seen before the first FEND

    def feed(self, chunk: bytes) -> list[KissFrame]:
        frames: list[KissFrame] = []
        start = 0
        view = memoryview(chunk)
        while start < len(chunk):
            end = chunk.find(FEND, start)
            if end < 0:
                self._take(view[start:])
                break
            self._take(view[start:end])
            frame = self._close()
            if frame is not None:
                frames.append(frame)
            start = end + 1
        return frames

    def _take(self, part: memoryview) -> None:
        if not part:
            return
        if not self._in_frame:
            self.noise_bytes += len(part)
            return
        if self._overflow:
            return
        # An escaped frame is at most twice its decoded length plus the type byte.
        if len(self._buffer) + len(part) > 2 * self.max_frame + 1:
            self._overflow = True
            self._buffer.clear()
            return
        self._buffer += part

    def _close(self) -> KissFrame | None:
        """A FEND: end the frame in progress (if any) and start the next."""
        was_in_frame = self._in_frame
        raw = bytes(self._buffer)
        overflow = self._overflow
        self._buffer.clear()
        self._overflow = False
        self._in_frame = True
        if not was_in_frame:
            return None
        if overflow:
            self.dropped += 1
            return None
        if not raw:
            return None  # back-to-back FENDs are allowed between frames
        try:
            body = unescape(raw)
        except KissError:
            self.dropped += 1
            return None
        if len(body) > self.max_frame + 1:
            self.dropped += 1
            return None
        type_byte = body[0]
        return KissFrame(port=type_byte >> 4, command=type_byte & 0x0F, data=body[1:])
