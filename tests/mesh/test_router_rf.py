"""The router with RF neighbours (mesh/router.py): an update meant for every neighbour goes on
the air once, heard by all RF neighbours, while LAN/IP neighbours each get theirs over their
link; without a way to broadcast, each RF neighbour gets a copy of its own."""

from __future__ import annotations

from typing import Any

import pytest

from mesh import distance_vector as dv
from mesh import router as router_module
from mesh.link_cost import rf_base
from mesh.router import Router

LAN, RF1, RF2 = "b" * 32, "c" * 32, "d" * 32


async def _nothing(_rows: Any) -> None:
    return None


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, dict]]:
    sent: list[tuple[str, dict]] = []

    async def send(peer: str, kind: str, payload: dict) -> None:
        sent.append((peer, payload))

    monkeypatch.setattr(router_module.linkbus, "send", send)
    return sent


async def _router(tmp_path, *, broadcast: bool) -> tuple[Router, list[dict]]:
    on_air: list[dict] = []
    router = Router("a" * 32, seqno_path=tmp_path / "seqno", interval=16, ping_interval=2,
                    ping_timeout=6, store=_nothing, own_callsign=lambda: "DL1A")
    if broadcast:
        async def rf_broadcast(payload: dict) -> None:
            on_air.append(payload)

        router.rf_broadcast = rf_broadcast
    await router.link_up(LAN, "DL2B")
    for peer, call in ((RF1, "DL3C"), (RF2, "DL4D")):
        await router.link_up(peer, call, rf=True, cost=rf_base(1200), interval=300)
    return router, on_air


def _destinations(payload: dict) -> set[str]:
    return {row[0] for row in payload["updates"]}


async def test_a_full_table_due_on_the_air_goes_once_for_every_rf_neighbour(
        tmp_path, sent) -> None:
    router, on_air = await _router(tmp_path, broadcast=True)
    sent.clear()
    await router.broadcast(full=True)  # the RF neighbours had the table when they came up
    assert on_air == [] and [peer for peer, _ in sent] == [LAN]
    router.rf_sent[RF1] = 0.0  # RF1 asked for our credential: it gets the table again
    sent.clear()
    await router.broadcast(full=True)
    assert len(on_air) == 1 and [peer for peer, _ in sent] == [LAN]
    assert _destinations(on_air[0]) == {"a" * 32}  # our own route (neighbours announce theirs)
    assert on_air[0]["names"]["a" * 32] == "DL1A"
    assert router.rf_sent[RF2] == router.rf_sent[RF1] > 0  # both heard it
    # A change (a triggered update) goes to everyone at once: one transmission again.
    on_air.clear()
    sent.clear()
    await router.dispatch([dv.Outgoing(None, update) for update in
                           router.table.updates_to_send(router.now(), full=True)[:1]])
    assert len(on_air) == 1 and [peer for peer, _ in sent] == [LAN]


async def test_without_a_broadcast_each_rf_neighbour_gets_its_own_copy(tmp_path, sent) -> None:
    router, _ = await _router(tmp_path, broadcast=False)
    router.rf_sent[RF1] = 0.0
    sent.clear()
    await router.broadcast(full=True)
    assert sorted(peer for peer, _ in sent) == sorted([LAN, RF1])
    rf_payload = next(payload for peer, payload in sent if peer == RF1)
    lan_payload = next(payload for peer, payload in sent if peer == LAN)
    assert _destinations(rf_payload) == _destinations(lan_payload)
