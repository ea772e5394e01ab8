"""The hybrid logical clock: monotonic, causal, clamped against clocks running ahead."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog.hlc import ClockError, HybridLogicalClock, Timestamp


class FakeWall:
    """A wall clock the test sets: the radio-less station's clock is the one thing we fake."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_now_is_strictly_increasing_even_when_the_wall_clock_stands_or_goes_back() -> None:
    wall = FakeWall(1_000)
    clock = HybridLogicalClock("A", physical=wall)
    first = clock.now()
    second = clock.now()
    wall.ms = 500  # NTP stepped the clock back
    third = clock.now()
    assert first < second < third
    assert (first.wall_ms, first.counter) == (1_000, 0)
    assert (third.wall_ms, third.counter) == (1_000, 2)
    wall.ms = 2_000
    assert clock.now() == Timestamp(2_000, 0, "A")


def test_receive_moves_past_a_remote_timestamp_within_skew() -> None:
    wall = FakeWall(10_000)
    clock = HybridLogicalClock("B", max_skew_ms=60_000, physical=wall)
    remote = Timestamp(30_000, 7, "A")
    received = clock.receive(remote)
    assert not received.clamped
    assert received.skew_ms == 20_000
    assert received.timestamp == Timestamp(30_000, 8, "B")
    assert clock.now() > remote


def test_receive_clamps_a_remote_clock_too_far_ahead() -> None:
    wall = FakeWall(10_000)
    clock = HybridLogicalClock("B", max_skew_ms=5_000, physical=wall)
    received = clock.receive(Timestamp(10_000 + 3_600_000, 0, "A"))
    assert received.clamped
    assert received.skew_ms == 3_600_000
    assert received.timestamp.wall_ms == 15_000  # local + max skew, not an hour ahead


def test_counter_overflow_borrows_the_next_millisecond() -> None:
    clock = HybridLogicalClock("A", physical=FakeWall(5))
    clock.receive(Timestamp(5, 0xFFFE, "Z"))
    assert clock.peek() == Timestamp(5, 0xFFFF, "A")
    assert clock.now() == Timestamp(6, 0, "A")


def test_station_id_breaks_ties() -> None:
    assert Timestamp(1, 1, "AAA") < Timestamp(1, 1, "BBB")
    assert Timestamp(1, 2, "AAA") > Timestamp(1, 1, "ZZZ")


@pytest.mark.parametrize("text", [
    "", "nothex", "018c2f1e9a3b0001", "018C2F1E9A3B0001-A", "018c2f1e9a3b001-A",
    "018c2f1e9a3b0001-", "018c2f1e9a3b0001-bad id", "018c2f1e9a3b0001-" + "x" * 65,
])
def test_bad_text_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ClockError):
        Timestamp.parse(text)


def test_out_of_range_parts_are_refused() -> None:
    with pytest.raises(ClockError, match="48 bits"):
        Timestamp(1 << 48, 0, "A")
    with pytest.raises(ClockError, match="16 bits"):
        Timestamp(0, 1 << 16, "A")
    with pytest.raises(ClockError):
        HybridLogicalClock("A", max_skew_ms=-1)
    with pytest.raises(ClockError):
        Timestamp.parse(123)  # type: ignore[arg-type]


@given(st.integers(0, (1 << 48) - 1), st.integers(0, 0xFFFF),
       st.from_regex(r"[0-9A-Za-z]{1,20}", fullmatch=True))
def test_text_round_trips_and_sorts_like_timestamps(wall: int, counter: int, node: str) -> None:
    stamp = Timestamp(wall, counter, node)
    assert Timestamp.parse(str(stamp)) == stamp
    assert Timestamp.from_packed(stamp.packed, node) == stamp


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 10_000), st.integers(0, 20_000),
                          st.integers(0, 3)), max_size=60))
def test_every_issued_timestamp_exceeds_all_seen(events: list[tuple[bool, int, int, int]]) -> None:
    wall = FakeWall(0)
    clock = HybridLogicalClock("N", max_skew_ms=1_000, physical=wall)
    highest = None
    for is_receive, wall_ms, remote_ms, remote_counter in events:
        wall.ms = wall_ms
        if is_receive:
            result = clock.receive(Timestamp(remote_ms, remote_counter, "R"))
            stamp = result.timestamp
            assert result.clamped == (remote_ms - wall_ms > 1_000)
            assert stamp.wall_ms <= max(wall_ms + 1_000, highest.wall_ms if highest else 0) + 1
        else:
            stamp = clock.now()
        if highest is not None:
            assert (stamp.wall_ms, stamp.counter) > (highest.wall_ms, highest.counter)
        highest = stamp
