"""Failure detection: active -> suspect -> unreachable on silence, active again when heard."""

from __future__ import annotations

import pytest

from mesh.membership import (
    ACTIVE,
    SUSPECT,
    UNKNOWN,
    UNREACHABLE,
    MemberTable,
    Timeouts,
    state_for,
)

LAN = Timeouts(suspect_after=2.5, unreachable_after=8)


def test_state_for_silence():
    assert state_for(None, LAN) == UNKNOWN
    assert state_for(0, LAN) == ACTIVE
    assert state_for(2.49, LAN) == ACTIVE
    assert state_for(2.5, LAN) == SUSPECT
    assert state_for(8, LAN) == UNREACHABLE


def test_timeouts_must_be_ordered():
    with pytest.raises(ValueError):
        Timeouts(suspect_after=5, unreachable_after=5)
    with pytest.raises(ValueError):
        Timeouts(suspect_after=0, unreachable_after=5)


def test_drop_and_return():
    table = MemberTable()
    table.track("b", LAN, now=0)
    first = table.heard("b", 0.0, rtt=0.010)
    assert (first.old, first.new) == (UNKNOWN, ACTIVE)
    assert table.sweep(2.0) == []
    [suspect] = table.sweep(3.0)
    assert (suspect.old, suspect.new, suspect.silence) == (ACTIVE, SUSPECT, 3.0)
    [gone] = table.sweep(9.0)
    assert (gone.old, gone.new) == (SUSPECT, UNREACHABLE)
    back = table.heard("b", 20.0, rtt=0.020)
    assert (back.old, back.new) == (UNREACHABLE, ACTIVE)
    assert table.members["b"].rtt == pytest.approx(0.8 * 0.010 + 0.2 * 0.020)


def test_a_peer_never_heard_becomes_unreachable():
    table = MemberTable()
    table.track("c", LAN, now=100)
    assert table.sweep(105) == []
    [transition] = table.sweep(108.5)
    assert transition.new == UNREACHABLE


def test_rf_timeouts_are_per_member():
    table = MemberTable()
    table.track("rf", Timeouts(600, 1800), now=0)
    table.heard("rf", 0)
    assert table.sweep(300) == []
    assert table.sweep(601)[0].new == SUSPECT
