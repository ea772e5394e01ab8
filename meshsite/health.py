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


def supervised_part(name: str) -> dict[str, Any] | None:
    """What the supervisor last saw of part `name`, or None when no supervisor records it."""
    with contextlib.suppress(Exception):
        raw = get_redis().hget(PARTS_KEY, name)
        return json.loads(raw) if raw else None
    return None


def heartbeat_check(*, part: str, key: str, what: str, max_age: float) -> CheckResult:
    """ok when `key` holds a time.time() written within `max_age` seconds, by the process the
    supervisor runs now (not one that was replaced since)."""
    try:
        raw = get_redis().get(key)
    except Exception as exc:
        return False, f"{what} heartbeat unreadable: {exc}"
    record = supervised_part(part)
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


def check_database() -> CheckResult:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return False, f"database unreachable: {exc}"
    return True, connection.vendor


def check_redis() -> CheckResult:
    try:
        get_redis().ping()
    except Exception as exc:
        return False, f"redis unreachable: {exc}"
    return True, "pong"


def supervised_web_parts() -> dict[str, dict[str, Any]]:
    """What the supervisor last saw of each web process (`web`, `web-2`, ...)."""
    with contextlib.suppress(Exception):
        raw = get_redis().hgetall(PARTS_KEY)
        parts = {name.decode(): json.loads(value) for name, value in raw.items()}
        return {name: part for name, part in parts.items()
                if name == "web" or name.startswith("web-")}
    return {}


def check_web() -> CheckResult:
    """The web server runs this very check: if it is read, daphne answered. With several web
    processes on the station's socket (`MESHSITE_WEB_PROCESSES`), one the supervisor saw die
    fails the check until it runs again: the others still answer, with less to spare."""
    parts = supervised_web_parts()
    down = [f"{name} (pid {part['pid']}) {part['detail']}" for name, part in sorted(parts.items())
            if part["state"] != "running"]
    if down:
        return False, "web process down: " + "; ".join(down)
    detail = f"daphne (pid {os.getpid()}) answering"
    if len(parts) > 1:
        detail += f", {len(parts)} web processes running"
    return True, detail


def check_worker() -> CheckResult:
    return heartbeat_check(part="worker", key=HEARTBEAT_KEY, what="Celery worker/beat",
                           max_age=settings.HEARTBEAT_MAX_AGE)


def report(*, web: bool = True) -> dict[str, dict[str, Any]]:
    """{part: {ok, detail}} for every part, the apps' registered checks included."""
    checks = {"database": check_database, "redis": check_redis, "web": check_web,
              "worker": check_worker}
    if not web:
        del checks["web"]
    checks.update(station_status.health_checks())
    results = {}
    for name, check in checks.items():
        ok, detail = check()
        results[name] = {"ok": ok, "detail": detail}
    return results
