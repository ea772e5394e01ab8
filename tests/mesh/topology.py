"""Whole stations in network namespaces of their own, joined only by point-to-point cables that a
test can shape (delay, loss, rate), cut and mend: a mesh whose stations reach each other over IP
only where a cable joins them, and everything further only through the mesh.

Layout: one namespace per station (`<prefix>s<i>`, the prefix random per topology, so parallel
runs and leftovers never clash), loopback up, IPv4 forwarding off. Each edge (i, j), the k-th in
the list, is a cable with an interface `to<j>` in station i's namespace (10.78.k.1/24) and `to<i>`
in station j's (10.78.k.2/24): no bridge, no default route, no multicast. Each station is a
whole `runstation` (embedded Redis, daphne, worker, meshd) bound to 0.0.0.0 on port 8000, mDNS
off, its data dir under the test's tmp path, claimed before it starts (the test PKI and
`provision`, like the other namespace tests) by the callsign given for its index, with an owner
token for its API.

The cables are TAP devices joined by `tests/mesh/wire.py`, one process per topology, which does
what `tc qdisc ... netem` would: this machine's kernel is built without `sch_netem`.

The test process has no route into the namespaces: `request`/`get`/`get_json`/`add_peer`/
`publish` run `tests/mesh/netns_client.py` inside the station's namespace against its loopback.
`close()` stops every station by its PID, kills whatever is left in each namespace, stops the
wire and deletes the namespaces, also after a start that failed halfway; it may be called twice.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.certificates import pki
from tests.harness import StationProcess
from tests.mesh.netns import NetnsStation, kill_namespace
from tests.mesh.stations import provision

PORT = 8000
HERE = Path(__file__).resolve().parent
WIRE = HERE / "wire.py"
CLIENT = HERE / "netns_client.py"

# tc's rate units (https://man7.org/linux/man-pages/man8/tc.8.html): bit/s, and bps = bytes/s.
_RATE_UNITS = {"bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000,
               "bps": 8, "kbps": 8_000, "mbps": 8_000_000, "gbps": 8_000_000_000}


def rate_bps(rate: int | str | None) -> int | None:
    """A rate as tc writes it ("256kbit", "1mbit", "10kbps") or in bit/s, as bit/s."""
    if rate is None or isinstance(rate, int):
        return rate
    text = rate.strip().lower()
    for unit in sorted(_RATE_UNITS, key=len, reverse=True):
        number = text.removesuffix(unit)
        if number != text:
            with contextlib.suppress(ValueError):
                return int(float(number) * _RATE_UNITS[unit])
    raise ValueError(f"rate {rate!r}: write it as tc does (256kbit, 1mbit, 10kbps) or as bit/s")


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # names in lower case; a repeated header's values joined by ", "
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class TopologyStation(NetnsStation):
    """runstation in namespace `ns`, on every address of it (port 8000), mDNS off."""

    def __init__(self, ns: str, data_dir: Path, env: dict[str, str]) -> None:
        StationProcess.__init__(self, data_dir, port=PORT,
                                host="0.0.0.0",  # noqa: S104 - inside its own namespace
                                env={**env, "MESHSITE_MDNS": "off"})
        self.ns = ns

    @property
    def url(self) -> str:
        """Its own loopback: the address for requests from inside its namespace."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *StationProcess.command(self)]


class Topology:
    """Stations `callsigns[i]` joined by the cables `edges`; see the module docstring."""

    def __init__(self, callsigns: Sequence[str], edges: Sequence[tuple[int, int]], root: Path,
                 *, env: dict[str, str] | None = None, start_timeout: float = 240) -> None:
        self.callsigns = list(callsigns)
        self.edges = [tuple(edge) for edge in edges]
        self._check_edges()
        self.prefix = f"tp{secrets.token_hex(3)}"
        self.root = Path(root)
        self.namespaces: list[str] = []
        self.stations: list[TopologyStation] = []
        self.tokens: list[str] = []
        self._wire: subprocess.Popen | None = None
        self._closed = False
        self.took: dict[str, float] = {}  # seconds: "claim" (with the network), "start"
        # The test PKI, as test_link_both_ends: a root, a club CA, an operator per station.
        self.pki_root = pki.meshsite_root("ed25519")
        ca = pki.issue(self.pki_root, callsign="DL0CA", ca=True, path_length=0, can_issue=True,
                       license_class="club")
        self.owners = [pki.issue(ca, callsign=call) for call in self.callsigns]
        try:
            self.stations = [
                TopologyStation(f"{self.prefix}s{i}",
                                self.root / f"st{i}-{call.lower()}", dict(env or {}))
                for i, call in enumerate(self.callsigns)]
            # Side by side: migrations and claims run while the namespaces are built.
            began = time.monotonic()
            with ThreadPoolExecutor(len(self.stations)) as pool:
                claimed = pool.map(self._claim, range(len(self.stations)))
                self._build_network()
                self.tokens = list(claimed)
            self.took["claim"] = time.monotonic() - began
            for station in self.stations:
                station.start()
            for station in self.stations:
                station.wait_ready(start_timeout)
            self.took["start"] = time.monotonic() - began - self.took["claim"]
        except BaseException:
            self.close()
            raise

    # --- construction -----------------------------------------------------------------------

    def _check_edges(self) -> None:
        if not self.callsigns:
            raise ValueError("a topology needs at least one station (callsigns is empty)")
        seen: set[frozenset[int]] = set()
        for i, j in self.edges:
            if not (0 <= i < len(self.callsigns) and 0 <= j < len(self.callsigns)) or i == j:
                raise ValueError(f"edge ({i}, {j}): both ends must be different stations "
                                 f"0..{len(self.callsigns) - 1}")
            if frozenset((i, j)) in seen:
                raise ValueError(f"edge ({i}, {j}) given twice: one cable per pair")
            seen.add(frozenset((i, j)))

    def _claim(self, index: int) -> str:
        return provision(self.stations[index], roots=[self.pki_root], owner=self.owners[index],
                         callsign=self.callsigns[index])

    def _build_network(self) -> None:
        for station in self.stations:
            _ip("netns", "add", station.ns)
            self.namespaces.append(station.ns)
            _ip("-n", station.ns, "link", "set", "lo", "up")
            # No routing through a station: a non-neighbour is reached through the mesh only.
            _ip("netns", "exec", station.ns, "sh", "-c",
                "echo 0 > /proc/sys/net/ipv4/ip_forward")
        cables = [[self.namespace(i), f"to{j}", self.namespace(j), f"to{i}"]
                  for i, j in self.edges]
        (self.root / "wire.log").parent.mkdir(parents=True, exist_ok=True)
        with open(self.root / "wire.log", "ab") as log:
            self._wire = subprocess.Popen([sys.executable, str(WIRE), json.dumps(cables)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=log, start_new_session=True)
        self._wire_answer("ready")
        for i, j in self.edges:
            for a, b in ((i, j), (j, i)):
                _ip("-n", self.namespace(a), "addr", "add", f"{self.address(a, b)}/24",
                    "dev", f"to{b}")
                _ip("-n", self.namespace(a), "link", "set", f"to{b}", "up")

    def _wire_answer(self, expected: str) -> None:
        assert self._wire is not None and self._wire.stdout is not None
        line = self._wire.stdout.readline().decode().strip()
        if line != expected:
            raise RuntimeError(f"the cable process said {line!r}, not {expected!r}:\n"
                               f"{(self.root / 'wire.log').read_text(errors='replace')[-3000:]}")

    # --- where things are ---------------------------------------------------------------------

    def namespace(self, i: int) -> str:
        return f"{self.prefix}s{i}"

    def _edge(self, i: int, j: int) -> int:
        for index, edge in enumerate(self.edges):
            if edge in ((i, j), (j, i)):
                return index
        raise KeyError(f"no edge between {i} and {j} (edges: {self.edges})")

    def address(self, i: int, j: int) -> str:
        """Station i's address on its cable to station j."""
        k = self._edge(i, j)
        return f"10.78.{k}.{1 if self.edges[k][0] == i else 2}"

    def url(self, i: int, j: int) -> str:
        """Station i's URL as station j reaches it (over their cable)."""
        return f"http://{self.address(i, j)}:{PORT}"

    # --- the cables ---------------------------------------------------------------------------

    def shape(self, i: int, j: int, *, delay_ms: float = 0, loss_pct: float = 0,
              rate: int | str | None = None) -> None:
        """Both directions of cable (i, j): each frame dropped with `loss_pct` %, else sent at
        `rate` (bit/s or tc's "1mbit") and delivered `delay_ms` later, so a round trip takes
        2 x delay_ms. All zero/None: a plain cable again."""
        assert self._wire is not None and self._wire.stdin is not None
        command = {"cable": self._edge(i, j), "delay_ms": delay_ms, "loss_pct": loss_pct,
                   "rate_bps": rate_bps(rate)}
        self._wire.stdin.write(json.dumps(command).encode() + b"\n")
        self._wire.stdin.flush()
        self._wire_answer("ok")

    def cut(self, i: int, j: int) -> None:
        """Both ends of cable (i, j) down: a silent drop, nothing said to either station."""
        _ip("-n", self.namespace(i), "link", "set", f"to{j}", "down")
        _ip("-n", self.namespace(j), "link", "set", f"to{i}", "down")

    def mend(self, i: int, j: int) -> None:
        _ip("-n", self.namespace(i), "link", "set", f"to{j}", "up")
        _ip("-n", self.namespace(j), "link", "set", f"to{i}", "up")

    # --- from inside a station's namespace ----------------------------------------------------

    def _client(self, i: int, *args: str, body: bytes = b"", timeout: float = 10) -> dict:
        result = subprocess.run(["ip", "netns", "exec", self.namespace(i), sys.executable,
                                 str(CLIENT), *args], input=body, capture_output=True,
                                timeout=timeout + 30, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"netns_client {' '.join(args)} in {self.namespace(i)}: "
                               f"{result.stderr.decode(errors='replace')[-2000:]}")
        return json.loads(result.stdout)

    def request(self, i: int, path: str, *, method: str = "GET", body: bytes = b"",
                headers: dict[str, str] | None = None, timeout: float = 10) -> HttpResponse:
        """An HTTP request to station i's API (any body, any headers: Range, If-None-Match,
        Authorization...); redirects are not followed. Raises ConnectionError when the
        station does not answer."""
        args = ["request", self.stations[i].url + path, "--method", method,
                "--timeout", str(timeout)]
        for name, value in (headers or {}).items():
            args += ["--header", f"{name}: {value}"]
        answer = self._client(i, *args, body=body, timeout=timeout)
        if "error" in answer:
            raise ConnectionError(f"{method} {path} on {self.callsigns[i]}: {answer['error']}")
        joined: dict[str, str] = {}
        for name, value in answer["headers"]:
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        return HttpResponse(answer["status"], joined, base64.b64decode(answer["body"]))

    def get(self, i: int, path: str, *, headers: dict[str, str] | None = None,
            timeout: float = 10) -> HttpResponse:
        return self.request(i, path, headers=headers, timeout=timeout)

    def get_json(self, i: int, path: str, *, headers: dict[str, str] | None = None,
                 timeout: float = 10) -> tuple[int, Any]:
        """(status, parsed body), like StationProcess.get."""
        response = self.get(i, path, headers={"Accept": "application/json", **(headers or {})},
                            timeout=timeout)
        return response.status, response.json()

    def _as_owner(self, i: int, path: str, body: bytes, content_type: str) -> dict:
        response = self.request(i, path, method="POST", body=body, headers={
            "Authorization": f"Bearer {self.tokens[i]}", "Content-Type": content_type,
            "Accept": "application/json"})
        assert response.status == 201, (f"POST {path} on {self.callsigns[i]}: "
                                        f"{response.status} {response.body[:2000]!r}")
        return response.json()

    def add_peer(self, i: int, j: int) -> dict:
        """Station i's owner adds station j by its URL on their cable (POST /api/peers); only
        i dials. Returns i's new peer row."""
        return self._as_owner(i, "/api/peers", json.dumps({"endpoint": self.url(j, i)}).encode(),
                              "application/json")

    def peer(self, i: int, j: int) -> dict | None:
        """Station j's row in station i's /api/peers (by callsign), or None."""
        status, peers = self.get_json(i, "/api/peers")
        assert status == 200, peers
        return next((p for p in peers if p["callsign"] == self.callsigns[j]), None)

    def publish(self, i: int, path: str, body: bytes, priority: int,
                content_type: str = "text/plain") -> dict:
        """Station i's owner publishes `body` at /c/<callsign>/<path> (POST
        /api/content-catalog, as tests/catalog/test_content_api.py); returns the entry."""
        query = urllib.parse.urlencode({"path": path, "priority": priority})
        return self._as_owner(i, f"/api/content-catalog?{query}", body, content_type)

    def connect(self, i: int, host: str, port: int = PORT, timeout: float = 3) -> bool:
        """Whether a TCP connection from station i's namespace to host:port succeeds."""
        return self._client(i, "connect", host, str(port), "--timeout", str(timeout),
                            timeout=timeout)["connected"]

    def ping(self, i: int, j: int, count: int = 3, timeout: float = 2) -> list[float | None]:
        """Round trips (ms; None: lost) of ICMP echoes from station i to j over their cable."""
        return self._client(i, "echo", self.address(j, i), "--count", str(count), "--timeout",
                            str(timeout), timeout=count * timeout)["rtt_ms"]

    # --- the end ------------------------------------------------------------------------------

    def print_logs(self, lines: int = 150) -> None:
        """The last `lines` lines of each station's log (its access log and request warnings
        left out) and of the cable process's, on stdout."""
        for i, station in enumerate(self.stations):
            # Without the access log (a station pinged every second fills its tail with it) and
            # django.request's 404/504 warnings (a test polling a page fills it with those).
            tail = [line for line in station.output().splitlines()
                    if "logger=meshsite.access" not in line
                    and "logger=django.request" not in line][-lines:]
            print(f"\n----- station {i} {self.callsigns[i]} ({station.ns}): "
                  f"last {len(tail)} log lines -----", *tail, sep="\n")
        wire = self.root / "wire.log"
        if wire.exists():
            print("\n----- cables (wire.log) -----",
                  *wire.read_text(errors="replace").splitlines()[-lines:], sep="\n")

    def close(self) -> None:
        """Stop the stations (SIGTERM, then SIGKILL, by PID; side by side), whatever is left in
        their namespaces, the cable process; delete the namespaces. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.stations:
            with ThreadPoolExecutor(len(self.stations)) as pool:
                for future in [pool.submit(station.stop) for station in self.stations]:
                    with contextlib.suppress(Exception):
                        future.result()
        if self._wire is not None:
            with contextlib.suppress(Exception):
                self._wire.stdin.close()  # type: ignore[union-attr]
            try:
                self._wire.wait(5)
            except subprocess.TimeoutExpired:
                self._wire.kill()
                self._wire.wait(10)
            with contextlib.suppress(Exception):
                self._wire.stdout.close()  # type: ignore[union-attr]
        for ns in reversed(self.namespaces):
            with contextlib.suppress(Exception):
                kill_namespace(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30,
                           check=False)
        self.namespaces.clear()

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
