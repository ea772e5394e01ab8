"""The topology library on a line of three stations A-B-C, each in a network namespace of its
own and joined only by cables A-B and B-C: each adds its right-hand neighbour by URL through its
API; both pairs come up active and linked; A cannot reach C over IP; the A-B cable carries its
20 ms each way; a cut B-C cable takes C out of B's active peers, and mending it brings C back."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from tests.mesh.stations import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.netns]

CALLS = ["DL1TA", "DL1TB", "DL1TC"]
A, B, C = range(3)
LINE = {"MESHSITE_MESH_RECONNECT_MAX": "2", "MESHSITE_MESH_DIAL_LEARNT_PEERS": "off"}


@pytest.mark.timeout(300)
def test_a_line_of_three_over_shaped_cables(topology):
    started = time.monotonic()
    line = topology(CALLS, [(A, B), (B, C)], env=LINE)
    up = time.monotonic() - started
    line.shape(A, B, delay_ms=20)
    line.add_peer(A, B)
    line.add_peer(B, C)

    def neighbour_ok(i: int, j: int) -> bool:
        peer = line.peer(i, j)
        return bool(peer and peer["state"] == "active" and peer["authenticated"]
                    and peer["linked"] and peer["endpoint"] == line.url(j, i))

    pairs = [(A, B), (B, A), (B, C), (C, B)]
    linked = wait_for(lambda: [f"{CALLS[i]}->{CALLS[j]}" for i, j in pairs
                               if not neighbour_ok(i, j)] == [], 90,
                      "A-B and B-C see each other active and linked")

    # Only the mesh joins A and C: B's address on their cable answers A, C's does not.
    assert line.connect(A, line.address(B, A))
    assert not line.connect(A, line.address(C, B))
    rtts = line.ping(A, B, count=3)
    assert all(rtt is not None and rtt >= 40 for rtt in rtts), rtts

    line.cut(B, C)
    left = wait_for(lambda: line.peer(B, C)["state"] != "active",
                    settings.MESH_UNREACHABLE_AFTER + 10, "B sees C leave the active state")
    gone = wait_for(lambda: line.peer(B, C)["state"] == "unreachable",
                    settings.MESH_UNREACHABLE_AFTER + 10, "B sees C unreachable")
    assert neighbour_ok(B, A) and neighbour_ok(A, B)  # the other cable is untouched
    line.mend(B, C)
    back = wait_for(lambda: neighbour_ok(B, C) and neighbour_ok(C, B), 30,
                    "C active and linked at B again")
    print(f"\ntopology: 3 stations up {up:.1f}s (claims {line.took['claim']:.1f}s, starts "
          f"{line.took['start']:.1f}s), linked {linked:.1f}s, ping A-B {rtts} ms; "
          f"cut: C not active at B after {left:.1f}s, unreachable after {left + gone:.1f}s; "
          f"mend: active and linked again after {back:.1f}s")
