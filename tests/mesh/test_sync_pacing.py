"""Sync traffic on a LAN/IP link stays within its share of the link's measured bandwidth
(`mesh.airtime.SyncPacer`, the token bucket LinkSession runs for every sync message), on a
simulated clock; and the fixed cost of an RF link lies above every lossless LAN hop."""

from __future__ import annotations

import pytest

from mesh import link_cost
from mesh.airtime import SyncPacer


def _send_all(pacer: SyncPacer, *, messages: int, size: int, bandwidth: float) -> float:
    """Send `messages` of `size` bytes as fast as the pacer allows; returns the clock at the
    end (each message also takes its own time on the link)."""
    now = 0.0
    for _ in range(messages):
        while (wait := pacer.wait(size, bandwidth, now)) > 0:
            now += wait
        now += size / bandwidth
    return now


@pytest.mark.parametrize("bandwidth", [12_500.0, 125_000.0, 1_250_000.0])
def test_sync_uses_at_most_its_share_of_the_link(bandwidth: float) -> None:
    share, size = 0.10, 4096
    messages = int(60 * bandwidth / size)  # a minute of the link's time, unpaced
    pacer = SyncPacer(share=share, now=0.0)
    took = _send_all(pacer, messages=messages, size=size, bandwidth=bandwidth)
    busy = messages * size / bandwidth
    # The bucket lends a minute's worth of the share up front (6 s of link time at 10 %), so
    # over the whole transfer the link was busy with sync at most share + that loan.
    assert busy <= share * took + share * 60 + size / bandwidth
    # ... and not held back far beyond it either: the pacer is a cap, not a brake.
    assert took <= busy / share + 1
    print(f"\n{messages * size // 1000} kB of sync over a {bandwidth / 1000:g} kB/s link: "
          f"{took:.1f} s paced ({busy / took:.1%} of the link), {busy:.1f} s unpaced")


def test_unknown_bandwidth_is_not_paced() -> None:
    pacer = SyncPacer(share=0.1, now=0.0)
    assert all(pacer.wait(1_000_000, None, 0.0) == 0.0 for _ in range(100))


def test_rf_cost_lies_above_any_lossless_lan_hop() -> None:
    slowest_lan = link_cost.cost(rtt_s=10.0, loss=0.0, bandwidth_bps=1.0)
    assert slowest_lan < link_cost.rf_base(1200)
    assert link_cost.rf_base(1200) == 4294
    assert slowest_lan < link_cost.rf_base(1_000_000) < link_cost.rf_base(9600) == 2544
    assert link_cost.rf_base(50) == link_cost.RF_MAX_BASE
    assert link_cost.RF_MAX_BASE * 10 < link_cost.INFINITY  # ten RF hops stay routable
