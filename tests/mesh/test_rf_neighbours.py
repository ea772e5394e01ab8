"""The RF neighbour link on its own: credentials verified on the air are kept across a restart
(by station id and fingerprint), and an RF link session never hands the air anything marked
encrypted or any LAN/IP-only (mailbox) message: the real RF link layer's queue stays empty."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from mesh import ax25, protocol, rf_codec, rf_neighbours, trust
from mesh.rf_link import RfLink
from mesh.rf_neighbours import (
    ANSWER_EVERY,
    ANSWER_SPACING,
    ASK_FIRST,
    ASK_MAX,
    RTO_INITIAL,
    RTO_MAX,
    RTO_MIN,
    CredentialStore,
    RfLinkSession,
    RfNeighbours,
)


def test_credentials_are_kept_across_a_restart(tmp_path) -> None:
    path = tmp_path / "rf-credentials.json"
    CredentialStore(path).put("a" * 32, "f1" * 32, {"stationId": "a" * 32, "callsign": "DL1A"})
    again = CredentialStore(path)  # a restarted meshd
    assert again.get("a" * 32) == {"stationId": "a" * 32, "callsign": "DL1A"}
    assert again.get("a" * 32, "f1" * 32) is not None
    assert again.get("a" * 32, "f2" * 32) is None  # another owner certificate: ask again
    again.forget("a" * 32)
    assert CredentialStore(path).get("a" * 32) is None


def test_a_damaged_store_is_ignored(tmp_path) -> None:
    path = tmp_path / "rf-credentials.json"
    path.write_text("{not json")
    assert CredentialStore(path).items == {}


async def _nothing(_frame: bytes) -> None:
    return None


def _rf_link(*, share: float = 0.1, claimed: bool = True) -> RfLink:
    """The link layer of DL1A-10 (None: unclaimed), its frames going nowhere."""
    me = ax25.Address("DL1A", 10) if claimed else None
    return RfLink(send_frame=_nothing, identity=lambda: me, bitrate=1200, share=share,
                  id_interval=600, beacon_body=lambda: b"")


@pytest.mark.django_db
async def test_encrypted_and_mailbox_messages_never_reach_the_air() -> None:
    rf = _rf_link()
    local = trust.LocalStation("a" * 32, "DL1A", "f1" * 32, {"stationId": "a" * 32})
    peer = trust.ProvenStation("b" * 32, "DL2B", "f2" * 32, "")
    session = RfLinkSession(neighbours=SimpleNamespace(radio=SimpleNamespace(rf=rf)),
                            local=local, peer=peer, address=ax25.Address("DL2B", 10))
    with pytest.raises(rf_codec.EncryptedRefused):
        await session.send("CONTENT_ENTRIES", {"entries": [{"body": {"ciphertext": "x"}}]})
    with pytest.raises(rf_codec.RfCodecError, match="never sent on the air"):
        await session.send("MAILBOX_HOMES", {"summary": {}})
    assert not rf.urgent and not rf.background
    await session.send("CONTENT_DEMAND", {"demand": {}})  # plain sync traffic does go
    assert len(rf.background) == 1 and not rf.urgent


def _session(rf: RfLink) -> RfLinkSession:
    local = trust.LocalStation("a" * 32, "DL1A", "f1" * 32, {"stationId": "a" * 32})
    peer = trust.ProvenStation("b" * 32, "DL2B", "f2" * 32, "")
    return RfLinkSession(neighbours=SimpleNamespace(radio=SimpleNamespace(rf=rf)),
                         local=local, peer=peer, address=ax25.Address("DL2B", 10))


@pytest.mark.django_db
async def test_a_request_heard_again_gets_the_reply_again_once_the_first_has_gone() -> None:
    rf = _rf_link()
    session = _session(rf)
    request = {"id": "c" * 32, "type": "CONTENT_DEMAND", "req": True}
    session.heard_ids[request["id"]] = None  # heard and answered before
    await session.send(protocol.REPLY, {"demand": {}}, re=request["id"])
    assert len(rf.background) == 1
    await session.hear(request)  # the reply still waits to go: it answers this one too
    assert len(rf.background) == 1
    rf.background.clear()  # it went on the air (and was lost: the request came again)
    await session.hear(request)
    assert len(rf.background) == 1


def test_the_retransmission_timeout_follows_the_round_trips_measured() -> None:
    rf = _rf_link(claimed=False)
    session = _session(rf)
    assert session.rto() == RTO_INITIAL  # nothing measured yet
    for _ in range(20):
        session.rtt_sample(4.0)  # single-frame exchanges on an idle 1200 bit/s channel
    assert session.rto() == RTO_MIN
    for _ in range(20):
        session.rtt_sample(50.0)  # replies held by the other station's air-time budget
    assert 50.0 < session.rto() <= RTO_MAX
    session.rtt_sample(1000.0)
    assert session.rto() == RTO_MAX


@pytest.mark.django_db
async def test_a_request_goes_again_after_the_timeout_doubling_and_the_next_starts_afresh(
        monkeypatch) -> None:
    monkeypatch.setattr(rf_neighbours, "RTO_INITIAL", 0.5)
    monkeypatch.setattr(rf_neighbours, "RTO_MIN", 0.05)
    monkeypatch.setattr(rf_neighbours, "RTO_MAX", 2.0)
    rf = _rf_link(share=1.0)
    session = _session(rf)
    session.timeout_floor = 3.0
    sent = 0

    async def on_the_air() -> None:  # every frame goes at once; no reply ever comes
        nonlocal sent
        while True:
            sent += sum(1 for item in rf.background if item.info[4] == 0)
            rf.background.clear()
            await asyncio.sleep(0.01)

    air = asyncio.create_task(on_the_air())
    try:
        with pytest.raises(TimeoutError, match="no reply in 3 s"):
            await session.request("CONTENT_SYNC", {"ranges": []}, timeout=3.0)
    finally:
        air.cancel()
    assert sent == 3  # the wait doubled at each try: 0.5 s, then 1 s, then 2 s (cut at 3 s)
    assert session.rto() == 0.5  # lost, not late: the next request starts afresh


def _neighbours(rf: RfLink, local: trust.LocalStation) -> RfNeighbours:
    return RfNeighbours(SimpleNamespace(daemon=SimpleNamespace(local=local), rf=rf))


def _messages(rf: RfLink) -> int:
    """Messages queued (their first fragments)."""
    return sum(1 for item in rf.background if item.info[4] == 0)


@pytest.mark.django_db
async def test_a_credential_that_does_not_come_is_asked_for_less_and_less_often() -> None:
    rf = _rf_link()
    local = trust.LocalStation("a" * 32, "DL1A", "f1" * 32, {"stationId": "a" * 32})
    neighbours = _neighbours(rf, local)
    station, there = "b" * 32, ax25.Address("DL2B", 10)
    await neighbours.ask(station, "f2" * 32, there)
    await neighbours.ask(station, "f2" * 32, there)  # its next beacon, a moment later
    assert _messages(rf) == 1
    waits = []
    for _ in range(10):  # lost, or refused (a root we do not trust): each wait twice as long
        at, wait = neighbours.asked[station]
        neighbours.asked[station] = (at - wait, wait)  # that long has passed
        await neighbours.ask(station, "f2" * 32, there)
        waits.append(neighbours.asked[station][1])
    assert _messages(rf) == 11
    assert waits[:3] == [2 * ASK_FIRST, 4 * ASK_FIRST, 8 * ASK_FIRST]
    assert waits[-1] == ASK_MAX


@pytest.mark.django_db
async def test_our_credential_is_sent_at_most_once_a_minute_to_each_asking_station() -> None:
    rf = _rf_link()
    local = trust.LocalStation("a" * 32, "DL1A", "f1" * 32, {"stationId": "a" * 32,
                                                               "callsign": "DL1A"})
    neighbours = _neighbours(rf, local)
    bob, carol = ax25.Address("DL2B", 10), ax25.Address("DL3C", 10)

    def asking(who: str) -> dict:
        return {"type": "RF_CREDENTIAL_REQUEST", "from": who, "payload": {"station": "a" * 32}}

    await neighbours.answer(bob, asking("b" * 32))
    assert _messages(rf) == 1  # to MESH: it answers everyone who lacks it
    await neighbours.answer(carol, asking("c" * 32))  # the answer a moment ago serves Carol
    assert _messages(rf) == 1
    neighbours.answered_at -= ANSWER_SPACING  # Carol missed it and asks again later
    await neighbours.answer(carol, asking("c" * 32))
    assert _messages(rf) == 2
    neighbours.answered_at -= ANSWER_SPACING
    await neighbours.answer(bob, asking("b" * 32))  # Bob (or a station faking his call) again
    assert _messages(rf) == 2
    neighbours.answered[str(bob)] -= ANSWER_EVERY
    await neighbours.answer(bob, asking("b" * 32))
    assert _messages(rf) == 3


@pytest.mark.django_db
async def test_a_catalog_change_during_a_sync_syncs_the_catalog_again_before_trust(
        monkeypatch) -> None:
    from mesh import gossip

    rf = _rf_link()
    local = trust.LocalStation("a" * 32, "DL1A", "f1" * 32, {"stationId": "a" * 32})
    neighbours = _neighbours(rf, local)
    session = _session(rf)
    neighbours.sessions[session.peer_station_id] = session
    steps: list[str] = []

    async def sync_apps(_link) -> None:
        steps.append("catalog")
        if len(steps) == 1:
            neighbours.catalog_changed()  # a publish while the first exchange goes

    async def sync_link(_link, *, peers: bool) -> dict:
        steps.append("trust")
        return {}

    monkeypatch.setattr(gossip, "sync_apps", sync_apps)
    monkeypatch.setattr(gossip, "sync_link", sync_link)
    neighbours.maybe_sync(session, None)  # the link came up
    await asyncio.gather(*neighbours.tasks)
    assert steps == ["catalog", "catalog", "trust"]
    assert not neighbours.again and not neighbours.syncing
