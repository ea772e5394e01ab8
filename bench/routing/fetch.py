"""Fetch latency per hop: `python -m bench.routing.fetch [--repeat N] [--seed N] [--keep]`.

Five real stations (`runstation`, own data dirs, claimed under a test PKI) in a line on loopback,
S0-S1-S2-S3-S4, started side by side: each then adds only its right-hand neighbour and dials no
station it merely heard of, so S4 reaches S0 only through S3, S2 and S1. Meanwhile S0 publishes
two priority-4 bodies (personal: kept at the origin only, so no fetch is served from a copy on
the way), 10 KB and 1 MB of seeded random bytes. Once S4's /api/routes shows S0 four hops away
and S1-S4 know both entries, each station GETs the 10 KB body once, untimed (a process's first
request pays imports and connections: seconds here, no cost of a hop). Then `--repeat` rounds:
in each, S1, S2, S3 and S4 (1 to 4 hops from S0) GET `/c/<S0>/<path>` once per body, timed
(rounds rather than all of one hop count at a time: whatever slows the machine for a while
falls on every hop count alike), and every body (warm-up included) is compared byte for byte
with what was published.

Figures (printed; a benchmark, not a test):

- per body size and hop count: median, min and max seconds of a whole GET (request to last
  byte), as a browser at that station would wait. At 1 hop S0 is a direct neighbour: the body
  comes straight over HTTP. From 2 hops on, the station first asks its direct neighbours over
  HTTP (they answer 404: they hold nothing; this is part of the time measured), then forwards
  the request hop by hop (FORWARD, with the first 32 KB in the holder's answer) and pulls the
  rest 32 KB at a time, at most 4 chunks in flight (FORWARD_CHUNK, base64 in signed JSON over
  each link). The path each fetch took is read from the fetching station's log and printed
  beside it, with the times that station logged for it: `answer_ms`, the FORWARD's round trip
  through every hop (the whole trip of the 10 KB body), and `ms`, to the last byte stored.
- added time per hop: least-squares slopes against hops, in ms per hop: of the whole GET's
  medians over 1-4 hops and over 2-4 (forwarding only: the step from 1 to 2 hops also changes
  the transport), and of the station's own `answer_ms` and `ms` over 2-4 hops, which leave out
  the HTTP request and the asks to the neighbours: what one more relay adds. Of the medians and
  of the minimums (the minimum is a hop's cost with nothing else in the way). For the 1 MB
  body, divide by 32 to see the cost per chunk and hop.
- relay memory: VmRSS (/proc/<pid>/status) of the relays' daphne and meshd processes (S1-S3:
  each relay holds one accepted link in daphne and one dialled link in meshd), sampled every 20
  ms during `--repeat` more GETs of the 1 MB body at S4 (after the timed rounds); the peak
  increase over that baseline per process. Target: a few chunks (some 100 KB), not a copy of the
  body: each figure is judged against 1 MB. RSS rarely shrinks, so an earlier fetch that grew a
  process hides its growth here; the RSS before any fetch is printed too, and each process's RSS
  after each of the GETs (over the baseline): growth that stays and climbs GET after GET is kept
  memory, a peak that falls back is memory in flight.
- relay memory over many GETs (`--memory-gets`, default 32; 0 skips it): S4 then GETs the 1 MB
  body that many more times, untimed but checked, and the VmRSS of each relay process after
  each is compared with its VmRSS before the first of them. Printed per process: the growth
  after 8, 16, ... GETs and after the last, and the growth per GET from the 8th on (the
  least-squares slope): a relay that keeps nothing plateaus (a slope near 0), one that keeps
  some of each body climbs in proportion to the GETs. Target: every process under 1 MB of
  growth after the last GET.
- whether any station but S0 holds a body at the end (none should).

The machine's load average is printed first: on a busy 2-core machine the figures are noisy,
and the max more than the median. Takes about 4 to 7 minutes. Exit status 1 when a body was
wrong (or not served). Every process is started here and stopped by its PID.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.certificates import pki
from tests.faults import process_tree
from tests.harness import StationProcess
from tests.mesh.stations import provision, wait_for

LINE_ENV = {"MESHSITE_MESH_RECONNECT_MAX": "2", "MESHSITE_MESH_DIAL_LEARNT_PEERS": "off",
            "MESHSITE_MESH_ROUTE_INTERVAL": "4", "MESHSITE_CATALOG_SYNC_INTERVAL": "10"}
CALLS = [f"DB{i}HOP" for i in range(5)]
BODIES = {"10 KB": ("bench/fetch-10k.bin", 10 * 1024), "1 MB": ("bench/fetch-1m.bin", 1 << 20)}
RSS_LIMIT = 1 << 20
RSS_INTERVAL = 0.02


@dataclass
class Published:
    label: str
    path: str
    body: bytes
    url_path: str = ""
    seconds: dict[int, list[float]] = field(default_factory=dict)
    logged: dict[int, list[Logged]] = field(default_factory=dict)


def get(station: StationProcess, path: str, timeout: float = 120) -> tuple[int, bytes]:
    # A body is served whatever the Accept; a failure then comes back as JSON with its reason.
    request = urllib.request.Request(station.url + path, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def hops_to(station: StationProcess, callsign: str) -> int | None:
    status, data = station.get("/api/routes")
    if status != 200:
        return None
    return next((r["hops"] for r in data["routes"] if r["callsign"] == callsign), None)


def entry_at(station: StationProcess, origin: str, path: str) -> dict | None:
    status, data = station.get(f"/api/content-catalog?origin={origin}&pageSize=500")
    if status != 200:
        return None
    return next((row for row in data["entries"] if row["path"] == path), None)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssPeak:
    """VmRSS of some processes every RSS_INTERVAL seconds in a thread: baseline and peak."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before = {name: rss_bytes(pid) for name, pid in pids.items()}
        self.peak = dict(self.before)
        self.after_each: dict[str, list[int]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(RSS_INTERVAL):
            for name, pid in self.pids.items():
                with contextlib.suppress(OSError, ValueError):
                    self.peak[name] = max(self.peak[name], rss_bytes(pid))

    def mark(self) -> None:
        """Note each process's RSS now (after a GET): growth that stays is not a peak."""
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError, ValueError):
                self.after_each[name].append(rss_bytes(pid))

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def relay_processes(stations: list[StationProcess]) -> dict[str, int]:
    """PIDs of the daphne and meshd processes of S1-S3, by name ("DB1HOP daphne")."""
    found = {}
    for index, station in enumerate(stations[1:4], start=1):
        for proc in process_tree(station.pid):
            command = " ".join(proc.cmdline())
            for part, pattern in (("daphne", " -m meshsite.web "), ("meshd", " -m meshsite meshd")):
                if pattern in command:
                    found[f"{CALLS[index]} {part}"] = proc.pid
    missing = [f"{CALLS[i]} {part}" for i in (1, 2, 3) for part in ("daphne", "meshd")
               if f"{CALLS[i]} {part}" not in found]
    if missing:
        raise RuntimeError(f"relay processes not found: {', '.join(missing)}")
    return found


_MESH_FETCH = re.compile(r'msg="body fetched through the mesh" ')
_HTTP_FETCH = re.compile(r'msg="body fetched" ')
_FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')


@dataclass
class Logged:
    """A fetch as the fetching station logged it (catalog/fetch.py)."""

    way: str  # "mesh via A,B" or "HTTP from A"
    size: int
    ms: float  # until the last byte was stored
    answer_ms: float | None  # the FORWARD's round trip (mesh only)


def fetches_logged(log: str) -> list[Logged]:
    """Every body fetch in a station's log, in order."""
    found = []
    for line in log.splitlines():
        mesh = _MESH_FETCH.search(line) is not None
        if not mesh and _HTTP_FETCH.search(line) is None:
            continue
        fields = {key: value.strip('"') for key, value in _FIELD.findall(line)}
        with contextlib.suppress(KeyError, ValueError):
            found.append(Logged(
                way=f"mesh via {fields['via']}" if mesh else f"HTTP from {fields['peer']}",
                size=int(fields["size"]), ms=float(fields["ms"]),
                answer_ms=float(fields["answer_ms"]) if mesh else None))
    return found


def slope_ms(points: dict[int, float], hops: range) -> float:
    xs = [h for h in hops if h in points]
    if len(xs) < 2:
        return float("nan")
    return statistics.linear_regression(xs, [points[h] for h in xs]).slope * 1e3


def bring_up(stations: list[StationProcess], root: pki.Identity,
             owners: list[pki.Identity]) -> None:
    """Provision and start the stations side by side (one after another takes minutes on a busy
    2-core machine, mostly waiting)."""
    with ThreadPoolExecutor(len(stations)) as pool:
        list(pool.map(lambda pair: provision(pair[0], roots=[root], owner=pair[1],
                                             callsign=pair[2]),
                      zip(stations, owners, CALLS, strict=True)))
        list(pool.map(lambda station: station.start(timeout=240), stations))


def link(left: StationProcess, right: StationProcess) -> None:
    added = left.manage("meshpeer", "add", right.url)
    if added.returncode != 0:
        raise RuntimeError(f"meshpeer add {right.url} failed: {added.stderr}")


def publish(station: StationProcess, directory: Path, item: Published) -> None:
    source = directory / Path(item.path).name
    source.write_bytes(item.body)
    result = station.manage("publish", str(source), "--path", item.path, "--priority", "4")
    if result.returncode != 0:
        raise RuntimeError(f"publish {item.path} failed: {result.stderr}")
    item.url_path = result.stdout.split("published ", 1)[1].split()[0]


def failure_reason(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        return body[:300].decode("utf-8", "replace")
    return f"{answer.get('error')}: {answer.get('detail')}" if isinstance(answer, dict) else ""


def fetch_round(station: StationProcess, item: Published, repeat: int,
                after_each: Callable[[], None] | None = None) -> tuple[list[float], int]:
    """`repeat` timed GETs; returns the seconds of each and how many bodies were wrong."""
    seconds, wrong = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            status, body = get(station, item.url_path)
        except OSError as exc:  # no answer in time, connection dropped: a wrong body too
            status, body = 0, str(exc).encode()
        seconds.append(time.perf_counter() - started)
        if status != 200 or body != item.body:
            wrong += 1
            detail = "" if status == 200 else ": " + failure_reason(body)
            print(f"    WRONG: {item.url_path} at {station.url}: status {status}, "
                  f"{len(body)} bytes{detail}", flush=True)
        if after_each is not None:
            after_each()
    return seconds, wrong


def memory_plateau(station: StationProcess, item: Published, relays: dict[str, int],
                   rss_start: dict[str, int], gets: int) -> int:
    """`gets` more GETs of `item` at `station`, the relays' VmRSS after each; prints the growth
    after 8, 16, ... GETs and the slope from the 8th on. Returns how many bodies were wrong."""
    marks = sorted({m for m in (8, 16, 32, 64, 128, 256) if m < gets} | {gets})
    before = {name: rss_bytes(pid) for name, pid in relays.items()}
    after: dict[str, list[int]] = {name: [] for name in relays}

    def note() -> None:
        for name, pid in relays.items():
            with contextlib.suppress(OSError, ValueError):
                after[name].append(rss_bytes(pid))

    started = time.monotonic()
    _seconds, wrong = fetch_round(station, item, gets, note)
    load = os.getloadavg()
    print(f"\nrelay RSS over {gets} more GETs of the {item.label} body at {station.url} "
          f"({gets - wrong}/{gets} exact, {time.monotonic() - started:.0f} s, load average "
          f"{load[0]:.2f}): growth over the VmRSS before them, KB")
    first = min(8, gets)
    print(f"  {'process':<14} {'before':>8}  " + "".join(f"{f'after {m}':>10}" for m in marks)
          + f"  {f'KB/GET from the {first}th':>18}")
    worst = ("", 0)
    for name in relays:
        series = after[name]
        if len(series) < gets:
            print(f"  {name:<14} (the process went away)")
            continue
        grown = [(rss - before[name]) / 1024 for rss in series]
        tail = list(range(first, gets + 1))
        slope = (statistics.linear_regression(tail, grown[first - 1:]).slope
                 if len(tail) >= 2 else float("nan"))
        print(f"  {name:<14} {before[name] / 1e6:6.1f} MB"
              + "".join(f"{grown[m - 1]:+10.0f}" for m in marks) + f"  {slope:+18.1f}"
              + f"   (over the RSS before any fetch: {(series[-1] - rss_start[name]) / 1024:+.0f})")
        if grown[-1] * 1024 > worst[1]:
            worst = (name, int(grown[-1] * 1024))
    print(f"  largest growth after {gets} GETs {worst[1] / 1024:.0f} KB ({worst[0] or '-'})  "
          f"[target under 1 MB per process: {'met' if worst[1] < RSS_LIMIT else 'MISSED'}]")
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing.fetch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="GETs per body and hop count "
                                                              "(default 5)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the body bytes")
    parser.add_argument("--memory-gets", type=int, default=32,
                        help="GETs of the 1 MB body at S4 after the timed ones, to see whether "
                             "relay memory plateaus (default 32; 0: none)")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs")
    args = parser.parse_args(argv)
    started = time.monotonic()
    load = os.getloadavg()
    print(f"fetch latency per hop: {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.repeat} GETs per body "
          f"and hop count, seed {args.seed}", flush=True)
    rng = random.Random(args.seed)
    items = [Published(label, path, rng.randbytes(size))
             for label, (path, size) in BODIES.items()]

    root_dir = Path(tempfile.mkdtemp(prefix="meshsite-bench-fetch-"))
    root = pki.meshsite_root("ed25519")
    ca = pki.issue(root, callsign="DB9CA", ca=True, path_length=0, can_issue=True,
                   license_class="club")
    owners = [pki.issue(ca, callsign=call) for call in CALLS]
    stations = [StationProcess(root_dir / f"s{i}", env=LINE_ENV) for i in range(len(CALLS))]
    wrong = 0
    try:
        bring_up(stations, root, owners)
        print(f"5 stations up after {time.monotonic() - started:.0f} s", flush=True)
        # Linking and publishing side by side: each is a manage.py run (seconds of Django start
        # on a busy machine); the entries reach S1-S4 by catalog sync as the links come up.
        with ThreadPoolExecutor(len(stations) + len(items)) as pool:
            jobs = [pool.submit(link, left, right)
                    for left, right in itertools.pairwise(stations)]
            jobs += [pool.submit(publish, stations[0], root_dir, item) for item in items]
            for job in jobs:
                job.result()
        print(f"linked in a line, {', '.join(i.label for i in items)} published at {CALLS[0]} "
              f"(priority 4) after {time.monotonic() - started:.0f} s", flush=True)
        wait_for(lambda: hops_to(stations[4], CALLS[0]) == 4, 180,
                 f"{CALLS[4]} has a 4-hop route to {CALLS[0]}", interval=0.5)
        wait_for(lambda: all(entry_at(s, CALLS[0], i.path) for s in stations[1:] for i in items),
                 120, "both entries' metadata at S1-S4", interval=0.5)
        print(f"{CALLS[4]} routes to {CALLS[0]} in 4 hops and both entries are known at S1-S4 "
              f"after {time.monotonic() - started:.0f} s", flush=True)
        relays = relay_processes(stations)
        rss_start = {name: rss_bytes(pid) for name, pid in relays.items()}
        # One untimed (but checked) GET at each station first: a process's first request pays
        # imports and connections (seconds here), which is no cost of a hop.
        for station in stations[1:]:
            wrong += fetch_round(station, items[0], 1)[1]
        print(f"warm-up GET of the {items[0].label} body at S1-S4 done after "
              f"{time.monotonic() - started:.0f} s\n", flush=True)

        # Timed GETs in rounds, each round one GET per hop count and body: whatever slows the
        # machine for a while (a periodic task, another process) falls on every hop count alike.
        log_seen = {hops: len(stations[hops].output()) for hops in range(1, 5)}
        for _ in range(args.repeat):
            for hops in range(1, 5):
                for item in items:
                    seconds, bad = fetch_round(stations[hops], item, 1)
                    wrong += bad
                    item.seconds.setdefault(hops, []).extend(seconds)
        for hops in range(1, 5):
            station = stations[hops]
            fetched = fetches_logged(station.output()[log_seen[hops]:])
            for item in items:
                seconds = item.seconds[hops]
                mine = [f for f in fetched if f.size == len(item.body)]
                item.logged[hops] = mine
                ways = sorted({f.way for f in mine})
                answer = [f.answer_ms for f in mine if f.answer_ms is not None]
                inside = (f"; in the station: answer {statistics.median(answer):.1f} ms, "
                          f"last byte {statistics.median(f.ms for f in mine):.1f} ms (medians)"
                          if answer else "")
                print(f"  {item.label:>5} at {CALLS[hops]} ({hops} hop{'s' if hops > 1 else ' '}): "
                      f"GET median {statistics.median(seconds):.3f} s, min {min(seconds):.3f} s, "
                      f"max {max(seconds):.3f} s{inside}; {len(mine)} fetched: "
                      f"{'; '.join(ways) or 'path not logged'}", flush=True)

        print("\nadded time per hop (least-squares slopes):")
        for item in items:
            medians = {h: statistics.median(s) for h, s in item.seconds.items()}
            lows = {h: min(s) for h, s in item.seconds.items()}
            row = "  ".join(f"{h} hop{'s' if h > 1 else ' '} {medians[h]:.3f} s"
                            for h in sorted(medians))
            print(f"  {item.label:>5} whole GET, medians: {row}; "
                  f"{slope_ms(medians, range(1, 5)):.1f} ms/hop over 1-4 hops, "
                  f"{slope_ms(medians, range(2, 5)):.1f} over 2-4 "
                  f"(minimums: {slope_ms(lows, range(2, 5)):.1f} over 2-4)")
            for label, pick in (("FORWARD answer", "answer_ms"), ("to the last byte", "ms")):
                values = {h: [getattr(f, pick) for f in item.logged.get(h, [])
                              if getattr(f, pick) is not None] for h in range(2, 5)}
                if not all(values.values()):
                    continue
                med = {h: statistics.median(v) / 1e3 for h, v in values.items()}
                low = {h: min(v) / 1e3 for h, v in values.items()}
                row = "  ".join(f"{h} hops {med[h] * 1e3:.1f} ms" for h in sorted(med))
                print(f"  {item.label:>5} mesh fetch in the station, {label}: {row}; "
                      f"{slope_ms(med, range(2, 5)):.1f} ms per relay (medians), "
                      f"{slope_ms(low, range(2, 5)):.1f} (minimums)")

        # Relay memory: the same GET of the 1 MB body at S4, `--repeat` times more, sampled.
        with RssPeak(relays) as sampled:
            wrong += fetch_round(stations[4], items[-1], args.repeat, sampled.mark)[1]

        print(f"\nrelay RSS during the 1 MB fetches at {CALLS[4]} (VmRSS every "
              f"{RSS_INTERVAL * 1e3:.0f} ms; before any fetch / before these fetches / peak):")
        increases = {}
        for name in relays:
            increases[name] = sampled.peak[name] - sampled.before[name]
            trace = " ".join(f"{(rss - sampled.before[name]) / 1024:+.0f}"
                             for rss in sampled.after_each[name])
            print(f"  {name:<14} {rss_start[name] / 1e6:6.1f} / {sampled.before[name] / 1e6:6.1f}"
                  f" / {sampled.peak[name] / 1e6:6.1f} MB  peak increase "
                  f"{increases[name] / 1024:5.0f} KB; after each GET {trace} KB")
        largest = max(increases, key=increases.__getitem__)
        print(f"  largest peak increase {increases[largest] / 1024:.0f} KB ({largest}), sum over "
              f"the 6 processes {sum(increases.values()) / 1024:.0f} KB  [target under 1 MB per "
              f"process: {'met' if increases[largest] < RSS_LIMIT else 'MISSED'}]")

        if args.memory_gets > 0:
            wrong += memory_plateau(stations[4], items[-1], relays, rss_start, args.memory_gets)

        kept = [f"{CALLS[i]} {item.label}" for i in range(1, 5) for item in items
                if (entry_at(stations[i], CALLS[0], item.path) or {}).get("hasBody")]
        print(f"bodies held away from {CALLS[0]} at the end: {', '.join(kept) or 'none'}")
    finally:
        with ThreadPoolExecutor(len(stations)) as pool:
            list(pool.map(lambda station: station.stop(), stations))
        if not args.keep:
            shutil.rmtree(root_dir, ignore_errors=True)
        else:
            print(f"data dirs kept in {root_dir}")
    print(f"wrong bodies: {wrong}; total {time.monotonic() - started:.0f} s")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
