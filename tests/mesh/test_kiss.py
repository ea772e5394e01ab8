"""KISS framing: escapes as the specification gives them, parameter frames, and an incremental
decoder that survives split and joined reads, line noise, bad escapes and oversized frames
without ever losing the next good frame (hypothesis drives the noise and the splits)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh import kiss
from mesh.kiss import Command, KissDecoder, KissError, KissFrame


def decode_all(stream: bytes, *, cuts: list[int] | None = None, **options: int) -> list[KissFrame]:
    decoder = KissDecoder(**options)
    frames: list[KissFrame] = []
    edges = sorted({0, len(stream), *(c for c in (cuts or []) if 0 < c < len(stream))})
    for start, end in itertools.pairwise(edges):
        frames += decoder.feed(stream[start:end])
    return frames


# --- known bytes ----------------------------------------------------------------------------

def test_escapes_match_the_specification() -> None:
    # KISS spec, "transparency": FEND -> FESC TFEND, FESC -> FESC TFESC, nothing else changes.
    assert kiss.escape(b"\xc0") == b"\xdb\xdc"
    assert kiss.escape(b"\xdb") == b"\xdb\xdd"
    assert kiss.escape(b"A\xc0\xdbB") == b"A\xdb\xdc\xdb\xddB"
    assert kiss.escape(b"\xdc\xdd") == b"\xdc\xdd"  # TFEND/TFESC alone are plain data
    assert kiss.unescape(b"A\xdb\xdc\xdb\xddB") == b"A\xc0\xdbB"


def test_data_frame_bytes() -> None:
    assert kiss.encode(b"TEST") == b"\xc0\x00TEST\xc0"
    assert kiss.encode(b"\xc0", port=1) == b"\xc0\x10\xdb\xdc\xc0"
    # A type byte that is itself FEND or FESC (port 12, command 0) is escaped too.
    assert kiss.encode(b"x", port=12) == b"\xc0\xdb\xdcx\xc0"


def test_parameter_and_return_frames() -> None:
    # TXDELAY 50 (x 10 ms = 500 ms) on port 0; full duplex on on port 2; leave KISS mode.
    assert kiss.encode_parameter(Command.TXDELAY, 50) == b"\xc0\x01\x32\xc0"
    assert kiss.encode_parameter(Command.FULL_DUPLEX, 1, port=2) == b"\xc0\x25\x01\xc0"
    assert kiss.encode_return() == b"\xc0\xff\xc0"
    (frame,) = decode_all(kiss.encode_return())
    assert frame.is_return and not frame.is_data


def test_bad_parameters_are_refused_with_their_value() -> None:
    with pytest.raises(KissError, match="port 16"):
        kiss.encode(b"x", port=16)
    with pytest.raises(KissError, match="value 256"):
        kiss.encode_parameter(Command.TXDELAY, 256)
    with pytest.raises(KissError, match="carries data"):
        kiss.encode_parameter(Command.DATA, 1)


def test_unescape_errors_name_the_problem() -> None:
    with pytest.raises(KissError, match="bad escape FESC 0x41"):
        kiss.unescape(b"\xdbA")
    with pytest.raises(KissError, match="middle of an escape"):
        kiss.unescape(b"ab\xdb")


def test_frame_a_real_tnc_emits() -> None:
    # N0CALL-1>APRS,WIDE1-1:>test<LF> as Direwolf 1.6 encodes it (gen_packets, decoded back by
    # atest -h), wrapped the way its KISS port delivers a frame: FEND, port 0 data, FEND.
    wire = bytes.fromhex("c000" "82a0a4a64040e0" "9c6086829898e2" "ae92888a624063"
                         "03f03e746573740a" "c0")
    (frame,) = decode_all(wire)
    assert (frame.port, frame.command) == (0, 0)
    assert frame.data.startswith(b"\x82\xa0") and frame.data.endswith(b"\x03\xf0>test\n")


# --- incremental decoding -------------------------------------------------------------------

def test_split_and_joined_reads() -> None:
    stream = kiss.encode(b"one\xc0") + kiss.encode(b"two\xdb", port=3) + kiss.encode(b"three")
    whole = decode_all(stream)
    assert [f.data for f in whole] == [b"one\xc0", b"two\xdb", b"three"]
    assert whole[1].port == 3
    for cut in range(len(stream)):
        assert decode_all(stream, cuts=[cut]) == whole
    assert decode_all(stream, cuts=list(range(len(stream)))) == whole  # byte by byte


def test_noise_before_first_fend_and_between_frames() -> None:
    decoder = KissDecoder()
    assert decoder.feed(b"login: \xdb\x00junk") == []
    assert decoder.noise_bytes == 13
    frames = decoder.feed(kiss.encode(b"a") + b"\xdb\xc0" + kiss.encode(b"b") + b"\xc0\xc0\xc0")
    assert [f.data for f in frames] == [b"a", b"b"]
    assert decoder.dropped == 1  # the lone FESC before a FEND


def test_oversized_frame_is_dropped_and_the_next_one_kept() -> None:
    stream = kiss.encode(b"x" * 300) + kiss.encode(b"ok")
    frames = decode_all(stream, cuts=[5, 100, 200], max_frame=64)
    assert [f.data for f in frames] == [b"ok"]


def test_frame_at_the_limit_is_kept() -> None:
    (frame,) = decode_all(kiss.encode(b"\xc0" * 64), max_frame=64)
    assert frame.data == b"\xc0" * 64


frames_strategy = st.lists(
    st.tuples(st.integers(0, 15), st.binary(min_size=1, max_size=80)), min_size=1, max_size=4)


@settings(max_examples=400, deadline=None)
@given(noise=st.lists(st.binary(max_size=40), min_size=5, max_size=5), frames=frames_strategy,
       cuts=st.lists(st.integers(0, 600), max_size=12), max_frame=st.sampled_from([32, 4096]))
def test_fuzz_never_crashes_and_keeps_every_good_frame(
        noise: list[bytes], frames: list[tuple[int, bytes]], cuts: list[int],
        max_frame: int) -> None:
    """Noise anywhere (even FEND and FESC bytes, even a frame's worth) before, between and after
    good frames, split anywhere: every good frame comes out, in order."""
    stream = bytearray(noise[0])
    for index, (port, data) in enumerate(frames):
        stream += kiss.encode(data, port=port) + noise[1 + index % 4]
    good = [KissFrame(port, 0, data) for port, data in frames if len(data) <= max_frame]
    out = decode_all(bytes(stream), cuts=cuts, max_frame=max_frame)
    iterator = iter(out)
    assert all(any(frame == seen for seen in iterator) for frame in good), (good, out)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=8))
def test_fuzz_garbage_alone(stream: bytes, cuts: list[int]) -> None:
    for frame in decode_all(stream, cuts=cuts, max_frame=256):
        assert 0 <= frame.port <= 15 and 0 <= frame.command <= 15
        assert len(frame.data) <= 256


@given(st.binary(max_size=300), st.integers(0, 15), st.integers(0, 15))
def test_round_trip(data: bytes, port: int, command: int) -> None:
    encoded = kiss.encode(data, port=port, command=command)
    assert encoded.count(kiss.FEND) == 2
    assert decode_all(encoded) == [KissFrame(port, command, data)]
