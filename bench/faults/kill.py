"""kill -9 figures: `python -m bench.faults kill [--trials N] [--clients N] [--seed N]`.

Two claimed stations on 127.0.0.1: A, the victim, and B, a peer linked to it that replicates
what A publishes (priority 1, essential). Each trial: `--clients` threads publish through A's API
(`POST /api/content-catalog`, bodies of random size); at a random moment A is killed with
SIGKILL, alternately the supervisor alone (as the OOM killer would) and every process of the
station at once (a power cut: all stopped first, then all killed). Then:

- within 10 s nothing of the old station is alive (every PID it had started, found by parent PID
  before the kill, whatever session it moved to); what is left is counted and killed;
- A restarts (`runstation`, timed until it prints "Station ready": every part answering) and
  starts clean (no traceback, /healthz 200);
- every publish answered 201 is there with its exact body, and no entry of the trial is partial
  (each one's body is one of the bodies sent for its path, whole).

Figures: acknowledged entries lost (target 0), leftover processes (target 0), unclean starts
(target 0), restart time p50/p95/max. Exit status 1 when a target is missed. Every process is
started here and stopped by its PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.certificates import pki
from tests.faults import describe, process_tree, wait_gone
from tests.harness import StationProcess
from tests.mesh.stations import provision, wait_for

FAST = {"MESHSITE_MESH_GOSSIP_INTERVAL": "5", "MESHSITE_CATALOG_SYNC_INTERVAL": "5",
        "MESHSITE_MESH_RECONNECT_MAX": "2", "MESHSITE_MESH_DIAL_LEARNT_PEERS": "off"}
GONE_WITHIN = 10.0


@dataclass
class Publish:
    path: str
    body: bytes
    status: int | None = None  # None: no answer (the station died under it)


@dataclass
class Figures:
    acknowledged: int = 0
    unanswered: int = 0
    lost: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    unclean: list[str] = field(default_factory=list)
    restart_seconds: list[float] = field(default_factory=list)
    gone_seconds: list[float] = field(default_factory=list)


def _request(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
             method: str = "GET", timeout: float = 15) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Clients:
    """`count` threads publishing through the API until stopped; every attempt is recorded."""

    def __init__(self, station: StationProcess, token: str, prefix: str, count: int,
                 rng: random.Random) -> None:
        self.station, self.token, self.prefix = station, token, prefix
        self.stopping = threading.Event()
        self.first_ack = threading.Event()
        self.publishes: list[Publish] = []
        self.lock = threading.Lock()
        self.seeds = [rng.getrandbits(32) for _ in range(count)]
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(count)]

    def __enter__(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self, number: int) -> None:
        rng = random.Random(self.seeds[number])
        sequence = 0
        while not self.stopping.is_set():
            sequence += 1
            path = f"{self.prefix}/c{number}/{sequence}.bin"
            body = f"{path}\n".encode() + rng.randbytes(rng.randint(1, 256 * 1024))
            publish = Publish(path, body)
            with self.lock:
                self.publishes.append(publish)
            query = urllib.parse.urlencode({"path": path, "priority": 1})
            try:
                publish.status, _ = _request(
                    f"{self.station.url}/api/content-catalog?{query}", data=body, method="POST",
                    headers={"Authorization": f"Bearer {self.token}",
                             "Content-Type": "application/octet-stream"})
                if publish.status == 201:
                    self.first_ack.set()
            except OSError:
                publish.status = None
                time.sleep(0.05)


def catalog_entries(station: StationProcess, origin: str) -> list[dict]:
    entries, page = [], 1
    while True:
        status, raw = _request(f"{station.url}/api/content-catalog?origin={origin}"
                               f"&pageSize=500&page={page}")
        if status != 200:
            raise RuntimeError(f"content catalog of {station.url} answered {status}: {raw[:200]!r}")
        data = json.loads(raw)
        entries.extend(data["entries"])
        if not data.get("next"):
            return entries
        page += 1


def _answers(station: StationProcess) -> bool:
    try:
        return _request(station.url + "/api/status", timeout=2)[0] == 200
    except OSError:
        return False


def body_at(station: StationProcess, origin: str, path: str) -> bytes | None:
    status, raw = _request(f"{station.url}/c/{origin}/{urllib.parse.quote(path)}", timeout=30)
    return raw if status == 200 else None


def check_trial(station: StationProcess, origin: str, prefix: str, publishes: list[Publish],
                figures: Figures) -> None:
    sent: dict[str, set[bytes]] = {}
    for publish in publishes:
        sent.setdefault(publish.path, set()).add(publish.body)
        if publish.status == 201 and body_at(station, origin, publish.path) != publish.body:
            figures.lost.append(publish.path)
    for entry in catalog_entries(station, origin):
        if not entry["path"].startswith(prefix + "/"):
            continue
        body = body_at(station, origin, entry["path"])
        if body is None or body not in sent.get(entry["path"], set()) \
                or entry["size"] != len(body):
            figures.partial.append(entry["path"])


def kill_station(station: StationProcess, power_cut: bool) -> list:
    tree = process_tree(station.pid)
    if power_cut:
        for proc in tree:  # stop all first, so none sees another die: everything at one instant
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGSTOP)
        for proc in tree:
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGKILL)
    else:
        os.kill(station.pid, signal.SIGKILL)
    return tree


def restart(station: StationProcess, trial: int, figures: Figures) -> bool:
    station.log_path = station.data_dir / f"runstation-{trial}.log"
    started = time.monotonic()
    try:
        station.start(timeout=90)
        wait_for(lambda: "Station ready" in station.output()
                 or "Station started, but" in station.output()
                 or station.process.poll() is not None, 90, "the start verdict", interval=0.1)
    except (RuntimeError, AssertionError) as exc:
        figures.unclean.append(f"trial {trial}: did not start: {str(exc)[-500:]}")
        return False
    output = station.output()
    if "Station ready" not in output:
        figures.unclean.append(f"trial {trial}: {output[-800:]}")
        return "Station started, but" in output
    figures.restart_seconds.append(time.monotonic() - started)
    # "Station ready" means every part answered (runstation's own check); clean means also
    # that nothing went wrong on the way up.
    troubles = [line for line in output.splitlines()
                if "Traceback" in line or "level=error" in line or "level=critical" in line]
    if troubles:
        figures.unclean.append(f"trial {trial}: " + "\n  ".join(troubles[:5]))
    return True


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults kill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--min-delay", type=float, default=0.0,
                        help="earliest kill, seconds after the first publish answered 201")
    parser.add_argument("--max-delay", type=float, default=3.0,
                        help="latest kill, seconds after the first publish answered 201 "
                             "(default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="meshsite-bench-kill-"))
    print(f"kill -9: {args.trials} trials, {args.clients} clients, seed {seed}, in {root}",
          flush=True)

    ca = pki.meshsite_root("ed25519")
    owners = {name: pki.issue(ca, callsign=f"DL1{name}") for name in "AB"}
    stations = {name: StationProcess(root / name, env=FAST) for name in "AB"}
    figures = Figures()
    all_acknowledged: list[Publish] = []
    try:
        a, b = stations["A"], stations["B"]

        def bring_up(name: str) -> str:
            station = stations[name]
            provision(station, roots=[ca], owner=owners[name], callsign=f"DL1{name}")
            token = ""
            if name == "A":
                rotated = station.manage("claimstation", "--rotate-token", "--json")
                token = json.loads(rotated.stdout)["accessToken"]
            station.start(timeout=90)
            if name == "B":  # B replicates from A: it adds A as its peer once A answers
                wait_for(lambda: _answers(a), 90, "station A answering", interval=0.2)
                added = station.manage("meshpeer", "add", a.url)
                if added.returncode != 0:
                    raise RuntimeError(f"meshpeer add failed: {added.stderr}")
            return token

        setup_started = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            token = next(iter(pool.map(bring_up, stations)))
        a.wait_ready(90)
        print(f"stations A and B up and linked in {time.monotonic() - setup_started:.0f}s",
              flush=True)
        for trial in range(1, args.trials + 1):
            power_cut = trial % 2 == 0
            prefix = f"t{trial}"
            with Clients(a, token, prefix, args.clients, rng) as clients:
                # A random moment once publishing works, so no trial is a kill before any load.
                if not clients.first_ack.wait(60):
                    raise RuntimeError(f"trial {trial}: no publish answered 201 within 60s")
                time.sleep(rng.uniform(args.min_delay, args.max_delay))
                tree = kill_station(a, power_cut)
                killed = time.monotonic()
            left = wait_gone(tree, GONE_WITHIN - (time.monotonic() - killed))
            figures.gone_seconds.append(time.monotonic() - killed)
            for proc in left:
                figures.leftovers.append(f"trial {trial}: {describe([proc])}")
                with contextlib.suppress(Exception):
                    proc.kill()
            wait_gone(left, 5)
            if not restart(a, trial, figures):
                print(f"trial {trial}: the station did not start; stopping", flush=True)
                break
            publishes = list(clients.publishes)
            acked = [p for p in publishes if p.status == 201]
            figures.acknowledged += len(acked)
            figures.unanswered += sum(p.status is None for p in publishes)
            all_acknowledged.extend(acked)
            lost_before, partial_before = len(figures.lost), len(figures.partial)
            check_trial(a, "DL1A", prefix, publishes, figures)
            print(f"trial {trial:3d} {'power cut ' if power_cut else 'supervisor'}: "
                  f"{len(acked):3d} acknowledged, {len(figures.lost) - lost_before} lost, "
                  f"{len(figures.partial) - partial_before} partial, "
                  f"gone in {figures.gone_seconds[-1]:.1f}s, "
                  f"{len(left)} left over, restart "
                  + (f"{figures.restart_seconds[-1]:.1f}s" if figures.restart_seconds else "-"),
                  flush=True)
        # Nothing acknowledged in an earlier trial went missing in a later crash either.
        for publish in all_acknowledged:
            if body_at(a, "DL1A", publish.path) != publish.body and \
                    publish.path not in figures.lost:
                figures.lost.append(publish.path)
        replicated = 0
        with contextlib.suppress(Exception):
            held = {e["path"] for e in catalog_entries(b, "DL1A") if e.get("hasBody")}
            replicated = sum(p.path in held for p in all_acknowledged)
    finally:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda station: station.stop(), stations.values()))
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    restarts = figures.restart_seconds
    print(f"\nkill -9 figures ({args.trials} trials, seed {seed})")
    print(f"  acknowledged publishes          {figures.acknowledged} "
          f"({figures.unanswered} unanswered when the station died)")
    print(f"  acknowledged entries lost       {len(figures.lost)}   (target 0)")
    print(f"  partial entries visible         {len(figures.partial)}   (target 0)")
    print(f"  leftover processes after {GONE_WITHIN:.0f}s   {len(figures.leftovers)}   (target 0)")
    print(f"  unclean starts                  {len(figures.unclean)}   (target 0)")
    print(f"  all gone after kill             p50 {percentile(figures.gone_seconds, .5):.1f}s "
          f"max {max(figures.gone_seconds, default=float('nan')):.1f}s")
    print(f"  restart time (to every part answering) p50 {percentile(restarts, .5):.1f}s "
          f"p95 {percentile(restarts, .95):.1f}s max {max(restarts, default=float('nan')):.1f}s")
    print(f"  replicated to the peer at the end {replicated}/{len(all_acknowledged)} "
          "(information)")
    for what, items in (("lost", figures.lost), ("partial", figures.partial),
                        ("left over", figures.leftovers), ("unclean", figures.unclean)):
        for item in items[:10]:
            print(f"  {what}: {item}")
    missed = (figures.lost or figures.partial or figures.leftovers or figures.unclean
              or len(restarts) < args.trials)
    return 1 if missed else 0
