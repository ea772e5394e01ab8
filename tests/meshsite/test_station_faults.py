"""A real `runstation` under faults: health names the part that died, start-up names the part
that does not answer, INFO logs carry station events and not task chatter, and whatever stops
the supervisor (kill -9 or SIGTERM) with requests in flight, every process it started is gone
within 10 s."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from tests.faults import InFlight, alive, describe, process_tree, wait_gone
from tests.harness import StationProcess
from tests.mesh.stations import wait_for

pytestmark = pytest.mark.integration

PARTS = {"database", "redis", "web", "worker", "meshd"}
BUSY_PATHS = ["/api/content-catalog", "/healthz", "/api/status", "/admin/login/"]


@pytest.fixture(scope="module")
def station():
    station = StationProcess().start(timeout=60)
    try:
        station.wait_ready(60)
        station.ready_at = time.monotonic()
        yield station
    finally:
        station.stop()


def _healthy(station: StationProcess) -> bool:
    status, _body = station.get("/healthz")
    return status == 200


def _child(station: StationProcess, word: str):
    return next(p for p in process_tree(station.pid)[1:] if word in " ".join(p.cmdline()))


def test_status_and_healthz_report_every_part(station):
    wait_for(lambda: _healthy(station), 60, "/healthz 200")
    _status, health = station.get("/healthz")
    assert set(health["checks"]) == PARTS
    assert health["networkMode"] in {"online", "offline", "degraded", "unknown"}
    _status, body = station.get("/api/status")
    assert set(body["parts"]) == PARTS
    assert all(part["ok"] for part in body["parts"].values()), body["parts"]


def test_healthz_names_meshd_within_seconds_of_its_death(station):
    wait_for(lambda: _healthy(station), 60, "/healthz 200")
    meshd = _child(station, "meshd")
    meshd.kill()
    killed = time.monotonic()
    seen = None
    while time.monotonic() - killed < 5:
        status, body = station.get("/healthz")
        if status == 503 and "meshd" in body["failed"]:
            seen = body
            break
        time.sleep(0.05)
    assert seen is not None, f"/healthz never named meshd after its kill: {body}"
    assert "meshd" in seen["checks"]["meshd"]["detail"]
    # The supervisor restarts it, and health says so once it beats again.
    wait_for(lambda: _healthy(station), 60, "/healthz 200 once meshd is back")


def test_info_log_has_station_events_and_no_task_chatter(station):
    # Wait until the beat has run its 5 s tasks for a while: the connectivity check, one of
    # them, stamps its time; a check 10 s after the station was ready means several rounds.
    ready_wall = time.time() - (time.monotonic() - station.ready_at)

    def beat_ran() -> bool:
        status, body = station.get("/api/mesh/network")
        return status == 200 and float(body.get("checkedAt") or 0) > ready_wall + 10

    wait_for(beat_ran, 60, "the beat's connectivity check ran 10 s after the start")
    output = station.output()
    chatter = [line for line in output.splitlines()
               if re.search(r"Task \S+\[[0-9a-f-]+\] (received|succeeded)|Sending due task", line)]
    assert chatter == []
    started = r"level=info logger=mesh.daemon msg=\"meshd starting\""
    assert re.search(started, output), output[-3000:]


def test_runstation_names_the_worker_that_does_not_answer(tmp_path):
    station = StationProcess(tmp_path, extra_args=("--answer-timeout", "5"))
    station.start(timeout=60)
    try:
        wait_for(lambda: re.search(r"started worker \(pid (\d+)\)", station.output()),
                 30, "the worker started")
        worker = int(re.search(r"started worker \(pid (\d+)\)", station.output())[1])
        os.killpg(worker, signal.SIGSTOP)  # alive, but answers nothing
        wait_for(lambda: "Station started, but" in station.output(), 60, "the start verdict")
        output = station.output()
        assert "Station started, but the Celery worker is not answering" in output
        assert "Station ready" not in output
        os.killpg(worker, signal.SIGCONT)
    finally:
        station.stop()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_supervisor_stopped_with_requests_in_flight_leaves_nothing_after_10s(tmp_path, how):
    station = StationProcess(tmp_path).start(timeout=60)
    tree = []
    try:
        station.wait_ready(60)
        with InFlight(station.host, station.port, BUSY_PATHS) as load:
            wait_for(lambda: load.answered >= 20, 30, "requests answered under load")
            tree = process_tree(station.pid)
            names = " ".join(" ".join(p.cmdline()) for p in tree)
            for part in ("mesh.reaper", "redis", "meshsite.web", "celery", "meshd"):
                assert part in names, describe(tree)
            os.kill(station.pid, how)
            started = time.monotonic()
            left = wait_gone(tree, 10)
            elapsed = time.monotonic() - started
        assert left == [], f"still alive {elapsed:.1f}s after {how.name}: {describe(left)}"
        if how == signal.SIGTERM:
            assert station.process.wait(1) == 0
            assert "station: stopped" in station.output()
    finally:
        for proc in alive(tree):
            proc.kill()
        station.stop()
