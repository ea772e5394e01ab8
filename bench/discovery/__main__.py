"""Discovery benchmark: `.venv/bin/python -m bench.discovery [--scenario NAME ...] [--full]`.

Real stations, each in a network namespace of its own on a private bridge (10.77.0.x, see
tests/mesh/netns.py); mDNS runs only on those namespaces' interfaces and every packet stays
between them. Figures:

- discovery (3 and 10 stations): N-1 stations start together, then a newcomer. Time from the
  newcomer's meshd start to its row in every other station's database (method mdns), read from
  meshd's log and the rows' created_at (same clock), and until all probe it active. Also the
  worst pair in the first start (from the later of the two meshd starts).
- link drop (on the same LAN): the newcomer's bridge port goes down; time until every other
  station marks it suspect, then unreachable (polled from their databases every 0.1 s).
- gossip chain: 10 stations linked A-B-...-J by manual peers (mDNS off, learnt peers not
  dialled, so each talks only to its neighbours); a certificate added at A, then one at J;
  time until it is in all ten databases (created_at of the certificate rows).

Every process is started by the benchmark and stopped by its PID; every namespace it made is
deleted, also on errors, Ctrl-C, SIGTERM or the overall --timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.discovery.stations import LeanStation, database_template, seed_database
from tests.mesh.netns import Lan, NetnsStation, db_time, netns_available, sees
from tests.mesh.stations import wait_for as poll

TARGETS = {"discovery_s": 2.0, "suspect_s": 5.0, "gossip_s": 10.0}
SCENARIOS = ("discovery-3", "discovery-10", "gossip-chain-10")


class Deadline(Exception):
    pass


def station_kind(count: int, args: argparse.Namespace) -> tuple[type, str]:
    if args.full or (count <= 3 and not args.lean):
        return NetnsStation, "whole runstation (redis, daphne, worker+beat, meshd)"
    return LeanStation, "lean: redis + daphne + meshd, no worker/beat"


def start_all(stations: list[NetnsStation], timeout: float) -> None:
    for station in stations:
        station.start()
    for station in stations:
        station.wait_ready(timeout)


def state_of(observer: NetnsStation, other: NetnsStation) -> str | None:
    rows = observer.query("SELECT state FROM mesh_peer WHERE endpoint = ?", other.url)
    return rows[0]["state"] if rows else None


# -- discovery and link drop -----------------------------------------------------------------

def run_discovery(count: int, args: argparse.Namespace, template: Path) -> dict[str, Any]:
    cls, kind = station_kind(count, args)
    lan = Lan(prefix=f"d{count}{os.getpid() % 10000}", station_class=cls)
    figures: dict[str, Any] = {"scenario": f"discovery-{count}", "stations": count,
                               "kind": kind}
    try:
        stations = [lan.add_station(i) for i in range(count)]
        for station in stations:
            seed_database(station, template)
        first, newcomer = stations[:-1], stations[-1]
        started = time.monotonic()
        start_all(first, args.start_timeout)
        figures["first_start_s"] = round(time.monotonic() - started, 1)
        poll(lambda: all(sees(s, [o for o in first if o is not s]) for s in first), 60,
             f"{count - 1} stations see each other")
        pairs = [s.seen_at(o) - max(s.logged_at("meshd starting"), o.logged_at("meshd starting"))
                 for s in first for o in first if o is not s]
        figures["first_pairs_median_s"] = round(statistics.median(pairs), 2)
        figures["first_pairs_max_s"] = round(max(pairs), 2)
        time.sleep(args.settle)

        newcomer.start()
        newcomer.wait_ready(args.start_timeout)
        poll(lambda: all(sees(o, [newcomer]) for o in first) and sees(newcomer, first), 60,
             "newcomer and the others see each other")
        meshd_at = newcomer.logged_at("meshd starting")
        advertising_at = newcomer.logged_at("mDNS advertising")
        seen_by = [o.seen_at(newcomer) for o in first]
        sees_all = max(newcomer.seen_at(o) for o in first)
        figures["seen_by_all_s"] = round(max(seen_by) - meshd_at, 2)
        figures["seen_by_first_s"] = round(min(seen_by) - meshd_at, 2)
        figures["seen_after_announce_s"] = round(max(seen_by) - advertising_at, 2)
        figures["newcomer_sees_all_s"] = round(sees_all - meshd_at, 2)
        figures["launch_to_seen_s"] = round(max(seen_by) - newcomer.launched_at, 2)
        poll(lambda: all(state_of(o, newcomer) == "active" for o in first), 30,
             "newcomer active everywhere")
        figures["active_everywhere_s"] = round(time.time() - meshd_at, 2)
        time.sleep(args.settle)

        figures.update(measure_link_drop(lan, newcomer, first))
    finally:
        lan.close()
    return figures


def measure_link_drop(lan: Lan, cut: NetnsStation, others: list[NetnsStation]) -> dict:
    lan.cut(cut)
    cut_at = time.monotonic()
    first_seen: dict[str, dict[str, float]] = {"suspect": {}, "unreachable": {}}

    def check() -> bool:
        now = time.monotonic() - cut_at
        for observer in others:
            state = state_of(observer, cut)
            if state in ("suspect", "unreachable"):
                first_seen["suspect"].setdefault(observer.host, now)
            if state == "unreachable":
                first_seen["unreachable"].setdefault(observer.host, now)
        return len(first_seen["unreachable"]) == len(others)

    poll(check, 60, "cut station unreachable everywhere")
    lan.mend(cut)
    back = poll(lambda: all(state_of(o, cut) == "active" for o in others), 30,
                "cut station active again")
    suspect, unreachable = first_seen["suspect"].values(), first_seen["unreachable"].values()
    return {"suspect_all_s": round(max(suspect), 2),
            "suspect_median_s": round(statistics.median(suspect), 2),
            "unreachable_all_s": round(max(unreachable), 2),
            "unreachable_median_s": round(statistics.median(unreachable), 2),
            "back_active_s": round(back, 2)}


# -- gossip along a chain --------------------------------------------------------------------

CHAIN_ENV = {"MESHSITE_MDNS": "off", "MESHSITE_MESH_DIAL_LEARNT_PEERS": "0",
             "MESHSITE_MESH_RECONNECT_MAX": "2"}


def certificate_times(station: NetnsStation, fingerprint: str) -> float | None:
    rows = station.query("SELECT created_at FROM certificates_certificate "
                         "WHERE fingerprint = ?", fingerprint)
    return db_time(rows[0]["created_at"]) if rows else None


def run_chain(count: int, args: argparse.Namespace, template: Path) -> dict[str, Any]:
    from tests.certificates import pki
    from tests.mesh.stations import add_certificate, provision

    cls, kind = station_kind(count, args)
    figures: dict[str, Any] = {"scenario": f"gossip-chain-{count}", "stations": count,
                               "kind": kind, "links": count - 1}
    root = pki.meshsite_root("ed25519")
    ca = pki.issue(root, callsign="DL0CA", ca=True, path_length=0, can_issue=True,
                   license_class="club")
    callsigns = [f"DL{i}CH" for i in range(count)]
    lan = Lan(prefix=f"g{count}{os.getpid() % 10000}", station_class=cls)
    try:
        stations = [lan.add_station(i, dict(CHAIN_ENV)) for i in range(count)]

        def prepare(pair: tuple[int, NetnsStation]) -> None:
            index, station = pair
            seed_database(station, template)
            provision(station, roots=[root], owner=pki.issue(ca, callsign=callsigns[index]),
                      callsign=callsigns[index])

        started = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(prepare, enumerate(stations)))
        start_all(stations, args.start_timeout)
        for left, right in itertools.pairwise(stations):
            result = left.manage("meshpeer", "add", right.url)
            if result.returncode != 0:
                raise RuntimeError(f"meshpeer add failed: {result.stderr[-2000:]}")

        def linked() -> bool:
            return all(any(p["endpoint"] == right.url and p["authenticated"]
                           for p in left.peers())
                       for left, right in itertools.pairwise(stations))

        poll(linked, 120, "chain links authenticated")
        figures["setup_s"] = round(time.monotonic() - started, 1)
        time.sleep(args.settle)
        for label, origin in (("from A (the dialling end)", stations[0]),
                              ("from J (the accepting end)", stations[-1])):
            identity = pki.issue(ca, callsign=f"DL9N{'AJ'[origin is stations[-1]]}")
            fingerprint = add_certificate(origin, identity)
            poll(lambda fp=fingerprint: all(certificate_times(s, fp) for s in stations),
                 args.gossip_timeout, f"certificate {label} everywhere")
            times = [certificate_times(s, fingerprint) for s in stations]
            added = certificate_times(origin, fingerprint)
            key = "a" if origin is stations[0] else "j"
            figures[f"gossip_{key}_s"] = round(max(times) - added, 2)
            figures[f"gossip_{key}_per_station"] = [round(t - added, 2) for t in times]
    finally:
        lan.close()
    return figures


# -- output ----------------------------------------------------------------------------------

def mark(value: float, target: float) -> str:
    return f"target <= {target:g} s: {'MET' if value <= target else 'MISSED'}"


def print_figures(f: dict[str, Any]) -> None:
    print(f"\n== {f['scenario']}: {f['stations']} stations in network namespaces "
          f"({f['kind']}) ==")
    if f["scenario"].startswith("discovery"):
        print(f"first {f['stations'] - 1} stations up in {f['first_start_s']} s; every pair "
              f"recorded each other {f['first_pairs_median_s']} s (median) / "
              f"{f['first_pairs_max_s']} s (worst) after the later meshd start")
        print(f"newcomer seen by all others  {f['seen_by_all_s']} s after its meshd started  "
              f"{mark(f['seen_by_all_s'], TARGETS['discovery_s'])}")
        print(f"  first other saw it {f['seen_by_first_s']} s; all saw it "
              f"{f['seen_after_announce_s']} s after its mDNS announcement; it saw all of "
              f"them {f['newcomer_sees_all_s']} s; probed active everywhere "
              f"{f['active_everywhere_s']} s; {f['launch_to_seen_s']} s from process launch "
              f"(whole start)")
        print(f"link down -> suspect everywhere {f['suspect_all_s']} s (median "
              f"{f['suspect_median_s']} s)  {mark(f['suspect_all_s'], TARGETS['suspect_s'])}")
        print(f"link down -> unreachable everywhere {f['unreachable_all_s']} s (median "
              f"{f['unreachable_median_s']} s; the defaults: probes every 1 s, suspect after "
              f"2.5 s and unreachable after 8 s of silence)")
        print(f"link up -> active again everywhere {f['back_active_s']} s")
    else:
        print(f"{f['stations']} stations, {f['links']} links, set up and linked in "
              f"{f['setup_s']} s")
        for key, label in (("a", "from A (the dialling end)"), ("j", "from J (the accepting end)")):
            print(f"certificate {label} in all {f['stations']}: {f[f'gossip_{key}_s']} s  "
                  f"{mark(f[f'gossip_{key}_s'], TARGETS['gossip_s'])}")
            print(f"  per station A..J: {f[f'gossip_{key}_per_station']}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.discovery", description=(
        "mDNS discovery, dropped-link detection and 10-station gossip figures, with real "
        "stations in network namespaces on a private bridge (needs root and `ip netns`)."))
    parser.add_argument("--scenario", action="append", choices=[*SCENARIOS, "all"],
                        help="scenario to run (repeatable; default: all)")
    parser.add_argument("--full", action="store_true",
                        help="whole runstation for every station (default: whole for 3, "
                             "lean redis+daphne+meshd for 10)")
    parser.add_argument("--lean", action="store_true", help="lean stations for 3 too")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds of quiet between the steps (default 2)")
    parser.add_argument("--start-timeout", type=float, default=180.0,
                        help="seconds for the stations to start (default 180)")
    parser.add_argument("--gossip-timeout", type=float, default=120.0,
                        help="seconds for a certificate to reach every station (default 120)")
    parser.add_argument("--timeout", type=int, default=1200,
                        help="the whole run stops (and cleans up) after this many seconds "
                             "(default 1200)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.full and args.lean:
        parser.error("--full and --lean exclude each other")
    if not netns_available():
        print("needs root and `ip netns` (network namespaces)", file=sys.stderr)
        return 2
    names = args.scenario or ["all"]
    if "all" in names:
        names = list(SCENARIOS)

    def on_signal(signum: int, _frame: Any) -> None:
        raise Deadline(f"stopped by {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(args.timeout)
    workdir = Path(tempfile.mkdtemp(prefix="msbench-disc-"))
    results, failed = [], []
    try:
        template = database_template(workdir)
        for name in names:
            count = int(name.rsplit("-", 1)[1])
            run = run_chain if name.startswith("gossip") else run_discovery
            try:
                figures = run(count, args, template)
            except (AssertionError, TimeoutError, RuntimeError) as exc:  # poll: AssertionError
                print(f"\n== {name}: FAILED: {exc}", flush=True)
                failed.append(name)
                continue
            print_figures(figures)
            results.append(figures)
    except (Deadline, KeyboardInterrupt) as exc:
        print(f"\nstopped: {exc or 'interrupted'}; cleaned up", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    with contextlib.suppress(Exception):
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (2 cores; other work "
              f"may be running)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
