"""What a client is told of its room (`signaling.hub.Connection`): nothing before its
REGISTERED, then each join and leave once, whatever order the processes' broadcasts arrive in."""

from __future__ import annotations

import json

from signaling.hub import Connection


def joined(peer: str) -> str:
    return json.dumps({"type": "PEER_JOINED", "peer": {"id": peer}})


def left(peer: str) -> str:
    return json.dumps({"type": "PEER_LEFT", "peerId": peer})


def connection() -> tuple[Connection, list[str]]:
    sent: list[str] = []

    async def send(message: dict) -> None:
        sent.append(message["text"])

    return Connection(ns="signal", send=send, remote="127.0.0.1"), sent


async def test_events_before_registered_wait_and_only_news_follow_it():
    conn, sent = connection()
    await conn.room_event(True, "alice", joined("alice"))  # already in the list it will get
    await conn.room_event(True, "carol", joined("carol"))  # joined after the list was read
    await conn.room_event(False, "dave", left("dave"))  # left before: never in the list
    await conn.room_event(False, "bob", left("bob"))  # in the list, left since
    assert sent == []
    await conn.send_text('{"type":"REGISTERED"}')
    await conn.room_told(["alice", "bob"], first=True)
    assert sent == ['{"type":"REGISTERED"}', joined("carol"), left("bob")]
    # Live from now on: a repeated join or a leave of a stranger changes nothing.
    await conn.room_event(True, "carol", joined("carol"))
    await conn.room_event(False, "bob", left("bob"))
    await conn.room_event(False, "alice", left("alice"))
    await conn.room_event(True, "bob", joined("bob"))
    assert sent[3:] == [left("alice"), joined("bob")]


async def test_a_peer_list_resets_what_the_client_knows():
    conn, sent = connection()
    await conn.room_told([], first=True)
    await conn.room_told(["erin"])  # LIST_PEERS
    await conn.room_event(True, "erin", joined("erin"))
    await conn.room_event(False, "erin", left("erin"))
    assert sent == [left("erin")]


async def test_an_event_arriving_while_the_held_ones_are_sent_queues_behind_them():
    conn, sent = connection()
    gate = []

    async def slow_send(message: dict) -> None:
        sent.append(message["text"])
        if not gate:  # the first held event is being written: another one arrives
            gate.append(1)
            await conn.room_event(False, "carol", left("carol"))

    conn.send = slow_send
    await conn.room_event(True, "carol", joined("carol"))
    await conn.room_told([], first=True)
    assert sent == [joined("carol"), left("carol")]
