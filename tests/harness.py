"""Real stations and daphne processes for integration tests.

Every process here is a real subprocess on 127.0.0.1 with a data dir of its own; each is stopped
by its PID (and its process group) when the test ends. When the test run has a DATABASE_URL
(PostgreSQL), each data dir also gets a database of its own on that server, created on first
use and dropped at the end of the session (`station_databases_drop`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

# Each phase's report of a test, kept on its item by tests/conftest.py's makereport hook.
PHASE_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def test_item_failed(item: pytest.Item) -> bool:
    """Whether any phase of `item` has failed so far (for fixtures that dump logs then)."""
    return any(report.failed for report in item.stash.get(PHASE_REPORTS, {}).values())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# The test run's PostgreSQL server (its own database is pytest-django's test_* copy of it).
_SERVER_URL = os.environ.get("DATABASE_URL", "")
_station_databases: dict[str, tuple[str, str]] = {}  # data dir -> (database name, URL)


def _on_server(statement: str) -> None:
    import psycopg

    with psycopg.connect(_SERVER_URL, autocommit=True) as connection:
        connection.execute(statement)


def station_database_url(data_dir: Path | str) -> str | None:
    """None on SQLite (each station keeps db.sqlite3 in its data dir). With a DATABASE_URL for
    the test run, the URL of a database of the station's own on the same server: one per data
    dir (processes sharing a data dir share it, like a station's daphnes), created once."""
    if not _SERVER_URL.startswith(("postgres://", "postgresql://", "pgsql://")):
        return None
    key = str(Path(data_dir).resolve())
    if key not in _station_databases:
        name = f"meshsite_station_{secrets.token_hex(6)}"
        if not _station_databases:  # scripts that use the harness outside pytest clean up too
            atexit.register(station_databases_drop)
        _on_server(f'CREATE DATABASE "{name}"')
        url = urllib.parse.urlsplit(_SERVER_URL)._replace(path=f"/{name}").geturl()
        _station_databases[key] = (name, url)
    return _station_databases[key][1]


def station_databases_drop() -> None:
    """Drop every station database this session created (their processes are stopped by
    now; FORCE ends any connection a killed process left behind)."""
    while _station_databases:
        _, (name, _url) = _station_databases.popitem()
        with contextlib.suppress(Exception):
            _on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def station_env(data_dir: Path | str, **overrides: str) -> dict[str, str]:
    """The environment of a station subprocess: this process's environment without any
    MESHSITE_* / REDIS_URL / DATABASE_URL of the test run, plus the station's own database on
    the test run's PostgreSQL server if it has one, plus the given overrides."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("MESHSITE_") and key not in {"REDIS_URL", "DATABASE_URL"}}
    env.update({
        "DJANGO_SETTINGS_MODULE": "meshsite.settings",
        "MESHSITE_DATA_DIR": str(data_dir),
        "MESHSITE_MDNS": "off",
        "MESHSITE_LOG_LEVEL": "info",
        "PYTHONUNBUFFERED": "1",
        # One web process per test station (a station's default is 2): tests start up to five
        # stations on a 2-core machine. tests/meshsite/test_runstation.py runs two.
        "MESHSITE_WEB_PROCESSES": "1",
    })
    database_url = station_database_url(data_dir)
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(overrides)
    return env


def http_json(url: str, *, method: str = "GET", body: Any = None, headers: dict | None = None,
              timeout: float = 10) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def _wait_http(url: str, process: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-4000:]
            raise RuntimeError(f"process exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s:\n{log.read_text()[-4000:]}")


class _Managed:
    process: subprocess.Popen | None = None
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM and wait; SIGKILL the process group if it does not stop in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        code = self.process.returncode
        self._sweep()
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self._sweep()

    def _sweep(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)


class StationProcess(_Managed):
    """`manage.py runstation` as a real subprocess on a free port with its own data dir."""

    def __init__(self, data_dir: Path | str | None = None, port: int | None = None,
                 env: dict[str, str] | None = None, extra_args: tuple[str, ...] = (),
                 host: str = "127.0.0.1") -> None:
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="meshsite-st-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = host
        self.env = station_env(self.data_dir, **(env or {}))
        self.extra_args = list(extra_args)
        self.log_path = self.data_dir / "runstation.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, str(REPO / "manage.py"), "runstation", "--port", str(self.port),
                "--host", self.host, "--data-dir", str(self.data_dir), "--no-mdns",
                *self.extra_args]

    def start(self, timeout: float = 60) -> StationProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed by the child's exit
        self.process = subprocess.Popen(self.command(), env=self.env, cwd=REPO, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        _wait_http(self.url + "/api/status", self.process, timeout, self.log_path)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait for the whole start (worker round trip included), not only the web server."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Station ready" in self.output():
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"station exited:\n{self.output()[-4000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"station not ready in {timeout}s:\n{self.output()[-4000:]}")

    def manage(self, *args: str, input_text: str | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "manage.py"), *args], env=self.env,
                              cwd=REPO, capture_output=True, text=True, input=input_text,
                              timeout=timeout, check=False)

    def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return http_json(self.url + path, **kwargs)


def migrate(data_dir: Path | str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, str(REPO / "manage.py"), "migrate", "--noinput", "-v", "0"],
                   env=env, cwd=REPO, check=True, timeout=180)


class DaphneProcess(_Managed):
    """A bare daphne serving `meshsite.asgi` on 127.0.0.1 (data dir already migrated; set
    REDIS_URL in `env` to share a Redis between several processes)."""

    def __init__(self, data_dir: Path | str, port: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.env = env if env is not None else station_env(self.data_dir)
        self.log_path = self.data_dir / f"daphne-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> DaphneProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
             "--ping-interval", self.env.get("MESHSITE_SIGNALING_PING_INTERVAL", "5"),
             "--ping-timeout", self.env.get("MESHSITE_SIGNALING_PING_TIMEOUT", "5"),
             "meshsite.asgi:application"],
            env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        _wait_http(self.url + "/api/status", self.process, timeout, self.log_path)
        return self
