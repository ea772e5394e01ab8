"""AX.25 UI frames: address bytes as AX.25 v2.2 section 3.12 gives them, SSIDs, digipeater
paths with the has-been-repeated bit, all four C/R bit combinations, the limits, and clear
errors for bytes that are not a UI frame (hypothesis: decoding noise never raises anything
but Ax25Error)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.ax25 import Address, Ax25Error, Frame, NotUIFrame


def test_address_bytes_from_the_specification() -> None:
    # v2.2 figure 3.5 example: destination "NJ7P" SSID 0 and source "N7LEM" SSID 0.
    assert Address("NJ7P", 0, True).encode(last=False) == bytes.fromhex("9c946ea04040e0")
    assert Address("N7LEM", 0, False).encode(last=True) == bytes.fromhex("9c6e988a9a4061")


def test_ui_frame_encodes_to_known_bytes() -> None:
    frame = Frame.ui(source="N0CALL-1", destination="APRS", digipeaters=("WIDE1-1",),
                     info=b">test")
    expected = bytes.fromhex(
        "82a0a4a64040e0"  # APRS: C=1 (a command), RR=11, SSID 0, E=0
        "9c608682989862"  # N0CALL-1: C=0, RR=11, SSID 1, E=0
        "ae92888a624063"  # WIDE1-1: H=0 (not repeated yet), RR=11, SSID 1, E=1 (last)
        "03f03e74657374")  # UI, PID F0 (no layer 3), ">test"
    assert frame.encode() == expected
    decoded = Frame.decode(expected)
    assert decoded == frame
    assert str(decoded) == "N0CALL-1>APRS,WIDE1-1"
    assert decoded.kind == "command"


def test_frame_direwolf_encodes() -> None:
    # Direwolf 1.6 (gen_packets, read back with atest -h) sets the C bit of both the destination
    # and the source (v1 style): such frames must decode.
    raw = bytes.fromhex("82a0a4a64040e0" "9c6086829898e2" "ae92888a624063" "03f03e746573740a")
    frame = Frame.decode(raw)
    assert str(frame) == "N0CALL-1>APRS,WIDE1-1"
    assert (frame.kind, frame.pid, frame.info) == ("v1", 0xF0, b">test\n")


@pytest.mark.parametrize(("dest_c", "src_c", "kind"), [
    (True, False, "command"), (False, True, "response"), (False, False, "v1"), (True, True, "v1")])
def test_all_four_command_response_combinations_are_accepted(
        dest_c: bool, src_c: bool, kind: str) -> None:
    raw = bytearray(Frame.ui(source="K1ABC-10", destination="MESH", info=b"hi").encode())
    raw[6] = (raw[6] & 0x7F) | (0x80 if dest_c else 0)
    raw[13] = (raw[13] & 0x7F) | (0x80 if src_c else 0)
    frame = Frame.decode(bytes(raw))
    assert frame.kind == kind
    assert (str(frame.source), frame.info) == ("K1ABC-10", b"hi")


def test_reserved_bits_clear_are_accepted() -> None:
    raw = bytearray(Frame.ui(source="K1ABC", destination="MESH", info=b"").encode())
    raw[6] &= ~0x60 & 0xFF
    raw[13] &= ~0x60 & 0xFF
    assert str(Frame.decode(bytes(raw)).source) == "K1ABC"


def test_digipeater_path_and_repeated_bit() -> None:
    path = tuple(Address.parse(text) for text in ("RELAY*", "WIDE2-2", "A1-1", "B2-2", "C3-3",
                                                   "D4-4", "E5-5", "F6-15"))
    frame = Frame.ui(source="K1ABC-10", destination="MESH", digipeaters=path, info=b"x")
    decoded = Frame.decode(frame.encode())
    assert decoded.digipeaters == path
    assert decoded.digipeaters[0].flag and not decoded.digipeaters[1].flag
    assert str(decoded).startswith("K1ABC-10>MESH,RELAY*,WIDE2-2,")


def test_poll_bit_ui_is_accepted_and_other_controls_are_not() -> None:
    raw = bytearray(Frame.ui(source="K1ABC", destination="MESH", info=b"p").encode())
    raw[14] = 0x13
    assert Frame.decode(bytes(raw)).poll
    raw[14] = 0x3F  # SABM
    with pytest.raises(NotUIFrame, match="0x3F"):
        Frame.decode(bytes(raw))


def test_info_field_limit() -> None:
    Frame.ui(source="K1ABC", destination="MESH", info=b"x" * 256).encode()
    with pytest.raises(Ax25Error, match="257 bytes is longer than 256"):
        Frame.ui(source="K1ABC", destination="MESH", info=b"x" * 257).encode()


@pytest.mark.parametrize(("text", "message"), [
    ("TOOLONG1", "1 to 6"), ("k1abc-16", "SSID 16"), ("K1ABC-X", "bad SSID"), ("", "1 to 6"),
    ("K1-AB", "bad SSID"), ("K1/ABC", "1 to 6")])
def test_bad_addresses_are_named(text: str, message: str) -> None:
    with pytest.raises(Ax25Error, match=message):
        Address.parse(text)


def test_lower_case_is_upper_cased() -> None:
    assert str(Address.parse("k1abc-7")) == "K1ABC-7"


@pytest.mark.parametrize(("raw", "message"), [
    (b"", "ends inside its address field"),
    (bytes.fromhex("9c6e988a9a4061"), "only one address"),
    (Frame.ui(source="K1ABC", destination="MESH", info=b"").encode()[:14], "no control byte"),
    (Frame.ui(source="K1ABC", destination="MESH", info=b"").encode()[:15], "before its protocol"),
    (bytes.fromhex("9d6e988a9a4061"), "extension bit set"),
    (bytes(70) + b"\x03\xf0", "bad address"),
])
def test_malformed_frames_are_named(raw: bytes, message: str) -> None:
    with pytest.raises(Ax25Error, match=message):
        Frame.decode(raw)


def test_too_many_digipeaters() -> None:
    address = Address("A", 0).encode(last=False)
    with pytest.raises(Ax25Error, match="more than 8 digipeaters"):
        Frame.decode(address * 11 + Address("B").encode(last=True) + b"\x03\xf0")
    with pytest.raises(Ax25Error, match="at most 8"):
        Frame.ui(source="K1ABC", destination="MESH", info=b"", digipeaters=("A",) * 9).encode()


calls = st.from_regex(r"[A-Z0-9]{1,6}", fullmatch=True)
addresses = st.builds(Address, calls, st.integers(0, 15), st.booleans())


@given(source=addresses, destination=addresses, digis=st.lists(addresses, max_size=8),
       info=st.binary(max_size=256), pid=st.integers(0, 255))
def test_round_trip(source: Address, destination: Address, digis: list[Address], info: bytes,
                    pid: int) -> None:
    frame = Frame(destination=destination, source=source, info=info,
                  digipeaters=tuple(digis), pid=pid)
    assert Frame.decode(frame.encode()) == frame


@settings(max_examples=500)
@given(st.binary(max_size=120))
def test_fuzz_decode_raises_only_ax25_errors(raw: bytes) -> None:
    try:
        frame = Frame.decode(raw)
    except Ax25Error:
        return
    assert Frame.decode(frame.encode(max_info=4096)) == frame
