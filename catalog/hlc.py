"""Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", OPODIS 2014).

A timestamp is 48 bits of wall-clock milliseconds plus a 16-bit counter, packed into one 64-bit
integer (`wall_ms << 16 | counter`), with the station id as the tie-breaker between two stations
that stamped the same instant. Timestamps order causally: a station that has seen timestamp `t`
only issues timestamps greater than `t`, even when its own wall clock is behind.

One station with a clock running far ahead must not drag every clock of the mesh into the future,
so a remote timestamp more than `max_skew_ms` ahead of local wall time is clamped to
`local + max_skew_ms` before it is merged; `receive` reports the clamp so the caller can log it.

Text form: 16 hex digits (the packed integer, so text order is numeric order) + `-` + station id,
e.g. `018c2f1e9a3b0001-3f2a...`. No Django imports: this module is used by the reconciliation
protocol, the benchmarks and the models alike.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

WALL_BITS = 48
COUNTER_BITS = 16
MAX_WALL_MS = (1 << WALL_BITS) - 1
MAX_COUNTER = (1 << COUNTER_BITS) - 1
MAX_PACKED = (1 << (WALL_BITS + COUNTER_BITS)) - 1
NODE_PATTERN = re.compile(r"^[0-9A-Za-z_.:/-]{1,64}$")
_TEXT_PATTERN = re.compile(r"^([0-9a-f]{16})-(.+)$")


class ClockError(ValueError):
    """A timestamp that cannot be parsed or is out of range."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, order=True, slots=True)
class Timestamp:
    """One HLC reading; ordered by (wall_ms, counter, node)."""

    wall_ms: int
    counter: int
    node: str

    def __post_init__(self) -> None:
        if not 0 <= self.wall_ms <= MAX_WALL_MS:
            raise ClockError(f"wall time {self.wall_ms} ms does not fit in 48 bits")
        if not 0 <= self.counter <= MAX_COUNTER:
            raise ClockError(f"counter {self.counter} does not fit in 16 bits")
        if not NODE_PATTERN.match(self.node):
            raise ClockError(f"station id {self.node!r} is not 1-64 characters of [0-9A-Za-z_.:/-]")

    @property
    def packed(self) -> int:
        """The 64-bit integer form (without the tie-breaker)."""
        return (self.wall_ms << COUNTER_BITS) | self.counter

    @classmethod
    def from_packed(cls, packed: int, node: str) -> Timestamp:
        if not 0 <= packed <= MAX_PACKED:
            raise ClockError(f"packed timestamp {packed} does not fit in 64 bits")
        return cls(packed >> COUNTER_BITS, packed & MAX_COUNTER, node)

    def __str__(self) -> str:
        return f"{self.packed:016x}-{self.node}"

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        """Parse the text form; raises ClockError naming what is wrong."""
        if not isinstance(text, str):
            raise ClockError("a timestamp must be a string like '018c2f1e9a3b0001-<station id>'")
        match = _TEXT_PATTERN.match(text)
        if not match:
            raise ClockError(
                f"timestamp {text[:80]!r} is not 16 lowercase hex digits, '-', station id")
        return cls.from_packed(int(match.group(1), 16), match.group(2))


@dataclass(frozen=True, slots=True)
class Received:
    """What `HybridLogicalClock.receive` did with a remote timestamp."""

    timestamp: Timestamp  # the local clock after merging
    clamped: bool  # the remote wall time was more than max_skew_ms ahead of ours
    skew_ms: int  # remote wall time minus local wall time (positive: remote ahead)


class HybridLogicalClock:
    """A thread-safe HLC for one station. `physical` returns wall-clock milliseconds (tests
    pass their own to simulate skew)."""

    def __init__(self, node: str, *, max_skew_ms: int = 60_000,
                 physical: Callable[[], int] = wall_clock_ms) -> None:
        if max_skew_ms < 0:
            raise ClockError("max_skew_ms must not be negative")
        Timestamp(0, 0, node)  # validates the node id
        self.node = node
        self.max_skew_ms = max_skew_ms
        self._physical = physical
        self._wall = 0
        self._counter = 0
        self._lock = threading.Lock()

    def _advance(self, wall: int, counter: int) -> Timestamp:
        # A counter overflow (65,536 events in one millisecond) borrows the next millisecond.
        if counter > MAX_COUNTER:
            wall, counter = wall + 1, 0
        if wall > MAX_WALL_MS:
            raise ClockError("the clock ran past the year 10889")
        self._wall, self._counter = wall, counter
        return Timestamp(wall, counter, self.node)

    def now(self) -> Timestamp:
        """A timestamp for a local event (publishing, sending): greater than every timestamp
        this clock has issued or received."""
        with self._lock:
            physical = self._physical()
            if physical > self._wall:
                return self._advance(physical, 0)
            return self._advance(self._wall, self._counter + 1)

    def receive(self, remote: Timestamp) -> Received:
        """Merge a timestamp from another station. A remote wall time more than max_skew_ms
        ahead of local wall time is clamped to `local + max_skew_ms` first."""
        with self._lock:
            physical = self._physical()
            skew = remote.wall_ms - physical
            remote_wall, remote_counter = remote.wall_ms, remote.counter
            clamped = skew > self.max_skew_ms
            if clamped:
                remote_wall, remote_counter = physical + self.max_skew_ms, 0
            wall = max(self._wall, remote_wall, physical)
            if wall == self._wall == remote_wall:
                counter = max(self._counter, remote_counter) + 1
            elif wall == self._wall:
                counter = self._counter + 1
            elif wall == remote_wall:
                counter = remote_counter + 1
            else:
                counter = 0
            return Received(self._advance(wall, counter), clamped, skew)

    def peek(self) -> Timestamp:
        """The last timestamp issued or merged, without advancing."""
        with self._lock:
            return Timestamp(self._wall, self._counter, self.node)
