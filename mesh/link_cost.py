"""Link cost: one additive routing cost per link, from what the link itself measures (no Django).

The distance-vector table (`mesh.distance_vector`) adds link costs along a path, so a cost must
grow with everything that makes a link worse and never shrink when a link gets worse:

    cost = ceil((base + rtt_penalty(srtt)) * etx(loss) + bandwidth_penalty(bandwidth))

- `base` is the floor of a live link of that kind. A LAN/IP hop costs at least 96, Babel's cost
  for a wired hop (RFC 8966 appendix A.2.1). The radio link passes its own, larger base; the link
  kind enters the cost only through `base`.
- RTT penalty: Babel's RTT extension (draft-ietf-babel-rtt-extension, babeld's defaults):
  nothing below `rtt_min` (10 ms), rising linearly to `max_rtt_penalty` (150) at `rtt_max`
  (120 ms), flat above. The flat top is on purpose: a congested link's RTT grows with its own
  load, and an unbounded penalty would make routes swing between paths as traffic moves; loss and
  bandwidth still tell slow links apart above 120 ms.
- Loss multiplies, ETX-style: the RTT comes from the link's own pings, which cross the link both
  ways, so the success ratio of a window of pings is the product of both directions' delivery
  ratios and 1 / (1 - loss) is the expected number of transmissions (ETX). A link that answers
  no ping in its window is dead: INFINITY.
- A slow link adds: one base LAN hop (96) per 1 Mbit/s of shortfall, i.e. 96 * 125000 / bytes
  per second (a 100 Mbit/s LAN adds 1, a 1 Mbit/s uplink 96, a 10 kB/s link 1200), capped at
  2048 so a few slow hops still add up to less than INFINITY. Unknown bandwidth adds nothing.
  The estimate comes from the link's own pings too: every `PROBE_EVERY`-th one carries
  `PROBE_BYTES` of padding, and the time it takes over a plain ping's is what the padding needed
  to cross (`bandwidth_sample`; a difference lost in the noise says "at least 4 MB/s", a
  penalty of 3). The estimate is the largest of the last `BANDWIDTH_WINDOW` samples (BBR's
  windowed max filter): a busy host or a pause delays a padded ping and makes a fast link look
  slow, never the other way round, so one slow sample must not swing routes; a link that really
  got slower shows it once its fast samples have left the window (about a minute of pings).

A live link (loss < 1) never costs more than INFINITY - 1; INFINITY (0xFFFF) means unreachable
and is what a retraction carries.
"""

from __future__ import annotations

import math
from collections import deque

INFINITY = 0xFFFF
LAN_BASE = 96
RTT_MIN_S = 0.010
RTT_MAX_S = 0.120
MAX_RTT_PENALTY = 150
BANDWIDTH_REFERENCE_BPS = 125_000  # 1 Mbit/s in bytes per second: it adds one LAN base
MAX_BANDWIDTH_PENALTY = 2048
PING_WINDOW = 16  # pings in the loss window (babeld keeps a 16-hello history)
BANDWIDTH_WINDOW = 8  # bandwidth samples the estimate is the largest of
RTT_SMOOTHING = 1 / 8  # weight of a new RTT sample, as TCP's SRTT


def rtt_penalty(rtt_s: float, *, rtt_min: float = RTT_MIN_S, rtt_max: float = RTT_MAX_S,
                max_penalty: int = MAX_RTT_PENALTY) -> float:
    """Babel's RTT penalty: 0 up to `rtt_min`, linear to `max_penalty` at `rtt_max`, flat above."""
    if rtt_s <= rtt_min:
        return 0.0
    if rtt_s >= rtt_max:
        return float(max_penalty)
    return max_penalty * (rtt_s - rtt_min) / (rtt_max - rtt_min)


def bandwidth_penalty(bandwidth_bps: float | None) -> float:
    """What a slow link adds: one LAN base per 1 Mbit/s of shortfall, capped; 0 when unknown."""
    if bandwidth_bps is None:
        return 0.0
    if bandwidth_bps <= 0:
        return float(MAX_BANDWIDTH_PENALTY)
    return min(float(MAX_BANDWIDTH_PENALTY), LAN_BASE * BANDWIDTH_REFERENCE_BPS / bandwidth_bps)


def cost(*, rtt_s: float | None, loss: float, bandwidth_bps: float | None = None,
         base: int = LAN_BASE, rtt_min: float = RTT_MIN_S, rtt_max: float = RTT_MAX_S,
         max_rtt_penalty: int = MAX_RTT_PENALTY) -> int:
    """The additive cost of one link (see the module docstring for the rule).

    `rtt_s` is the smoothed round-trip time in seconds (None before the first answered ping:
    no penalty), `loss` the fraction of pings lost in [0, 1], `bandwidth_bps` an estimate in
    bytes per second (None if unknown), `base` the floor for this kind of link. Returns an
    integer in [base, INFINITY - 1] for a live link, INFINITY when every ping was lost.
    """
    if base < 1 or base >= INFINITY:
        raise ValueError(f"link cost base must be between 1 and {INFINITY - 1}, got {base}")
    if not 0.0 <= loss <= 1.0 or math.isnan(loss):
        raise ValueError(f"loss must be a ratio between 0 and 1, got {loss}")
    if loss >= 1.0:
        return INFINITY
    penalty = 0.0 if rtt_s is None else rtt_penalty(
        rtt_s, rtt_min=rtt_min, rtt_max=rtt_max, max_penalty=max_rtt_penalty)
    value = (base + penalty) / (1.0 - loss) + bandwidth_penalty(bandwidth_bps)
    return min(INFINITY - 1, math.ceil(value))


PROBE_BYTES = 8192  # padding of the bandwidth probe (every PROBE_EVERY-th ping)
PROBE_EVERY = 8


PROBE_RESOLUTION = 0.002  # seconds: below this the timer and scheduling noise of a busy host


def bandwidth_sample(nbytes: int, rtt_padded: float, rtt_plain: float | None) -> float | None:
    """A bandwidth estimate (bytes per second) from a ping padded with `nbytes` against the
    link's plain round trip: the extra time is what the padding took to cross. A difference
    under PROBE_RESOLUTION (a fast LAN, or jitter) counts as that resolution: "at least this
    fast", which lets an estimate lowered by a busy moment recover. None without a plain RTT."""
    if rtt_plain is None or nbytes <= 0:
        return None
    return nbytes / max(rtt_padded - rtt_plain, PROBE_RESOLUTION)


class LinkStats:
    """Measurements of one link, kept by whoever pings it; `cost()` folds them into one number.

    `record_ping(ok, rtt)` after every ping (ok=False when it timed out): the RTT is smoothed
    (weight 1/8 per sample), the loss is the ratio of failures among the last `window` pings.
    `record_throughput(nbytes, seconds)` feeds the optional bandwidth estimate from a transfer
    that kept the link busy (the largest of the last `BANDWIDTH_WINDOW` samples).
    """

    def __init__(self, *, base: int = LAN_BASE, window: int = PING_WINDOW,
                 bandwidth_bps: float | None = None) -> None:
        if window < 1:
            raise ValueError(f"the ping window must hold at least one ping, got {window}")
        self.base = base
        self.srtt: float | None = None
        self.bandwidth_bps = bandwidth_bps
        self._pings: deque[bool] = deque(maxlen=window)
        self._bandwidth: deque[float] = deque(maxlen=BANDWIDTH_WINDOW)

    def record_ping(self, ok: bool, rtt: float | None = None) -> None:
        """One ping: answered (`ok`, with its round-trip time in seconds) or lost."""
        self._pings.append(ok)
        if ok and rtt is not None:
            if rtt < 0 or math.isnan(rtt):
                raise ValueError(f"a round-trip time cannot be negative, got {rtt}")
            if self.srtt is None:
                self.srtt = rtt
            else:
                self.srtt += RTT_SMOOTHING * (rtt - self.srtt)

    def record_throughput(self, nbytes: int, seconds: float) -> None:
        """A transfer of `nbytes` that took `seconds` with the link busy: a bandwidth sample."""
        if nbytes <= 0 or seconds <= 0:
            return
        self._bandwidth.append(nbytes / seconds)
        self.bandwidth_bps = max(self._bandwidth)

    def loss(self) -> float:
        """Fraction of the pings in the window that went unanswered (0 before any ping)."""
        if not self._pings:
            return 0.0
        return self._pings.count(False) / len(self._pings)

    def cost(self) -> int:
        """The link's current cost (INFINITY once a whole window of pings went unanswered)."""
        return cost(rtt_s=self.srtt, loss=self.loss(), bandwidth_bps=self.bandwidth_bps,
                    base=self.base)


RF_MAX_BASE = 6000  # ten RF hops (the hop limit) still add up to less than INFINITY
RF_BITRATE_TERM = 2_400_000  # bit/s: 2000 at 1200 bit/s, 250 at 9600


def rf_base(bitrate: int) -> int:
    """The fixed cost of an RF link at `bitrate` bit/s: the costliest lossless LAN hop this
    module can describe (`LAN_BASE` + `MAX_RTT_PENALTY` + `MAX_BANDWIDTH_PENALTY`, 2294) plus
    a term falling with the bit rate (`RF_BITRATE_TERM / bitrate`), capped at `RF_MAX_BASE`.
    So any RF hop costs more than any lossless LAN hop, however slow: 4294 at 1200 bit/s, 2544
    at 9600. RF links are not pinged (air time), so this is their whole cost."""
    if bitrate <= 0:
        raise ValueError(f"a bit rate must be positive, got {bitrate}")
    slowest_lan = LAN_BASE + MAX_RTT_PENALTY + MAX_BANDWIDTH_PENALTY
    return min(RF_MAX_BASE, slowest_lan + math.ceil(RF_BITRATE_TERM / bitrate))
