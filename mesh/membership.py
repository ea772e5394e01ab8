"""Membership and failure detection (no Django).

A peer is `active` while it is heard from, `suspect` once it has been silent for the link's
suspect timeout and `unreachable` after the unreachable timeout; a peer heard again is active at
once. The station checks its peers itself (probes and link traffic), because mDNS record
lifetimes are far too long to notice a silent drop. Timeouts scale with the link: seconds on a
LAN, minutes on RF.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ACTIVE = "active"
SUSPECT = "suspect"
UNREACHABLE = "unreachable"
UNKNOWN = "unknown"
STATES = (ACTIVE, SUSPECT, UNREACHABLE, UNKNOWN)


@dataclass(frozen=True)
class Timeouts:
    suspect_after: float
    unreachable_after: float

    def __post_init__(self) -> None:
        if not 0 < self.suspect_after < self.unreachable_after:
            raise ValueError("timeouts need 0 < suspect_after < unreachable_after")


def state_for(silence: float | None, timeouts: Timeouts) -> str:
    """The state of a peer silent for `silence` seconds (None: never heard)."""
    if silence is None:
        return UNKNOWN
    if silence >= timeouts.unreachable_after:
        return UNREACHABLE
    if silence >= timeouts.suspect_after:
        return SUSPECT
    return ACTIVE


@dataclass
class Member:
    key: str
    timeouts: Timeouts
    state: str = UNKNOWN
    last_heard: float | None = None
    rtt: float | None = None
    changed_at: float | None = None
    since: float = 0.0
    history: list[tuple[float, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Transition:
    key: str
    old: str
    new: str
    at: float
    silence: float | None


class MemberTable:
    """Last heard and state per peer; `heard` and `sweep` return the transitions they cause."""

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}

    def track(self, key: str, timeouts: Timeouts, now: float) -> Member:
        member = self.members.get(key)
        if member is None:
            member = self.members[key] = Member(key=key, timeouts=timeouts, since=now)
        else:
            member.timeouts = timeouts
        return member

    def forget(self, key: str) -> None:
        self.members.pop(key, None)

    def _move(self, member: Member, new: str, now: float) -> Transition | None:
        if new == member.state:
            return None
        silence = None if member.last_heard is None else now - member.last_heard
        transition = Transition(member.key, member.state, new, now, silence)
        member.state = new
        member.changed_at = now
        member.history.append((now, new))
        del member.history[:-20]
        return transition

    def heard(self, key: str, now: float, rtt: float | None = None) -> Transition | None:
        member = self.members[key]
        member.last_heard = now if member.last_heard is None else max(member.last_heard, now)
        if rtt is not None:
            # Smoothed like TCP's SRTT, so one slow answer does not swing the link cost.
            member.rtt = rtt if member.rtt is None else 0.8 * member.rtt + 0.2 * rtt
        return self._move(member, ACTIVE, now)

    def sweep(self, now: float) -> list[Transition]:
        transitions = []
        for member in self.members.values():
            if member.last_heard is None:
                # Never heard since tracking began: unreachable once that has lasted too long.
                if now - member.since < member.timeouts.unreachable_after:
                    continue
                new = UNREACHABLE
            else:
                new = state_for(now - member.last_heard, member.timeouts)
            transition = self._move(member, new, now)
            if transition is not None:
                transitions.append(transition)
        return transitions
