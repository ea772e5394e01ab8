"""Air-time accounting: a frame's air time at the bit rate, the background token bucket (debt
allowed for one message, the long-run share kept) and the per-kind ledger."""

from __future__ import annotations

import pytest

from mesh.airtime import AirtimeBucket, AirtimeLedger
from mesh.ax25 import air_time
from mesh.rf_link import CHANNEL_LOAD, share_for


def test_air_time_of_a_full_frame_at_1200_bit_s() -> None:
    # 16 address bytes + control + PID + 256 info = 274 bytes, + flags and FCS = 278 bytes.
    assert air_time(274, bitrate=1200) == pytest.approx(0.3 + 278 * 8 / 1200)
    assert air_time(274, bitrate=9600, txdelay=0.1) == pytest.approx(0.1 + 278 * 8 / 9600)
    with pytest.raises(ValueError, match="positive"):
        air_time(10, bitrate=0)


def test_bucket_allows_one_message_into_debt_then_waits_for_the_share() -> None:
    bucket = AirtimeBucket.for_channel(share=0.1, now=0.0, window=60)  # 6 s of air
    assert bucket.ready(0.0)
    bucket.take(10.0, 0.0)  # a long message still goes
    assert not bucket.ready(0.0)
    assert bucket.wait_time(0.0) == pytest.approx(40.0)  # 4 s of debt at 0.1 s per second
    assert not bucket.ready(39.0) and bucket.ready(40.0)
    assert bucket.wait_time(1000.0) == 0 and bucket.tokens == pytest.approx(6.0)  # capped


def test_bucket_keeps_background_within_the_share_over_time() -> None:
    bucket = AirtimeBucket.for_channel(share=0.1, now=0.0, window=60)
    used, now = 0.0, 0.0
    while now < 3600:
        if bucket.ready(now):
            bucket.take(2.1, now)
            used += 2.1
        now += 0.5
    assert used <= 6.0 + 0.1 * 3600 + 2.1


def test_a_bucket_given_a_smaller_share_refills_slower_and_holds_less() -> None:
    bucket = AirtimeBucket.for_channel(share=0.5, now=0.0, window=60)  # 30 s of air
    bucket.take(40.0, 0.0)  # 10 s of debt
    bucket.set_share(0.2, 0.0)
    assert bucket.capacity == pytest.approx(12.0)  # the same minute's worth
    assert bucket.wait_time(0.0) == pytest.approx(50.0)  # the debt stays, repaid at 0.2
    assert bucket.wait_time(1000.0) == 0 and bucket.tokens == pytest.approx(12.0)
    with pytest.raises(ValueError, match="share 0"):
        bucket.set_share(0, 1000.0)


def test_stations_heard_share_the_channel_within_the_configured_share() -> None:
    assert share_for(0.1, 0) == share_for(0.1, 2) == 0.1  # the default is below any part
    assert share_for(0.5, 0) == 0.5
    assert share_for(0.5, 2) == pytest.approx(CHANNEL_LOAD / 3)  # three stations: 0.2 each
    assert 3 * share_for(0.5, 2) <= CHANNEL_LOAD + 1e-9
    assert share_for(1.0, 9) == pytest.approx(0.06)


@pytest.mark.parametrize(("share", "capacity"), [(0, 1), (1.5, 1), (0.1, 0)])
def test_bucket_refuses_nonsense(share: float, capacity: float) -> None:
    with pytest.raises(ValueError):
        AirtimeBucket(share=share, capacity=capacity)


def test_ledger_adds_up_per_kind() -> None:
    ledger = AirtimeLedger(bitrate=1200, txdelay=0.3)
    ledger.record("beacon", 100)
    ledger.record("sync", 274)
    ledger.record("sync", 274)
    assert ledger.frames == {"beacon": 1, "sync": 2}
    assert ledger.total() == pytest.approx(ledger.cost(100) + 2 * ledger.cost(274))
    assert sum(ledger.shares().values()) == pytest.approx(1.0)
    assert ledger.as_dict()["sync"]["bytes"] == 548


def test_a_frame_in_the_same_keying_costs_no_txdelay() -> None:
    ledger = AirtimeLedger(bitrate=1200, txdelay=0.3)
    first = ledger.record("sync", 274)
    second = ledger.record("sync", 274, keyed=True)
    assert first - second == pytest.approx(0.3)
