"""Range-based set reconciliation: convergence to the union, bounded rounds and messages,
cost by differences, and refusal of malformed messages."""

from __future__ import annotations

import contextlib
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.reconcile import (
    ID_BYTES,
    MIN_MESSAGE_SIZE,
    Catalog,
    Item,
    ReconcileError,
    Reconciler,
    reconcile_local,
)
from catalog.reconcile import _varint as varint

BASE = 1_750_000_000_000 << 16


def make_items(count: int, seed: int, *, spread_ms: int = 30 * 86_400_000) -> list[Item]:
    rng = random.Random(seed)
    return [Item(BASE + (rng.randrange(spread_ms) << 16), rng.randbytes(ID_BYTES))
            for _ in range(count)]


def assert_converged(a_items: set[Item], b_items: set[Item], result: dict) -> None:
    initiator, responder = result["initiator"], result["responder"]
    assert initiator.have == a_items - b_items
    assert initiator.need == b_items - a_items
    assert responder.have == b_items - a_items
    assert responder.need == a_items - b_items
    # Applying what each side learnt gives both the union.
    assert a_items | initiator.need == b_items | responder.need == a_items | b_items


item_strategy = st.builds(
    Item,
    # A narrow timestamp range makes equal timestamps (id-prefix bounds) common.
    st.one_of(st.integers(0, 40), st.integers(BASE, BASE + (1 << 40)),
              st.integers((1 << 64) - 50, (1 << 64) - 1)),
    st.binary(min_size=ID_BYTES, max_size=ID_BYTES),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shared=st.lists(item_strategy, max_size=300), only_a=st.lists(item_strategy, max_size=40),
       only_b=st.lists(item_strategy, max_size=40),
       size=st.sampled_from([MIN_MESSAGE_SIZE, 256, 1024, 4096, 65536]),
       leaf=st.integers(1, 32), branching=st.integers(2, 20))
def test_any_two_catalogs_converge_to_their_union(shared: list[Item], only_a: list[Item],
                                                 only_b: list[Item], size: int, leaf: int,
                                                 branching: int) -> None:
    a_items = set(shared) | set(only_a)
    b_items = set(shared) | set(only_b)
    result = reconcile_local(Catalog(a_items), Catalog(b_items), max_message_size=size,
                             leaf_threshold=leaf, branching=branching, top_branching=branching)
    assert_converged(a_items, b_items, result)
    assert result["largest_message"] <= size
    assert result["bytes_total"] > 0
    # Bounded rounds: with unbounded messages, one level of splitting per round trip.
    if size == 65536:
        union = len(a_items | b_items)
        assert result["rounds"] <= 3 + math.ceil(math.log(max(union, 2), 2))


def test_equal_catalogs_take_one_round_trip_under_100_bytes() -> None:
    items = make_items(10_000, seed=1)
    result = reconcile_local(Catalog(items), Catalog(items))
    assert result["rounds"] == 1
    assert result["bytes_total"] < 100
    assert result["initiator"].need == result["initiator"].have == set()


def test_ten_differences_in_ten_thousand_fit_4kb_and_three_round_trips() -> None:
    shared = make_items(10_000, seed=2)
    extra = make_items(10, seed=3)
    a_items, b_items = set(shared + extra[:5]), set(shared + extra[5:])
    result = reconcile_local(Catalog(a_items), Catalog(b_items))
    assert_converged(a_items, b_items, result)
    assert result["rounds"] <= 3
    assert result["bytes_total"] <= 4096


def test_cost_grows_with_differences_not_catalog_size() -> None:
    costs = {}
    for size in (1_000, 100_000):
        shared = make_items(size, seed=4)
        extra = make_items(10, seed=5)
        costs[size] = reconcile_local(Catalog(shared), Catalog(shared + extra))["bytes_total"]
    # 100x the catalog costs far less than 100x the bytes (log growth for the levels).
    assert costs[100_000] < 4 * costs[1_000]


def test_one_sided_and_empty_catalogs() -> None:
    items = set(make_items(500, seed=6))
    result = reconcile_local(Catalog(), Catalog(items))
    assert_converged(set(), items, result)
    result = reconcile_local(Catalog(items), Catalog())
    assert_converged(items, set(), result)
    result = reconcile_local(Catalog(), Catalog())
    assert result["rounds"] == 1


def test_radio_frames_of_256_bytes_still_converge() -> None:
    shared = make_items(2_000, seed=7)
    extra = make_items(30, seed=8)
    a_items, b_items = set(shared + extra[:15]), set(shared + extra[15:])
    result = reconcile_local(Catalog(a_items), Catalog(b_items), max_message_size=256)
    assert_converged(a_items, b_items, result)
    assert result["largest_message"] <= 256


def test_the_responder_is_stateless() -> None:
    """A fresh responder for every message (as a station answers CONTENT_SYNC requests)."""
    shared = make_items(3_000, seed=9)
    extra = make_items(20, seed=10)
    a_items, b_items = set(shared + extra[:10]), set(shared + extra[10:])
    b_catalog = Catalog(b_items)
    initiator = Reconciler(Catalog(a_items))
    message = initiator.initiate()
    learnt_by_b: set[Item] = set()
    for _ in range(20):
        responder = Reconciler(b_catalog)
        reply = responder.reconcile(message)
        learnt_by_b |= responder.need
        if reply is None:
            break
        message = initiator.reconcile(reply)
        if message is None:
            break
    assert initiator.need == b_items - a_items
    assert learnt_by_b == a_items - b_items


def valid_message() -> bytes:
    return Reconciler(Catalog(make_items(50, seed=11))).initiate()


@pytest.mark.parametrize(("message", "reason"), [
    (b"", "ends inside the header"),
    (b"\x02abcd\x10\x80\x20", "version 2"),
    (b"\x01abcd\x10", "ends inside the header"),
    (b"\x01abcd\x10\x10", "size limit 16"),
    (b"\x01abcd\xff\x80\x20", "leaf threshold 255"),
    (b"\x01abcd\x04\x80\x20\x07", "unknown range mode 7"),
    (b"\x01abcd\x04\x80\x20\x09ab", "ends inside a fingerprint"),
    (b"\x01abcd\x04\x80\x20\x09abcdef\x09abcdef", "after the top"),
    (b"\x01abcd\x04\x80\x20\x00\x40\x00\x00", "not ascending"),
    (b"\x01abcd\x04\x80\x20" + bytes([0x01 | (33 << 4) & 0x7F | 0x80, 33 >> 3]) + b"\x00",
     "prefix of 33 bytes"),
    (b"\x01abcd\x04\x80\x20\x0a\x05" + b"\x01\x02\x03\x04" * 5, "more items than"),
    (b"\x01abcd\x04\x80\x20\x0c\xff\x01", "cannot fit"),
    (b"\x01abcd\x04\x80\x20\x00" + b"\xff" * 12, "longer than 11 bytes"),
    (b"\x01abcd\x04\x80\x20\x00" + varint((1 << 64) << 6), "over 64 bits"),
])
def test_malformed_messages_are_refused_with_a_reason(message: bytes, reason: str) -> None:
    responder = Reconciler(Catalog(make_items(20, seed=12)))
    with pytest.raises(ReconcileError, match=reason):
        responder.reconcile(message)


def test_a_reply_from_another_session_is_refused() -> None:
    initiator = Reconciler(Catalog(make_items(20, seed=13)))
    initiator.initiate()
    with pytest.raises(ReconcileError, match="another session"):
        initiator.reconcile(valid_message())


def test_a_message_over_the_session_limit_is_refused() -> None:
    header = b"\x01abcd\x01" + bytes([MIN_MESSAGE_SIZE & 0x7F | 0x80, MIN_MESSAGE_SIZE >> 7])
    with pytest.raises(ReconcileError, match="over the session limit"):
        Reconciler(Catalog()).reconcile(header + b"\x00\x40" * MIN_MESSAGE_SIZE)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    responder = Reconciler(Catalog(make_items(40, seed=14)))
    for message in (data, valid_message()[:9] + data):
        with contextlib.suppress(ReconcileError):
            responder.reconcile(message)


def test_bad_parameters_and_items_are_refused() -> None:
    with pytest.raises(ReconcileError, match="max_message_size"):
        Reconciler(Catalog(), max_message_size=64)
    with pytest.raises(ReconcileError, match="branching"):
        Reconciler(Catalog(), branching=1)
    with pytest.raises(ReconcileError, match="leaf_threshold"):
        Reconciler(Catalog(), leaf_threshold=0)
    with pytest.raises(ReconcileError, match="32 bytes"):
        Item(1, b"short")
    with pytest.raises(ReconcileError, match="64-bit"):
        Item(-1, b"\0" * 32)
