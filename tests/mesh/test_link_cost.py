"""Link cost: a faster, cleaner, wider link always costs less; a live link stays finite."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesh.link_cost import INFINITY, LAN_BASE, LinkStats, cost

rtts = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)
losses = st.floats(min_value=0.0, max_value=0.999, allow_nan=False)
bandwidths = st.one_of(st.none(), st.floats(min_value=1.0, max_value=1e10, allow_nan=False))


def test_a_clean_fast_lan_hop_costs_the_base() -> None:
    assert cost(rtt_s=0.001, loss=0.0) == LAN_BASE
    assert cost(rtt_s=None, loss=0.0) == LAN_BASE
    assert cost(rtt_s=0.001, loss=0.0, base=300) == 300


def test_rtt_penalty_rises_linearly_from_10_to_120_ms_then_stays() -> None:
    assert cost(rtt_s=0.010, loss=0.0) == 96
    assert cost(rtt_s=0.065, loss=0.0) == 96 + 75
    assert cost(rtt_s=0.120, loss=0.0) == 96 + 150
    assert cost(rtt_s=1.0, loss=0.0) == 96 + 150
    assert cost(rtt_s=0.030, loss=0.0) < cost(rtt_s=0.031, loss=0.0)


def test_loss_multiplies_and_slow_bandwidth_adds() -> None:
    assert cost(rtt_s=0.0, loss=0.5) == 2 * 96
    assert cost(rtt_s=0.0, loss=0.0, bandwidth_bps=125_000) == 96 + 96
    assert cost(rtt_s=0.0, loss=0.0, bandwidth_bps=12_500_000) == 96 + 1


@given(rtts, rtts, losses, bandwidths)
def test_monotonic_in_rtt(a: float, b: float, loss: float, bw: float | None) -> None:
    lo, hi = sorted((a, b))
    assert cost(rtt_s=lo, loss=loss, bandwidth_bps=bw) <= cost(rtt_s=hi, loss=loss,
                                                               bandwidth_bps=bw)


@given(rtts, losses, losses, bandwidths)
def test_monotonic_in_loss(rtt: float, a: float, b: float, bw: float | None) -> None:
    lo, hi = sorted((a, b))
    assert cost(rtt_s=rtt, loss=lo, bandwidth_bps=bw) <= cost(rtt_s=rtt, loss=hi,
                                                              bandwidth_bps=bw)


@given(rtts, losses, st.floats(min_value=1.0, max_value=1e10), st.floats(min_value=1.0,
                                                                            max_value=1e10))
def test_monotonic_in_bandwidth(rtt: float, loss: float, a: float, b: float) -> None:
    slow, fast = sorted((a, b))
    assert cost(rtt_s=rtt, loss=loss, bandwidth_bps=fast) <= cost(rtt_s=rtt, loss=loss,
                                                                  bandwidth_bps=slow)
    assert cost(rtt_s=rtt, loss=loss) <= cost(rtt_s=rtt, loss=loss, bandwidth_bps=slow)


@given(rtts, losses, bandwidths, st.integers(min_value=1, max_value=INFINITY - 1))
def test_a_live_link_is_at_least_its_base_and_finite(rtt: float, loss: float, bw: float | None,
                                                     base: int) -> None:
    value = cost(rtt_s=rtt, loss=loss, bandwidth_bps=bw, base=base)
    assert base <= value <= INFINITY - 1


def test_a_link_that_loses_everything_is_unreachable() -> None:
    assert cost(rtt_s=0.001, loss=1.0) == INFINITY


@pytest.mark.parametrize("kwargs", [{"loss": -0.1}, {"loss": 1.5}, {"loss": 0.0, "base": 0}])
def test_bad_measurements_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        cost(rtt_s=0.01, **kwargs)  # type: ignore[arg-type]


def test_link_stats_smooths_rtt_and_counts_loss_over_its_window() -> None:
    stats = LinkStats(window=4)
    assert stats.cost() == LAN_BASE
    stats.record_ping(True, 0.010)
    stats.record_ping(True, 0.090)
    assert stats.srtt == pytest.approx(0.010 + (0.090 - 0.010) / 8)
    stats.record_ping(False)
    stats.record_ping(False)
    assert stats.loss() == 0.5
    lossy = stats.cost()
    for _ in range(4):
        stats.record_ping(True, stats.srtt)
    assert stats.loss() == 0.0
    assert stats.cost() < lossy
    for _ in range(4):
        stats.record_ping(False)
    assert stats.cost() == INFINITY


def test_link_stats_bandwidth_estimate_raises_cost_of_a_slow_link() -> None:
    fast, slow = LinkStats(), LinkStats()
    fast.record_throughput(10_000_000, 1.0)
    slow.record_throughput(10_000, 1.0)
    assert LAN_BASE <= fast.cost() < slow.cost()
    slow.record_throughput(0, 1.0)  # an empty transfer says nothing
    assert slow.bandwidth_bps == 10_000


def test_bandwidth_from_a_padded_ping_is_the_padding_over_the_extra_time():
    from mesh.link_cost import PROBE_RESOLUTION, bandwidth_sample

    # 8 KiB took 80 ms more than a plain ping: about 100 kB/s.
    assert bandwidth_sample(8192, 0.130, 0.050) == pytest.approx(8192 / 0.080)
    # No measurable difference (a fast LAN, or jitter): "at least" the resolution's worth.
    assert bandwidth_sample(8192, 0.0501, 0.050) == pytest.approx(8192 / PROBE_RESOLUTION)
    assert bandwidth_sample(8192, 0.040, 0.050) == pytest.approx(8192 / PROBE_RESOLUTION)
    assert bandwidth_sample(8192, 0.1, None) is None


def test_a_slow_probe_raises_the_cost_and_fast_ones_bring_it_back():
    from mesh.link_cost import LinkStats, bandwidth_sample

    stats = LinkStats()
    stats.record_ping(True, 0.005)
    fast = stats.cost()
    stats.record_throughput(8192, 8192 / bandwidth_sample(8192, 0.505, 0.005))  # 16 kB/s
    slow = stats.cost()
    assert slow > fast + 500
    for _ in range(40):
        stats.record_throughput(8192, 8192 / bandwidth_sample(8192, 0.005, 0.005))
    assert stats.cost() < fast + 5


def test_one_slow_probe_among_fast_ones_does_not_change_the_cost():
    """A padded ping delayed by a busy host reads as a slow link; the estimate is the largest
    of the recent samples, so it does not swing routes; a link that stays slow shows it once
    its fast samples have left the window."""
    from mesh.link_cost import BANDWIDTH_WINDOW, LinkStats, bandwidth_sample

    stats = LinkStats()
    stats.record_ping(True, 0.005)
    fast_sample = 8192 / bandwidth_sample(8192, 0.005, 0.005)
    stats.record_throughput(8192, fast_sample)
    fast = stats.cost()
    stats.record_throughput(8192, 8192 / bandwidth_sample(8192, 0.505, 0.005))  # a hiccup
    assert stats.cost() == fast
    for _ in range(BANDWIDTH_WINDOW):
        stats.record_throughput(8192, 8192 / bandwidth_sample(8192, 0.505, 0.005))
    assert stats.cost() > fast + 500
