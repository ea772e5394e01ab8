"""AX.25 v2.2 UI frames, as a KISS TNC takes and gives them (no Django imports, no FCS).

A frame is the address field (destination, source, then up to eight digipeaters, seven bytes
each), the control byte, and for a UI frame the protocol identifier and the information field.
Each address is six callsign characters shifted left by one bit and padded with spaces, then
an SSID byte `C R R S S S S E`: C is the command/response bit (on a digipeater address, the
has-been-repeated bit H), R R are reserved (sent as 1 1), S S S S the SSID and E is 1 on the
last address only.

The C bits of destination and source say command (1, 0) or response (0, 1) in AX.25 v2; v1
stations send (0, 0) or (1, 1). All four appear on the air, so all four are accepted; this
station sends commands. Control 0x03 is UI (0x13 with the poll bit, also accepted); the mesh
uses PID 0xF0 (no layer 3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

UI_CONTROL = 0x03
POLL_BIT = 0x10
PID_NO_LAYER3 = 0xF0
MAX_DIGIPEATERS = 8
DEFAULT_MAX_INFO = 256
# Decoding accepts longer fields than we send: some TNCs and stations use a larger N1.
DECODE_MAX_INFO = 2048

_CALL_RE = re.compile(r"^[A-Z0-9]{1,6}$")


class Ax25Error(ValueError):
    """Bytes that are not an AX.25 frame, or an address or frame that cannot be encoded."""


class NotUIFrame(Ax25Error):
    """A well-formed AX.25 frame that is not a UI frame (connected-mode traffic)."""


@dataclass(frozen=True)
class Address:
    """A callsign with its SSID; `flag` is the C bit (or H, has been repeated, on digipeaters)."""

    callsign: str
    ssid: int = 0
    flag: bool = False

    def __post_init__(self) -> None:
        if not _CALL_RE.match(self.callsign):
            raise Ax25Error(
                f"callsign {self.callsign!r} is not valid for AX.25: expected 1 to 6 upper-case "
                "letters or digits")
        if not 0 <= self.ssid <= 15:
            raise Ax25Error(
                f"SSID {self.ssid} of {self.callsign} is out of range: expected 0 to 15")

    @classmethod
    def parse(cls, text: str, *, flag: bool = False) -> Address:
        """`N0CALL`, `N0CALL-7`, or a digipeater written `WIDE1-1*` (repeated)."""
        value = text.strip().upper()
        if value.endswith("*"):
            flag = True
            value = value[:-1]
        call, sep, ssid_text = value.partition("-")
        ssid = 0
        if sep:
            if not ssid_text.isdigit():
                raise Ax25Error(f"address {text!r} has a bad SSID: expected CALL-N with N 0 to 15")
            ssid = int(ssid_text)
        return cls(call, ssid, flag)

    def __str__(self) -> str:
        return self.callsign if self.ssid == 0 else f"{self.callsign}-{self.ssid}"

    def encode(self, *, last: bool) -> bytes:
        padded = self.callsign.ljust(6).encode("ascii")
        ssid_byte = (0x80 if self.flag else 0) | 0x60 | (self.ssid << 1) | (1 if last else 0)
        return bytes(c << 1 for c in padded) + bytes([ssid_byte])

    @classmethod
    def decode(cls, raw: bytes) -> tuple[Address, bool]:
        """Seven bytes -> (address, is last address)."""
        if len(raw) != 7:
            raise Ax25Error(f"an address is 7 bytes, got {len(raw)}")
        chars = []
        for index, byte in enumerate(raw[:6]):
            if byte & 1:
                raise Ax25Error(f"address byte {index} has its extension bit set: "
                                "the address field ends in the middle of a callsign")
            chars.append(byte >> 1)
        text = bytes(chars).decode("ascii", errors="replace").rstrip(" ")
        ssid_byte = raw[6]
        try:
            address = cls(text, (ssid_byte >> 1) & 0x0F, bool(ssid_byte & 0x80))
        except Ax25Error as exc:
            raise Ax25Error(f"bad address in frame: {exc}") from exc
        return address, bool(ssid_byte & 1)


@dataclass(frozen=True)
class Frame:
    """An AX.25 UI frame. `command` is set from the C bits: see `kind`."""

    destination: Address
    source: Address
    info: bytes = b""
    digipeaters: tuple[Address, ...] = field(default_factory=tuple)
    pid: int = PID_NO_LAYER3
    poll: bool = False

    @classmethod
    def ui(cls, *, source: str | Address, destination: str | Address, info: bytes,
           digipeaters: tuple[str | Address, ...] = (), pid: int = PID_NO_LAYER3) -> Frame:
        """A UI command frame (destination C=1, source C=0), as this station sends them."""
        src = source if isinstance(source, Address) else Address.parse(source)
        dst = destination if isinstance(destination, Address) else Address.parse(destination)
        digis = tuple(d if isinstance(d, Address) else Address.parse(d) for d in digipeaters)
        return cls(destination=Address(dst.callsign, dst.ssid, True),
                   source=Address(src.callsign, src.ssid, False),
                   info=bytes(info), digipeaters=digis, pid=pid)

    @property
    def kind(self) -> str:
        """`command` or `response` (AX.25 v2), `v1` when both C bits are equal."""
        if self.destination.flag == self.source.flag:
            return "v1"
        return "command" if self.destination.flag else "response"

    def encode(self, *, max_info: int = DEFAULT_MAX_INFO) -> bytes:
        if len(self.digipeaters) > MAX_DIGIPEATERS:
            raise Ax25Error(f"{len(self.digipeaters)} digipeaters: AX.25 allows at most "
                            f"{MAX_DIGIPEATERS}")
        if len(self.info) > max_info:
            raise Ax25Error(f"information field of {len(self.info)} bytes is longer than "
                            f"{max_info}: fragment it first")
        if not 0 <= self.pid <= 255:
            raise Ax25Error(f"PID {self.pid} is out of range: expected 0 to 255")
        addresses = [self.destination, self.source, *self.digipeaters]
        out = bytearray()
        for index, address in enumerate(addresses):
            out += address.encode(last=index == len(addresses) - 1)
        out.append(UI_CONTROL | (POLL_BIT if self.poll else 0))
        out.append(self.pid)
        out += self.info
        return bytes(out)

    @classmethod
    def decode(cls, raw: bytes, *, max_info: int = DECODE_MAX_INFO) -> Frame:
        """Parse a frame as a KISS TNC delivers it; `NotUIFrame` for connected-mode frames."""
        addresses: list[Address] = []
        offset = 0
        last = False
        while not last:
            if len(addresses) == 2 + MAX_DIGIPEATERS:
                raise Ax25Error(f"address field has more than {MAX_DIGIPEATERS} digipeaters")
            if offset + 7 > len(raw):
                raise Ax25Error(f"frame of {len(raw)} bytes ends inside its address field")
            address, last = Address.decode(bytes(raw[offset:offset + 7]))
            addresses.append(address)
            offset += 7
        if len(addresses) < 2:
            raise Ax25Error("address field has only one address: a frame needs a destination "
                            "and a source")
        if offset >= len(raw):
            raise Ax25Error("frame ends after its address field, with no control byte")
        control = raw[offset]
        if control & ~POLL_BIT & 0xFF != UI_CONTROL:
            raise NotUIFrame(f"control byte 0x{control:02X} is not a UI frame (0x03)")
        if offset + 1 >= len(raw):
            raise Ax25Error("UI frame ends before its protocol identifier (PID)")
        pid = raw[offset + 1]
        info = bytes(raw[offset + 2:])
        if len(info) > max_info:
            raise Ax25Error(f"information field of {len(info)} bytes is longer than {max_info}")
        return cls(destination=addresses[0], source=addresses[1], info=info,
                   digipeaters=tuple(addresses[2:]), pid=pid, poll=bool(control & POLL_BIT))

    def __str__(self) -> str:
        path = "".join(f",{d}{'*' if d.flag else ''}" for d in self.digipeaters)
        return f"{self.source}>{self.destination}{path}"


# HDLC around each frame on the air: an opening and a closing flag (0x7E) and the 16-bit FCS
# the TNC adds. Bit stuffing adds up to a fifth more in the worst case (a few per cent on
# typical data) and is not counted.
HDLC_OVERHEAD_BYTES = 4
DEFAULT_TXDELAY = 0.3  # seconds of preamble before the first frame of a transmission (Direwolf)


def air_time(frame_bytes: int, *, bitrate: int, txdelay: float = DEFAULT_TXDELAY) -> float:
    """Seconds on the air of one transmission of a frame of `frame_bytes` (as KISS carries it:
    addresses, control, PID and information field): TXDELAY, then the frame with its flags
    and FCS at the bit rate."""
    if bitrate <= 0:
        raise ValueError(f"bit rate {bitrate} must be positive")
    return txdelay + (frame_bytes + HDLC_OVERHEAD_BYTES) * 8 / bitrate
