"""`runstation` as a real subprocess: it serves, its parts work, and it stops without leftovers."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest
from celery import Celery

from tests.faults import alive, describe, process_tree, wait_gone
from tests.harness import REPO, StationProcess, free_port, station_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def station():
    station = StationProcess()
    started = time.monotonic()
    station.start(timeout=30)
    station.started_in = time.monotonic() - started
    station.wait_ready(60)
    yield station
    station.stop()


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def test_status_answers_within_30s(station):
    assert station.started_in < 30
    status, body = station.get("/api/status")
    assert status == 200
    assert body["state"] == "unclaimed"
    assert body["endpoint"] == station.url


def test_admin_login_renders_with_its_css(station):
    with urllib.request.urlopen(station.url + "/admin/login/", timeout=10) as response:
        html = response.read().decode()
    assert "Django administration" in html or "Meshsite" in html
    stylesheets = re.findall(r'href="([^"]+\.css)"', html)
    assert stylesheets, "the admin page links its stylesheets"
    for href in stylesheets:
        with urllib.request.urlopen(station.url + href, timeout=10) as css:
            assert css.status == 200
            assert css.headers["Content-Type"].startswith("text/css")
            assert len(css.read()) > 100


def test_celery_task_round_trips_through_the_embedded_redis(station):
    socket_path = station.data_dir / "redis.sock"
    assert socket_path.exists()
    app = Celery(broker=f"redis+socket://{socket_path}", backend=f"redis+socket://{socket_path}")
    result = app.send_task("meshsite.tasks.echo", args=["hello from the test"], ignore_result=False)
    assert result.get(timeout=30) == "hello from the test"
    assert "worker: ok, task round trip" in station.output()


def test_healthz_reports_all_parts_alive(station):
    deadline = time.monotonic() + 30
    status, body = station.get("/healthz")
    while status != 200 and time.monotonic() < deadline:
        time.sleep(1)
        status, body = station.get("/healthz")
    assert status == 200, body
    assert body["failed"] == []


def test_static_files_and_station_page_served_without_debug(station):
    with urllib.request.urlopen(station.url + "/", timeout=10) as response:
        html = response.read().decode()
    assert "<svg" in html and "Unclaimed station" in html
    with urllib.request.urlopen(station.url + "/static/css/station.css", timeout=10) as css:
        assert css.status == 200


def test_second_runstation_on_same_data_dir_refuses(station):
    other = StationProcess(data_dir=station.data_dir)
    result = subprocess.run(other.command(), env=other.env, cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "already running on data dir" in result.stderr


def test_port_in_use_gives_clear_message(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        station = StationProcess(data_dir=tmp_path, port=port)
        result = subprocess.run(station.command(), env=station.env, cwd=REPO,
                                capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


def test_bad_environment_value_exits_nonzero_naming_it(tmp_path):
    env = station_env(tmp_path, MESHSITE_PORT="not-a-port")
    result = subprocess.run([sys.executable, "manage.py", "runstation", "--no-mdns"], env=env,
                            cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "MESHSITE_PORT" in result.stderr


def test_version_flag_prints_release_and_build(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "runstation", "--version"],
                            env=station_env(tmp_path), cwd=REPO, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0
    assert re.fullmatch(r"\d+\.\d+\.\d+\+\S+", result.stdout.strip())


def _web_processes(pid: int) -> list[psutil.Process]:
    return [p for p in _tree(pid) if "-m meshsite.web" in " ".join(p.cmdline())]


def _until_web_processes(pid: int, count: int, timeout: float = 60) -> None:
    """Wait (up to `timeout`) until the station runs `count` web processes; the caller checks."""
    deadline = time.monotonic() + timeout
    while len(_web_processes(pid)) < count and time.monotonic() < deadline:
        time.sleep(0.2)


def test_dead_web_part_is_restarted():
    station = StationProcess(env={"MESHSITE_WEB_PROCESSES": "1"}).start(timeout=30)
    try:
        station.wait_ready(60)
        _web_processes(station.pid)[0].kill()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "restarted web" not in station.output():
            time.sleep(0.2)
        assert "exited with code" in station.output()
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            try:
                status, _ = station.get("/api/status")
            except OSError:  # refused while daphne comes back
                status = None
            if status == 200:
                break
            time.sleep(0.3)
        assert status == 200
    finally:
        station.stop()


def test_two_web_processes_share_the_socket_and_one_dying_is_reported_and_replaced():
    """The default: two daphnes accept on the socket runstation opened. One killed, the other
    answers at once (the socket never stops listening) and /healthz names the dead one until
    the supervisor has replaced it."""
    station = StationProcess(env={"MESHSITE_WEB_PROCESSES": "2"}).start(timeout=30)
    try:
        station.wait_ready(60)
        _until_web_processes(station.pid, 2)
        webs = _web_processes(station.pid)
        assert len(webs) == 2, [p.cmdline() for p in _tree(station.pid)]
        # Both serve: each answer names the pid that served it.
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while len(seen) < 2 and time.monotonic() < deadline:
            status, body = station.get("/healthz")
            seen.add(re.search(r"pid (\d+)", body["checks"]["web"]["detail"]).group(1))
        assert seen == {str(p.pid) for p in webs}
        victim = webs[1]
        victim.kill()
        victim.wait(10)
        reported = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not reported:
            status, body = station.get("/healthz")  # never refused: the other one accepts
            reported = status == 503 and "web process down" in body["checks"]["web"]["detail"]
        assert reported, body
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, body = station.get("/healthz")
            if body["checks"]["web"]["ok"] and len(_web_processes(station.pid)) == 2:
                break
            time.sleep(0.3)
        assert body["checks"]["web"]["ok"], body
        assert victim.pid not in {p.pid for p in _web_processes(station.pid)}
        assert "restarted web" in station.output()
    finally:
        station.stop()


def test_sigterm_stops_every_process_within_10s():
    station = StationProcess(port=free_port(), env={"MESHSITE_WEB_PROCESSES": "2"}).start(
        timeout=60)
    station.wait_ready(60)
    _until_web_processes(station.pid, 2)
    # Every PID the station started, by parent PID: the parts are session leaders of their own.
    tree = process_tree(station.pid)
    commands = [" ".join(p.cmdline()) for p in tree]
    parts = {"-m mesh.reaper": 0, "redis-server": 0, "-m meshsite.web": 0, "-m celery": 0,
             "-m meshsite meshd": 0}
    for command in commands[1:]:
        matches = [part for part in parts if part in command]
        assert len(matches) == 1, f"not a part of the station: {command}"
        parts[matches[0]] += 1
    # One of each but the two web processes, and the worker's embedded beat (a grandchild);
    # Redis may have forked for a background save, and that child must go too.
    assert parts["redis-server"] >= 1
    assert {**parts, "redis-server": 1} == {"-m mesh.reaper": 1, "redis-server": 1,
                                            "-m meshsite.web": 2, "-m celery": 2,
                                            "-m meshsite meshd": 1}, commands
    started = time.monotonic()
    code = station.stop(timeout=15)
    elapsed = time.monotonic() - started
    assert wait_gone(tree, 2) == [], describe(alive(tree))
    assert elapsed < 10
    assert code == 0
    assert "station: stopped" in station.output()


def test_station_database_is_sqlite_in_wal_mode(station):
    import sqlite3

    db = station.data_dir / "db.sqlite3"
    assert db.exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (station.data_dir / "secret_key").stat().st_mode & 0o777 == 0o600
