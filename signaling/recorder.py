"""Batches session records so the relay never waits on the database.

Connects and closes append to an in-memory batch that one task writes about once a second in a
single transaction; a connection that opens and closes inside one batch becomes one row.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from asgiref.sync import sync_to_async

from signaling import services
from signaling.hub import Connection

logger = logging.getLogger(__name__)

MAX_PENDING = 20000


def _when(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC)


class SessionRecorder:
    def __init__(self, *, process: str, interval: float = 1.0) -> None:
        self.process = process
        self.interval = interval
        self.creates: dict[str, dict[str, Any]] = {}
        self.updates: dict[str, dict[str, Any]] = {}
        self.recorded: set[str] = set()
        self._task: asyncio.Task | None = None

    def _fields(self, conn: Connection, protocol: str) -> dict[str, Any]:
        return {
            "connection_id": conn.conn_id,
            "protocol": protocol,
            "peer_id": conn.client_id[:128],
            "callsign": conn.callsign[:32],
            "licensed": conn.licensed,
            "room": conn.room[:64],
            "remote_addr": conn.remote[:64],
            "process": self.process[:128],
            "started_at": _when(conn.since),
        }

    def opened(self, conn: Connection, protocol: str) -> None:
        if len(self.creates) >= MAX_PENDING:
            return
        self.creates[conn.conn_id] = self._fields(conn, protocol)
        self._kick()

    def closed(self, conn: Connection, protocol: str, *, outcome: str, detail: str = "",
               ended: float) -> None:
        end = {"ended_at": _when(ended), "outcome": outcome, "detail": detail[:200],
               "messages_in": conn.messages_in}
        if conn.conn_id in self.creates:
            self.creates[conn.conn_id].update(end)
        elif conn.conn_id in self.recorded:
            self.recorded.discard(conn.conn_id)
            self.updates[conn.conn_id] = end
        elif len(self.creates) < MAX_PENDING:
            self.creates[conn.conn_id] = {**self._fields(conn, protocol), **end}
        self._kick()

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.interval)
        await self.flush()

    async def flush(self) -> None:
        creates, self.creates = self.creates, {}
        updates, self.updates = self.updates, {}
        for conn_id, fields in creates.items():
            if "ended_at" not in fields:
                self.recorded.add(conn_id)
        if not creates and not updates:
            return
        try:
            await sync_to_async(services.sessions_write)(
                creates=list(creates.values()), updates=list(updates.items()))
        except Exception:
            logger.exception("signaling sessions could not be written",
                             extra={"creates": len(creates), "updates": len(updates)})
        if self.creates or self.updates:
            self._kick()
