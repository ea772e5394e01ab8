"""What an operator sees of signaling, with two daphne processes on one Redis and one database:
`/api/status` counts the clients of both, every session is recorded (who, when, how it ended),
old records are pruned, and the admin lists the live clients and really disconnects one, on
whichever process holds it."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid

import pytest

from tests.harness import http_json
from tests.signaling.conftest import SignalingDaphne, hubs_live, module_pair
from tests.signaling.stationdb import (
    AdminBrowser,
    django_run,
    eventually,
    manage,
    off_loop,
    sessions_insert,
    superuser,
)
from tests.signaling.wsclient import (
    closed,
    expect_type,
    native,
    peerjs,
    recv,
    send,
    ws_connect,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

pair = module_pair()

CHANGELIST = "/admin/signaling/signalingsession/"


@pytest.fixture
async def procs(pair) -> list[str]:
    return await hubs_live(*pair)


def session_of(process: SignalingDaphne, **match: object) -> dict | None:
    """The one recorded session whose columns equal `match` (None while not written)."""
    rows = [row for row in process.sessions()
            if all(row[key] == value for key, value in match.items())]
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


def when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


def connected(process: SignalingDaphne) -> int:
    status, body = http_json(process.url + "/api/status")
    assert status == 200, body
    return body["signaling"]["connected"]


async def test_status_counts_registered_clients_of_both_processes(pair, procs):
    one, two = pair
    await native(one.ws_url, room="count")
    await native(one.ws_url, room="count")
    await native(two.ws_url, room="count")
    last = await peerjs(two.ws_url, "count-pj", "t")
    await ws_connect(one.ws_url + "/ws/signal")  # connected but not registered: not counted
    for process in pair:
        await eventually(lambda p=process: connected(p) == 4, 5, f"4 clients on {process.url}")
    await last.close()
    for process in pair:
        await eventually(lambda p=process: connected(p) == 3, 5, f"3 clients on {process.url}")


async def test_sessions_are_recorded_with_who_when_and_how_they_ended(pair, procs):
    one, two = pair
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    ws, registered = await native(two.ws_url, room="rec", callsign="K1ABC")
    client_id = registered["clientId"]
    row = await eventually(lambda: session_of(two, peer_id=client_id), 5, "session written")
    assert row["outcome"] == "open" and row["ended_at"] is None
    assert row["protocol"] == "signal" and row["callsign"] == "K1ABC" and row["room"] == "rec"
    assert row["licensed"] == 0 and row["remote_addr"] == "127.0.0.1"
    assert row["process"] == procs[1]
    for _ in range(3):
        await send(ws, {"type": "PING"})
        assert await recv(ws) == {"type": "PONG"}
    await ws.close()

    def ended() -> dict | None:
        row = session_of(two, peer_id=client_id)
        return row if row and row["ended_at"] else None

    row = await eventually(ended, 5, "session end written")
    after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    assert row["outcome"] == "closed" and row["messages_in"] == 4  # REGISTER + 3 PING
    assert before <= when(row["started_at"]) <= when(row["ended_at"]) <= after

    # A refused PeerJS connection is recorded too, as rejected; the holder stays open.
    name = f"rec-{uuid.uuid4().hex[:8]}"
    await peerjs(one.ws_url, name, "t1")
    refused = await peerjs(two.ws_url, name, "t2", expect_open=False)
    assert (await recv(refused))["type"] == "ID-TAKEN"
    await closed(refused)

    def both() -> list[dict] | None:
        rows = [r for r in one.sessions() if r["peer_id"] == name]
        return rows if len(rows) == 2 else None

    rows = await eventually(both, 5, "holder and refused recorded")
    assert sorted(r["outcome"] for r in rows) == ["open", "rejected"]
    assert {r["process"] for r in rows} == set(procs)


async def test_prune_command_removes_sessions_past_the_retention(pair, procs):
    one, _two = pair
    tag = uuid.uuid4().hex[:8]
    day = 86400
    await off_loop(sessions_insert, one, [
        {"connection_id": f"old{tag}", "protocol": "signal", "peer_id": f"old-{tag}",
         "outcome": "closed", "started_ago": 2 * day + 60, "ended_ago": 2 * day},
        {"connection_id": f"new{tag}", "protocol": "peerjs", "peer_id": f"new-{tag}",
         "outcome": "closed", "started_ago": day - 3600, "ended_ago": day - 600},
        {"connection_id": f"gone{tag}", "protocol": "signal", "peer_id": f"gone-{tag}",
         "process": "dead-process-1", "outcome": "open", "started_ago": 3600,
         "ended_ago": None},
        {"connection_id": f"live{tag}", "protocol": "signal", "peer_id": f"live-{tag}",
         "process": procs[0], "outcome": "open", "started_ago": 3600, "ended_ago": None},
    ])
    result = await off_loop(manage, one, "signalingclients", "--prune")
    assert result.returncode == 0, result.stderr
    assert re.search(r"Deleted [1-9]\d* session\(s\)", result.stdout), result.stdout
    rows = {r["peer_id"]: r for r in one.sessions() if r["peer_id"].endswith(tag)}
    assert f"old-{tag}" not in rows  # ended two days ago: past the 24 h retention
    assert rows[f"new-{tag}"]["outcome"] == "closed"  # ended 23 h ago: kept
    assert rows[f"gone-{tag}"]["outcome"] == "lost" and rows[f"gone-{tag}"]["ended_at"]
    assert rows[f"live-{tag}"]["outcome"] == "open"  # its process runs


async def test_the_beat_task_prunes_with_the_configured_retention(pair, procs):
    one, _two = pair
    tag = uuid.uuid4().hex[:8]
    await off_loop(sessions_insert, one, [
        {"connection_id": f"a{tag}", "protocol": "signal", "peer_id": f"a-{tag}",
         "outcome": "closed", "started_ago": 700, "ended_ago": 600},
        {"connection_id": f"b{tag}", "protocol": "signal", "peer_id": f"b-{tag}",
         "outcome": "closed", "started_ago": 100, "ended_ago": 60},
    ])
    out = await off_loop(django_run, one, """
import os
from django.conf import settings
schedule = settings.CELERY_BEAT_SCHEDULE["signaling-prune-sessions"]
assert schedule["task"] == "signaling.tasks.prune_sessions", schedule
settings.SIGNALING_SESSION_RETENTION = 300
from signaling.tasks import prune_sessions
print(json.dumps(prune_sessions.apply().get()))
""")
    assert json.loads(out.strip().splitlines()[-1])["deleted"] >= 1
    rows = {r["peer_id"] for r in one.sessions() if r["peer_id"].endswith(tag)}
    assert rows == {f"b-{tag}"}


async def test_admin_lists_live_clients_and_disconnect_closes_the_socket(pair, procs):
    one, two = pair
    password = uuid.uuid4().hex
    await off_loop(superuser, one, "sigadmin", password)
    watcher, _ = await native(one.ws_url, room="adm")
    target, registered = await native(two.ws_url, room="adm", callsign="K2TGT")
    target_id = registered["clientId"]
    await expect_type(watcher, "PEER_JOINED")
    pj_name = f"adm-{uuid.uuid4().hex[:8]}"
    await peerjs(one.ws_url, pj_name, "t")
    gone, gone_reg = await native(one.ws_url, room="adm-gone")
    await gone.close()
    await eventually(lambda: session_of(two, peer_id=target_id), 5, "target recorded")
    await eventually(lambda: session_of(one, peer_id=pj_name), 5, "peerjs recorded")
    await eventually(lambda: (session_of(one, peer_id=gone_reg["clientId"]) or {}).get(
        "ended_at"), 5, "ended session recorded")

    admin = AdminBrowser(one.url)
    await off_loop(admin.login, "sigadmin", password)
    status, html, _ = await off_loop(admin.get, CHANGELIST + "?live=yes")
    assert status == 200, html[:500]
    assert target_id in html and pj_name in html and "K2TGT" in html
    assert procs[0] in html and procs[1] in html  # which process holds each client
    assert gone_reg["clientId"] not in html  # ended: not live
    status, html, _ = await off_loop(admin.get, CHANGELIST + "?live=no")
    assert gone_reg["clientId"] in html and target_id not in html

    row = await off_loop(session_of, two, peer_id=target_id)
    started = time.monotonic()
    status, html, _ = await off_loop(admin.post, CHANGELIST + "?live=yes", [
        ("action", "disconnect"), ("select_across", "0"), ("index", "0"),
        ("_selected_action", str(row["id"]))])
    assert status == 200, html[:800]
    assert "1 client(s) disconnected." in html, re.findall(r'<ul class="messagelist">.*?</ul>',
                                                           html, re.S)
    # The socket on the other process is really closed, and the room hears it left.
    assert await closed(target, timeout=5) == 1008
    assert await expect_type(watcher, "PEER_LEFT") == {"type": "PEER_LEFT",
                                                       "peerId": target_id}
    print(f"\nadmin disconnect closed the socket in {time.monotonic() - started:.2f} s")

    def ended() -> dict | None:
        row = session_of(two, peer_id=target_id)
        return row if row and row["ended_at"] else None

    assert (await eventually(ended, 5, "outcome written"))["outcome"] == "disconnected"
    status, html, _ = await off_loop(admin.get, CHANGELIST + "?live=yes")
    assert target_id not in html and pj_name in html
    # Disconnecting an ended session does nothing and says so.
    status, html, _ = await off_loop(admin.post, CHANGELIST, [
        ("action", "disconnect"), ("select_across", "0"), ("index", "0"),
        ("_selected_action", str(session_of(one, peer_id=gone_reg["clientId"])["id"]))])
    assert status == 200 and "0 client(s) disconnected." in html


async def test_signalingclients_lists_both_processes_and_disconnects_across(pair, procs):
    one, two = pair
    _a, reg_a = await native(one.ws_url, room="cli", callsign="K3AAA")
    b = await peerjs(two.ws_url, "cli-pj", "t")
    result = await off_loop(manage, one, "signalingclients")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    mine = [line for line in lines if reg_a["clientId"] in line or "cli-pj" in line]
    assert len(mine) == 2, result.stdout
    assert any("K3AAA" in line and procs[0] in line for line in mine)
    assert any(line.startswith("peerjs") and procs[1] in line for line in mine)
    result = await off_loop(manage, one, "signalingclients", "--disconnect", "cli-pj")
    assert result.returncode == 0 and "Disconnected cli-pj" in result.stdout, result
    assert await closed(b, timeout=5) == 1008
    result = await off_loop(manage, one, "signalingclients", "--disconnect", "nobody-here")
    assert result.returncode != 0 and "No connected client" in result.stderr
