"""Air-time accounting for the RF link (no Django imports).

`AirtimeBucket` is a token bucket whose tokens are seconds of air time: it refills at `share`
seconds per second (`MESHSITE_RF_AIRTIME_SHARE`, 0.10: a tenth of the channel) up to
`capacity`, and background traffic (beacons, routing, sync) may start a message only while the
bucket is not in debt; the message's air time is then taken, possibly into debt, so a message
longer than the bucket still goes, and over any window of W seconds background traffic uses at
most `capacity + share * W` plus one message. Requests an operator or a client makes are not
held by the bucket (they are what the channel is for) and go first.

`SyncPacer` holds the same rule on a LAN/IP link: its tokens are seconds of the link's time at
the bandwidth `mesh.link_cost` measured for it, refilled at `MESHSITE_MESH_SYNC_SHARE` (0.10),
so sync (trust, catalog) uses at most that share of every link, whatever its kind.

`AirtimeLedger` adds up what went on the air per kind of traffic, for `/api/status` and the
benchmark.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from mesh.ax25 import air_time


@dataclass
class AirtimeBucket:
    share: float
    capacity: float
    tokens: float = 0.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ValueError(f"air-time share {self.share} must be above 0 and at most 1")
        if self.capacity <= 0:
            raise ValueError(f"bucket capacity {self.capacity} must be positive")
        self.tokens = self.capacity

    @classmethod
    def for_channel(cls, *, share: float, now: float, window: float = 60.0) -> AirtimeBucket:
        """A bucket holding `window` seconds of the share (6 s of air at 10 % by default)."""
        bucket = cls(share=share, capacity=share * window)
        bucket.updated = now
        return bucket

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.share)
            self.updated = now

    def ready(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= 0

    def wait_time(self, now: float) -> float:
        """Seconds until background traffic may start again (0: now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 0 else -self.tokens / self.share

    def take(self, seconds: float, now: float) -> None:
        self._refill(now)
        self.tokens -= seconds

    def set_share(self, share: float, now: float) -> None:
        """Refill at `share` from now on, holding the same window's worth (a debt stays)."""
        if not 0 < share <= 1:
            raise ValueError(f"air-time share {share} must be above 0 and at most 1")
        self._refill(now)
        window = self.capacity / self.share
        self.share, self.capacity = share, share * window
        self.tokens = min(self.tokens, self.capacity)


@dataclass
class AirtimeLedger:
    bitrate: int
    txdelay: float
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    frames: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def cost(self, frame_bytes: int, *, keyed: bool = False) -> float:
        """Air time of one frame; `keyed`: it follows another in the same transmission (the
        TNC sends what it has queued in one keying, with one TXDELAY)."""
        return air_time(frame_bytes, bitrate=self.bitrate,
                        txdelay=0.0 if keyed else self.txdelay)

    def record(self, kind: str, frame_bytes: int, *, keyed: bool = False) -> float:
        seconds = self.cost(frame_bytes, keyed=keyed)
        self.seconds[kind] += seconds
        self.frames[kind] += 1
        self.bytes[kind] += frame_bytes
        return seconds

    def total(self) -> float:
        return sum(self.seconds.values())

    def shares(self) -> dict[str, float]:
        total = self.total()
        return {kind: (value / total if total else 0.0) for kind, value in self.seconds.items()}

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {kind: {"seconds": round(self.seconds[kind], 3), "frames": self.frames[kind],
                       "bytes": self.bytes[kind]} for kind in sorted(self.seconds)}


class SyncPacer:
    """Sync traffic on one link within `share` of its bandwidth: `wait(nbytes, bandwidth_bps,
    now)` returns 0 and charges the message (its bytes at the bandwidth, in seconds of link
    time), or the seconds to wait before asking again. Unknown bandwidth: no pacing."""

    def __init__(self, *, share: float, now: float, window: float = 60.0) -> None:
        self.bucket = AirtimeBucket.for_channel(share=share, now=now, window=window)

    def wait(self, nbytes: int, bandwidth_bps: float | None, now: float) -> float:
        if not bandwidth_bps or bandwidth_bps <= 0:
            return 0.0
        if not self.bucket.ready(now):
            # At least a millisecond: a debt of a rounding error must still let time pass.
            return max(self.bucket.wait_time(now), 0.001)
        self.bucket.take(nbytes / bandwidth_bps, now)
        return 0.0
