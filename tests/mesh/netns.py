"""Stations in network namespaces on a private bridge, for real mDNS between them.

Layout (test-infrastructure.md): one namespace holds a bridge with multicast snooping off;
each station gets its own namespace with a veth pair into that bridge, 10.77.0.N/24, a
multicast route, and a whole `runstation` (embedded Redis, daphne, worker, meshd) bound to its
address with mDNS on that interface only. Nothing touches the machine's real interfaces; every
namespace is deleted in `close()`, after every process still inside it (ours: the namespaces are
private) has been killed by its PID.

Times: `logged_at()` (meshd's "meshd starting" / "mDNS advertising" log lines) and the
`created_at` of peer rows are wall-clock times of the same machine, so discovery latency is read
from them, not polled.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.harness import REPO, StationProcess


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)




def log_time(text: str) -> float:
    """A structured log line's `ts=` (UTC, ISO 8601) as a Unix time."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def db_time(text: str | None) -> float | None:
    """A Django DateTimeField as SQLite stores it (UTC, naive) as a Unix time."""
    if not text:
        return None
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def namespace_pids(ns: str) -> list[int]:
    result = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                            timeout=30, check=False)
    return [int(pid) for pid in result.stdout.split() if pid.isdigit()]


def netns_available() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"msprobe{os.getpid() % 100000}"
    try:
        sh("ip", "netns", "add", probe)
    except (subprocess.CalledProcessError, OSError):
        return False
    sh("ip", "netns", "del", probe)
    return True


class NetnsStation(StationProcess):
    """runstation inside namespace `ns`, listening on `address`, mDNS on."""

    def __init__(self, ns: str, address: str, data_dir: Path, env: dict[str, str]) -> None:
        super().__init__(data_dir, port=8080, host=address,
                         env={"MESHSITE_MDNS": "on", **env})
        self.ns = ns

    def command(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns, sys.executable, str(REPO / "manage.py"),
                "runstation", "--port", str(self.port), "--host", self.host,
                "--data-dir", str(self.data_dir), "--interface", self.host]

    def start(self, timeout: float = 90) -> NetnsStation:
        self.launched_at = time.time()
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed by the child's exit
        self.process = subprocess.Popen(self.command(), env=self.env, cwd=REPO, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def query(self, sql: str, *params: object) -> list[dict]:
        """Rows from the station's database, read only ([] while it does not exist yet)."""
        path = self.data_dir / "db.sqlite3"
        if not path.exists():
            return []
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                    timeout=5)) as db:
                db.row_factory = sqlite3.Row
                return [dict(row) for row in db.execute(sql, params).fetchall()]
        except sqlite3.OperationalError:
            return []

    def peers(self) -> list[dict]:
        """The station's peers, read from its database (the test cannot reach 10.77.0.x)."""
        return self.query("SELECT station_id, callsign, endpoint, state, discovery_method, "
                          "authenticated, created_at FROM mesh_peer")

    def logged_at(self, message: str) -> float | None:
        """When the station first logged `message` (Unix time), e.g. "meshd starting" (meshd
        is up, before its mDNS starts) or "mDNS advertising" (registered and announced)."""
        match = re.search(r'ts=(\S+) [^\n]*msg="' + re.escape(message) + '"', self.output())
        return log_time(match.group(1)) if match else None

    def seen_at(self, other: NetnsStation) -> float | None:
        """When this station first recorded `other` as a peer (Unix time)."""
        for peer in self.peers():
            if peer["endpoint"] == other.url:
                return db_time(peer["created_at"])
        return None

    def http(self, path: str) -> str:
        """GET inside the namespace (for the API itself)."""
        code = ("import sys, urllib.request; "
                "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")
        result = subprocess.run(["ip", "netns", "exec", self.ns, sys.executable, "-c", code,
                                 f"{self.url}{path}"], capture_output=True, text=True,
                                timeout=30, check=True)
        return result.stdout

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM runstation (it stops its parts, meshd says its mDNS goodbye); SIGKILL it
        if it hangs; then SIGKILL whatever is still running in the station's namespace (the
        parts run in sessions of their own, out of reach of a process-group kill)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._sweep()
        kill_namespace(self.ns)
        return self.process.returncode


def kill_namespace(ns: str, grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL, every process in namespace `ns` (one of ours), by its PID."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = namespace_pids(ns)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and namespace_pids(ns):
            time.sleep(0.1)


class Lan:
    """A bridge namespace plus one namespace per station. `station_class` builds each station
    (NetnsStation: a whole runstation)."""

    def __init__(self, prefix: str | None = None, station_class: type = NetnsStation) -> None:
        self.prefix = prefix or f"m{os.getpid() % 100000}"
        self.bridge_ns = f"{self.prefix}br"
        self.station_class = station_class
        self.namespaces: list[str] = []
        self.stations: list[NetnsStation] = []
        self.root = Path(tempfile.mkdtemp(prefix="meshsite-lan-"))
        try:
            sh("ip", "netns", "add", self.bridge_ns)
            self.namespaces.append(self.bridge_ns)
            self._in(self.bridge_ns, "ip", "link", "set", "lo", "up")
            self._in(self.bridge_ns, "ip", "link", "add", "br0", "type", "bridge",
                     "mcast_snooping", "0")
            self._in(self.bridge_ns, "ip", "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def _in(self, ns: str, *args: str) -> None:
        sh("ip", "netns", "exec", ns, *args)

    def add_station(self, index: int, env: dict[str, str] | None = None) -> NetnsStation:
        ns = f"{self.prefix}s{index}"
        address = f"10.77.0.{index + 1}"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        outer, inner = f"{self.prefix}b{index}", f"{self.prefix}v{index}"
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        try:
            sh("ip", "link", "set", outer, "netns", self.bridge_ns)
            sh("ip", "link", "set", inner, "netns", ns)
        except BaseException:
            # The pair is still (partly) in the host namespace: take it out again.
            subprocess.run(["ip", "link", "del", outer], capture_output=True, check=False,
                           timeout=30)
            raise
        self._in(self.bridge_ns, "ip", "link", "set", outer, "master", "br0")
        self._in(self.bridge_ns, "ip", "link", "set", outer, "up")
        self._in(ns, "ip", "link", "set", "lo", "up")
        self._in(ns, "ip", "addr", "add", f"{address}/24", "dev", inner)
        self._in(ns, "ip", "link", "set", inner, "up")
        self._in(ns, "ip", "route", "add", "224.0.0.0/4", "dev", inner)
        station = self.station_class(ns, address, self.root / f"st{index}", env or {})
        station.bridge_port = outer  # type: ignore[attr-defined]
        self.stations.append(station)
        return station

    def cut(self, station: NetnsStation) -> None:
        """Pull the station's cable: its bridge port goes down (a silent drop)."""
        self._in(self.bridge_ns, "ip", "link", "set", station.bridge_port, "down")  # type: ignore[attr-defined]

    def mend(self, station: NetnsStation) -> None:
        self._in(self.bridge_ns, "ip", "link", "set", station.bridge_port, "up")  # type: ignore[attr-defined]

    def close(self) -> None:
        """Stop every station, kill what is left in our namespaces, delete them (with them
        their veth pairs and the bridge) and the data dirs. Safe to call twice."""
        for station in self.stations:
            with contextlib.suppress(Exception):
                station.stop()
        for ns in reversed(self.namespaces):
            with contextlib.suppress(Exception):
                kill_namespace(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30,
                           check=False)
        self.namespaces.clear()
        shutil.rmtree(self.root, ignore_errors=True)




def sees(station: NetnsStation, others: list[NetnsStation], state: str = "active") -> bool:
    wanted = {o.host for o in others}
    found = {p["endpoint"].removeprefix("http://").rsplit(":", 1)[0]
             for p in station.peers() if p["state"] == state and p["discovery_method"] == "mdns"}
    return wanted <= found


def state_of(station: NetnsStation, other: NetnsStation) -> str | None:
    for peer in station.peers():
        if peer["endpoint"] == other.url:
            return peer["state"]
    return None
