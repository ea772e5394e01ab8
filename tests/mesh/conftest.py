"""Network-namespace fixtures: `lan` (stations on one bridge, real mDNS) and `topology`
(stations joined only by point-to-point cables a test can shape, cut and mend). Each gives up
through `requirement_missing` where there is no root or no `ip netns`: a skip here, a failure
in CI."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.environment import requirement_missing
from tests.harness import test_item_failed
from tests.mesh.netns import Lan, netns_available
from tests.mesh.topology import Topology


@pytest.fixture
def lan() -> Iterator[Lan]:
    if not netns_available():
        requirement_missing("needs root and `ip netns` (network namespaces)")
    network = Lan()
    try:
        yield network
    finally:
        network.close()


MakeTopology = Callable[..., Topology]


@pytest.fixture
def topology(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MakeTopology]:
    """`make(callsigns, edges, *, env=None, start_timeout=240) -> Topology`: stations up,
    claimed, and cabled; every topology made is closed at teardown, pass or fail. When the
    test failed, the end of each station's log is printed (pytest shows it with the failure)."""
    if not netns_available():
        requirement_missing("needs root and `ip netns` (network namespaces)")
    if not os.path.exists("/dev/net/tun"):
        requirement_missing("needs /dev/net/tun (TAP devices, CONFIG_TUN) for the cables")
    made: list[Topology] = []

    def make(callsigns: Sequence[str], edges: Sequence[tuple[int, int]],
             **options: object) -> Topology:
        made.append(Topology(callsigns, edges, tmp_path / f"topology{len(made)}",
                             **options))  # type: ignore[arg-type]
        return made[-1]

    try:
        yield make
    finally:
        if test_item_failed(request.node):
            for network in made:
                network.print_logs()
        for network in made:
            network.close()
