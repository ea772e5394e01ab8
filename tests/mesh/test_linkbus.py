"""The link bus across processes, on the real Redis: a process keeps a link's owner record for
a moment, a kept record gone stale costs one more round trip (never a failed request), and a
one-way message is never sent by a kept record. The other processes are emulated by coroutines
serving their own bus queues, as `linkbus.serve` does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mesh import linkbus
from meshsite.redisconn import get_async_redis

PEER = "ab" * 16


class Process:
    """Another process on the bus: takes the items of its queue and answers each as told."""

    def __init__(self, name: str, answer: dict[str, Any]) -> None:
        self.queue = linkbus.QUEUE_PREFIX + name
        self.answer = answer
        self.items: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.task: asyncio.Task | None = None

    def record(self) -> str:
        return json.dumps({"q": self.queue, "role": "server", "t": 0})

    async def serve(self) -> None:
        redis = get_async_redis()
        try:
            while True:
                found = await redis.blpop([self.queue], timeout=1)
                if found is None:
                    continue
                item = json.loads(found[1])
                self.items.append(item)
                self.arrived.set()
                if item.get("reply"):
                    await redis.rpush(item["reply"], json.dumps(self.answer))
        finally:
            await redis.aclose()


@pytest.fixture
async def processes() -> AsyncIterator[tuple[Process, Process]]:
    gone = Process("gone", {"error": "no_link", "detail": "the link closed"})
    holder = Process("holder", {"payload": {"servedBy": "holder"}})
    for process in (gone, holder):
        process.task = asyncio.create_task(process.serve())
    linkbus._owners.clear()
    yield gone, holder
    linkbus._owners.clear()
    for process in (gone, holder):
        assert process.task is not None
        process.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await process.task


async def test_a_kept_owner_that_no_longer_holds_the_link_is_read_anew(processes):
    gone, holder = processes
    redis = linkbus._redis()
    await redis.hset(linkbus.OWNERS_KEY, PEER, gone.record())
    assert (await linkbus.owner(PEER))["q"] == gone.queue  # kept in this process now
    await redis.hset(linkbus.OWNERS_KEY, PEER, holder.record())  # the link came up elsewhere

    assert await linkbus.request(PEER, "PING", {"n": 1}, timeout=5) == {"servedBy": "holder"}
    assert [item["payload"] for item in gone.items] == [{"n": 1}]  # the kept record, once
    assert [item["payload"] for item in holder.items] == [{"n": 1}]

    assert await linkbus.request(PEER, "PING", {"n": 2}, timeout=5) == {"servedBy": "holder"}
    assert len(gone.items) == 1  # the record read anew is the one kept now


async def test_a_one_way_message_goes_by_the_record_in_redis(processes):
    gone, holder = processes
    redis = linkbus._redis()
    await redis.hset(linkbus.OWNERS_KEY, PEER, gone.record())
    await linkbus.owner(PEER)
    await redis.hset(linkbus.OWNERS_KEY, PEER, holder.record())

    await linkbus.send(PEER, "ROUTE_UPDATE", {"n": 3})
    await asyncio.wait_for(holder.arrived.wait(), 5)
    assert holder.items[0]["payload"] == {"n": 3} and holder.items[0]["oneway"] is True
    assert gone.items == []


async def test_no_process_holds_the_link_any_more(processes):
    gone, _ = processes
    redis = linkbus._redis()
    await redis.hset(linkbus.OWNERS_KEY, PEER, gone.record())
    await linkbus.owner(PEER)
    await redis.hdel(linkbus.OWNERS_KEY, PEER)

    with pytest.raises(linkbus.BusError) as err:
        await linkbus.request(PEER, "PING", {}, timeout=5)
    assert err.value.code == "no_link"
    assert len(gone.items) == 1
    assert await linkbus.owner(PEER) is None
