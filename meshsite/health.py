"""Whether each part of a station answers: database, Redis, the web server, the Celery worker and
the apps' own parts (the mesh daemon). `/healthz`, `/api/status` and `runstation` read the same
report.

Worker and mesh daemon prove they live by a heartbeat in Redis. A heartbeat only expires
seconds after its writer died, and a part the supervisor restarts at once would hide its own
death, so `runstation` also records here what its supervisor saw of each part (running, exited
and restarting, stopped): a part that exited, or was restarted and has not beaten since, fails
at once. Processes not started by `runstation` (daphnes scaled out behind a proxy) have no such
record, and their health rests on the heartbeats alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection

from meshsite import status as station_status
from meshsite.redisconn import get_redis
from meshsite.tasks import HEARTBEAT_KEY

PARTS_KEY = "meshsite:station:parts"

CheckResult = tuple[bool, str]


def parts_record(parts: dict[str, dict[str, Any]], *, client: Any = None) -> None:
    """Replace the supervisor's view of its parts ({name: {state, pid, since, detail}})."""
    pipe = (client or get_redis()).pipeline()
    pipe.delete(PARTS_KEY)
    if parts:
        pipe.hset(PARTS_KEY, mapping={name: json.dumps(part) for name, part in parts.items()})
    pipe.execute()


def _heartbeat(raw: bytes | None, record: dict[str, Any] | None, *, what: str,
               max_age: float) -> CheckResult:
    """ok when `raw` (a heartbeat key's value) is a time.time() written within `max_age`
    seconds, by the process the supervisor runs now (`record`: not one replaced since)."""
    if record is not None and record["state"] != "running":
        return False, f"{what} (pid {record['pid']}) {record['detail']}"
    if raw is None:
        return False, f"no heartbeat from the {what} within the last {max_age:.0f}s"
    beat = float(raw)
    age = time.time() - beat
    if age > max_age:
        return False, f"last {what} heartbeat {age:.0f}s ago (limit {max_age:.0f}s)"
    if record is not None and beat < record["since"]:
        return False, (f"{what} restarted (pid {record['pid']}) and has not sent a heartbeat "
                       "since")
    pid = f"pid {record['pid']}, " if record is not None else ""
    return True, f"{pid}heartbeat {age:.1f}s ago"


@dataclass
class _Snapshot:
    """What the checks read from Redis, in one round trip (`/api/status` is polled, and on a
    busy station each round trip waits its turn: one instead of six)."""

    error: str = ""  # Redis did not answer: why
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)  # the supervisor's record
    beats: dict[str, bytes | None] = field(default_factory=dict)  # heartbeat key -> value


def _snapshot(keys: list[str]) -> _Snapshot:
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.ping()
        pipe.hgetall(PARTS_KEY)
        for key in keys:
            pipe.get(key)
        _pong, parts, *beats = pipe.execute()
    except Exception as exc:
        return _Snapshot(error=str(exc) or type(exc).__name__)
    snapshot = _Snapshot(beats=dict(zip(keys, beats, strict=True)))
    for name, value in parts.items():
        with contextlib.suppress(ValueError, TypeError):
            snapshot.parts[name.decode()] = json.loads(value)
    return snapshot


def check_database() -> CheckResult:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return False, f"database unreachable: {exc}"
    return True, connection.vendor


def _check_web(parts: dict[str, dict[str, Any]]) -> CheckResult:
    """The web server runs this very check: if it is read, daphne answered. With several web
    processes on the station's socket (`MESHSITE_WEB_PROCESSES`), one the supervisor saw die
    fails the check until it runs again: the others still answer, with less to spare."""
    web = {name: part for name, part in parts.items() if name == "web" or name.startswith("web-")}
    down = [f"{name} (pid {part['pid']}) {part['detail']}" for name, part in sorted(web.items())
            if part["state"] != "running"]
    if down:
        return False, "web process down: " + "; ".join(down)
    detail = f"daphne (pid {os.getpid()}) answering"
    if len(web) > 1:
        detail += f", {len(web)} web processes running"
    return True, detail


def report(*, web: bool = True) -> dict[str, dict[str, Any]]:
    """{part: {ok, detail}} for every part, the apps' registered checks included: the
    database, Redis, the web server, the worker and every registered heartbeat (meshd) from one
    Redis round trip, then any other check an app registered."""
    beats = {"worker": ("worker", HEARTBEAT_KEY, "Celery worker/beat",
                        float(settings.HEARTBEAT_MAX_AGE))}
    beats.update(station_status.health_heartbeats())
    snapshot = _snapshot([key for _part, key, _what, _age in beats.values()])
    results: dict[str, CheckResult] = {"database": check_database()}
    results["redis"] = ((False, f"redis unreachable: {snapshot.error}") if snapshot.error
                        else (True, "pong"))
    if web:
        results["web"] = _check_web(snapshot.parts)
    for name, (part, key, what, max_age) in beats.items():
        results[name] = ((False, f"{what} heartbeat unreadable: {snapshot.error}")
                         if snapshot.error else
                         _heartbeat(snapshot.beats[key], snapshot.parts.get(part), what=what,
                                    max_age=max_age))
    for name, check in station_status.health_checks().items():
        results[name] = check()
    return {name: {"ok": ok, "detail": detail} for name, (ok, detail) in results.items()}
