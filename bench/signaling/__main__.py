"""Signaling relay benchmark: `.venv/bin/python -m bench.signaling [--scenario NAME ...]`.

Starts a station of its own (embedded Redis on a unix socket, migrated temp data dir, one or two
daphne processes with the project's settings on 127.0.0.1), opens N WebSocket clients from
several uvloop generator processes, has the two clients of each pair relay OFFERs carrying a 3 KB
SDP (at a fixed total rate, or saturated: one message in flight per pair) and prints connect
p50/p99, relay latency p50/p95/p99, messages per second, lost messages, errors, and the peak RSS
and CPU of the station's processes. Not a test: numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.signaling.load import worker_main
from bench.signaling.station import ExternalServer, Station, raise_fd_limit

# name: (clients, total rate msg/s (0 = saturated), station processes, targets)
SCENARIOS: dict[str, dict[str, Any]] = {
    "1k-2000": {"clients": 1000, "rate": 2000, "stations": 1,
                "targets": {"lost": 0, "errors": 0, "p99_ms": 25}},
    "5k-1000": {"clients": 5000, "rate": 1000, "stations": 1,
                "targets": {"lost": 0, "errors": 0, "p99_ms": 150, "rss_mb": 300}},
    "1k-saturated": {"clients": 1000, "rate": 0, "stations": 1,
                     "targets": {"msgs_per_s": 5000}},
    "2proc-1000": {"clients": 1000, "rate": 1000, "stations": 2,
                   "targets": {"lost": 0, "errors": 0, "p99_ms": 50}},
}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def assign_pairs(clients: int, ports: list[int], workers: int) -> list[list]:
    """Pairs per worker. With two station processes every other pair is split across them and
    the rest alternate between the two, so half of the pairs cross processes."""
    pairs = []
    for index in range(clients // 2):
        if len(ports) == 1:
            a = b = ports[0]
        elif index % 2:
            a, b = ports[0], ports[1]
        else:
            a = b = ports[(index // 2) % len(ports)]
        pairs.append((("127.0.0.1", a), ("127.0.0.1", b)))
    return [pairs[w::workers] for w in range(workers)]


def wait_until_quiet(station: Station, limit: float, *, busy: float = 0.3,
                     window: float = 0.5) -> float:
    """Let the station digest the connection storm (OPEN, presence, session records) before
    the relay is measured: wait until its processes use under `busy` of a core over `window`
    seconds, at most `limit` seconds. Returns the seconds waited (printed with the figures)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = station.cpu_seconds()
        time.sleep(window)
        if (station.cpu_seconds() - before) / window < busy:
            break
    return time.monotonic() - started


def start_profile(station: Station, out_dir: Path, duration: float) -> list[tuple]:
    out_dir.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        sys.exit("--profile needs py-spy: pip install -e '.[dev]' (or pip install py-spy)")
    runs = []
    for proc, port in zip(station.procs, station.ports, strict=True):
        path = out_dir / f"station-{port}.txt"
        runs.append((subprocess.Popen(
            [str(py_spy), "record", "--pid", str(proc.pid), "--rate", "250",
             "--duration", str(int(duration)), "--format", "raw", "--nonblocking",
             "--output", str(path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), path))
    return runs


def summarize_profile(path: Path, top: int = 14) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    if not path.exists():
        return "  (py-spy wrote no profile: it needs root or ptrace rights)"
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [frame.split(" (")[0] + " " + frame.split("/")[-1].rstrip(")")
                  for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "  (no samples)"
    lines = [f"  {total} samples; self time:"]
    lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(lines)


def run_scenario(name: str, args: argparse.Namespace) -> dict[str, Any]:
    config = SCENARIOS.get(name, {}).copy() if name in SCENARIOS else {
        "clients": args.clients, "rate": args.rate, "stations": args.stations, "targets": {}}
    if args.clients_override:
        config["clients"] = args.clients_override
    extra_env = dict(item.split("=", 1) for item in args.station_env)
    if args.external:
        ports = [int(item.rpartition(":")[2]) for item in args.external.split(",")]
        pids = [int(pid) for pid in args.external_pid.split(",")] if args.external_pid else []
        station: Station = ExternalServer(ports, pids)
        config["stations"] = len(ports)
    else:
        station = Station(config["stations"], extra_env).start()
    context = multiprocessing.get_context("spawn")
    workers = []
    try:
        rss_idle = station.rss()
        station.start_sampling()
        share = config["rate"] / args.workers
        for index, pairs in enumerate(assign_pairs(config["clients"], station.ports,
                                                   args.workers)):
            parent_end, child_end = context.Pipe()
            spec = {"worker": index, "protocol": args.protocol, "pairs": pairs, "rate": share,
                    "duration": args.duration, "sdp_bytes": args.sdp_bytes,
                    "heartbeat": args.heartbeat, "connect_concurrency": args.connect_concurrency,
                    "drain": args.drain, "peerjs_path": args.peerjs_path}
            process = context.Process(target=worker_main, args=(spec, child_end), daemon=True)
            process.start()
            workers.append((process, parent_end))
        started = time.monotonic()
        connected = [pipe.recv() for _, pipe in workers]
        connect_wall = time.monotonic() - started
        rss_connected = station.rss()
        settle = wait_until_quiet(station, args.settle_max)
        cpu_before = station.cpu_seconds()
        start_at = time.monotonic() + 0.5
        profiles = (start_profile(station, Path(args.profile) / name, args.duration)
                    if args.profile else [])
        for _, pipe in workers:
            pipe.send(start_at)
        results = [pipe.recv() for _, pipe in workers]
        cpu_used = station.cpu_seconds() - cpu_before
        peak_rss = station.stop_sampling()
        alive = station.alive()
        for process, _ in workers:
            process.join(10)
        for run, _ in profiles:
            run.wait(args.duration + 30)
    finally:
        for process, _ in workers:
            if process.is_alive():
                process.kill()
        station.stop()

    latencies = sorted(x for r in results for x in r["latencies_ms"])
    connects = sorted(x for r in results for x in r["connect_ms"])
    errors: Counter = Counter()
    for r in results:
        errors.update(r["errors"])
    sent = sum(r["sent"] for r in results)
    received = sum(r["received"] for r in results)
    elapsed = max(r["elapsed"] for r in results) or args.duration
    figures = {
        "scenario": name, "protocol": args.protocol, "clients": config["clients"],
        "pairs_live": sum(c["pairs"] for c in connected), "stations": config["stations"],
        "rate": config["rate"] or "saturated", "duration_s": round(elapsed, 2),
        "connect_p50_ms": round(percentile(connects, 0.5), 2),
        "connect_p99_ms": round(percentile(connects, 0.99), 2),
        "connect_wall_s": round(connect_wall, 2), "settle_s": round(settle, 2),
        "connect_failures": sum(r["connect_failures"] for r in results),
        "relay_p50_ms": round(percentile(latencies, 0.5), 2),
        "relay_p95_ms": round(percentile(latencies, 0.95), 2),
        "relay_p99_ms": round(percentile(latencies, 0.99), 2),
        "relay_max_ms": round(latencies[-1], 2) if latencies else None,
        "sent": sent, "delivered": received, "lost": max(0, sent - received),
        "msgs_per_s": round(received / elapsed, 1),
        "errors": sum(errors.values()), "error_kinds": dict(errors.most_common(6)),
        "station_rss_idle_mb": round(rss_idle / 2**20, 1),
        "station_rss_connected_mb": round(rss_connected / 2**20, 1),
        "station_peak_rss_mb": round(peak_rss / 2**20, 1),
        "station_cpu_s": round(cpu_used, 2), "station_alive": alive,
        "heartbeat_s": args.heartbeat if args.protocol == "peerjs" else None,
    }
    figures["verdict"] = verdict(figures, config["targets"])
    if profiles:
        figures["profiles"] = [str(path) for _, path in profiles]
    return figures


def verdict(f: dict[str, Any], targets: dict[str, float]) -> str:
    misses = []
    if "lost" in targets and f["lost"] > targets["lost"]:
        misses.append(f"lost {f['lost']}")
    if "errors" in targets and f["errors"] + f["connect_failures"] > targets["errors"]:
        misses.append(f"errors {f['errors']}")
    if "p99_ms" in targets and not f["relay_p99_ms"] <= targets["p99_ms"]:
        misses.append(f"p99 {f['relay_p99_ms']} > {targets['p99_ms']} ms")
    if "rss_mb" in targets and f["station_peak_rss_mb"] > targets["rss_mb"]:
        misses.append(f"RSS {f['station_peak_rss_mb']} > {targets['rss_mb']} MB")
    if "msgs_per_s" in targets and f["msgs_per_s"] < targets["msgs_per_s"]:
        misses.append(f"{f['msgs_per_s']} < {targets['msgs_per_s']} msg/s")
    if not targets:
        return "no target"
    return "MET" if not misses else "MISSED: " + ", ".join(misses)


def print_figures(f: dict[str, Any]) -> None:
    print(f"\n== {f['scenario']}: {f['clients']} {f['protocol']} clients, rate {f['rate']}, "
          f"{f['stations']} station process(es), {f['duration_s']} s ==")
    print(f"connect   p50 {f['connect_p50_ms']} ms  p99 {f['connect_p99_ms']} ms  "
          f"(all in {f['connect_wall_s']} s, {f['connect_failures']} failed; station quiet "
          f"{f['settle_s']} s later)")
    print(f"relay     p50 {f['relay_p50_ms']} ms  p95 {f['relay_p95_ms']} ms  "
          f"p99 {f['relay_p99_ms']} ms  max {f['relay_max_ms']} ms")
    print(f"messages  {f['msgs_per_s']} msg/s delivered; sent {f['sent']}, "
          f"delivered {f['delivered']}, lost {f['lost']}")
    print(f"errors    {f['errors']} {f['error_kinds'] or ''}")
    print(f"station   peak RSS {f['station_peak_rss_mb']} MB (idle {f['station_rss_idle_mb']}, "
          f"connected {f['station_rss_connected_mb']}), CPU {f['station_cpu_s']} s, "
          f"alive {f['station_alive']}")
    print(f"target    {f['verdict']}")
    for path in f.get("profiles", []):
        print(f"profile   {path}\n{summarize_profile(Path(path))}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.signaling", description=(
        "Relay benchmark for the signaling endpoints of a station it starts itself."))
    parser.add_argument("--scenario", action="append", choices=[*SCENARIOS, "custom", "all"],
                        help="scenario to run (repeatable; default: all). "
                             "custom uses --clients/--rate/--stations")
    parser.add_argument("--protocol", choices=["peerjs", "native"], default="peerjs",
                        help="PeerJS server protocol (default) or native /ws/signal")
    parser.add_argument("--clients", type=int, default=1000, help="clients for custom")
    parser.add_argument("--clients-override", type=int, default=0,
                        help="replace the scenario's client count (quick trials)")
    parser.add_argument("--rate", type=float, default=2000,
                        help="total msg/s for custom; 0 = saturated")
    parser.add_argument("--stations", type=int, default=1, choices=[1, 2, 3, 4],
                        help="daphne processes on one Redis for custom")
    parser.add_argument("--settle-max", type=float, default=10.0,
                        help="after connecting, wait up to this many seconds for the station "
                             "to go quiet before measuring (0: measure at once; default 10)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds of load per scenario (default 10)")
    parser.add_argument("--workers", type=int, default=1,
                        help="load generator processes (default 1: one uvloop process relays "
                             "over 14,000 msg/s against peerjs-server, and on 2 cores a second "
                             "one only takes CPU from the station)")
    parser.add_argument("--sdp-bytes", type=int, default=3000, help="SDP size (default 3000)")
    parser.add_argument("--heartbeat", type=float, default=5.0,
                        help="PeerJS HEARTBEAT interval per client in s, as peerjs 1.5.5 "
                             "sends them (0 = none; default 5)")
    parser.add_argument("--connect-concurrency", type=int, default=100,
                        help="handshakes in flight per generator process (default 100)")
    parser.add_argument("--drain", type=float, default=5.0,
                        help="seconds to wait for messages still in flight (default 5)")
    parser.add_argument("--peerjs-path", default="/peerjs/",
                        help="the station's PeerJS mount path (default /peerjs/)")
    parser.add_argument("--station-env", action="append", default=[], metavar="VAR=VALUE",
                        help="extra environment for the station processes (repeatable)")
    parser.add_argument("--profile", metavar="DIR",
                        help="record each station process with py-spy during the load and "
                             "print where its time goes")
    parser.add_argument("--external", metavar="HOST:PORT[,HOST:PORT]",
                        help="measure running servers on 127.0.0.1 instead of starting a "
                             "station (e.g. peerjs-server, for a comparison in the same run)")
    parser.add_argument("--external-pid", metavar="PID[,PID]",
                        help="PIDs of the --external servers, for their RSS and CPU")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    for item in args.station_env:
        if "=" not in item:
            parser.error(f"--station-env {item!r}: expected VAR=VALUE")
    if args.duration <= 0 or args.duration > 120:
        parser.error("--duration must be in (0, 120] seconds")
    names = args.scenario or ["all"]
    if "all" in names:
        names = list(SCENARIOS)
    hard = raise_fd_limit()
    needed = max(SCENARIOS.get(n, {}).get("clients", args.clients) for n in names) + 200
    if hard < needed:
        print(f"warning: the fd limit is {hard}; {needed} are needed", file=sys.stderr)
    all_figures = []
    for name in names:
        figures = run_scenario(name, args)
        print_figures(figures)
        all_figures.append(figures)
    if args.json:
        Path(args.json).write_text(json.dumps(all_figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
