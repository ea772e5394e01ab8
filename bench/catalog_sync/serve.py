"""Serving a 1 MB content entry from a real station: `.venv/bin/python -m bench.catalog_sync.serve`
(or `-m bench.catalog_sync --serve` / `--all`, after the reconciliation figures).

Starts a station of its own (`manage.py runstation --no-mdns` on 127.0.0.1, a free port and a
temporary data dir: embedded Redis, daphne, Celery worker, mesh daemon), gives it a test trust
root and claims it with a generated certificate (the integration tests' `provision()` and PKI),
publishes a 1 MB entry with `manage.py publish --priority 1`, then loads `GET /c/<CALL>/big.bin`
with N concurrent keep-alive clients (raw HTTP/1.1 over asyncio sockets, in separate generator
processes) for a bounded time each: whole bodies, conditional requests (If-None-Match -> 304) and
Range requests (bytes=0-65535). Prints requests per second, MB/s, latency p50/p95/p99, errors, and
the peak RSS of the station's web process (daphne) and of the whole station.

Options: --duration S (seconds per full-body phase, default 10), --clients 16,64,
--profile (py-spy the daphne process during extra phases and print the hottest frames; needs
`.venv/bin/pip install py-spy`). Everything talks only to 127.0.0.1; every process started here is
stopped by its PID at the end, on errors and on Ctrl-C, and the temp dir is removed.
Not a test: figures are noisy on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import hashlib
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from tests.certificates import pki
from tests.harness import StationProcess
from tests.mesh.stations import provision

CALLSIGN = "DL1BEN"
BODY_SIZE = 1024 * 1024
CONTENT_PATH = "big.bin"
RANGE_BYTES = 65536
REQUEST_TIMEOUT = 30.0
GENERATOR_PROCESSES = 2


# --- load generator (runs in its own processes) ---------------------------------------------


@dataclass(frozen=True)
class Phase:
    name: str
    clients: int
    duration: float
    headers: tuple[tuple[str, str], ...] = ()
    expect_status: int = 200
    expect_length: int = BODY_SIZE


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int, bool]:
    """(status, body bytes, keep-alive) of one response; the body is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        if line:
            key, _, value = line.partition(b":")
            headers[key.strip().lower()] = value.strip()
    keep_alive = headers.get(b"connection", b"").lower() != b"close"
    if status == 304 or status == 204 or status < 200:
        return status, 0, keep_alive
    received = 0
    if b"content-length" in headers:
        remaining = int(headers[b"content-length"])
        while remaining:
            chunk = await reader.read(min(remaining, 1 << 18))
            if not chunk:
                raise ConnectionError("short body")
            received += len(chunk)
            remaining -= len(chunk)
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected
                break
            await reader.readexactly(size + 2)
            received += size
    else:
        while chunk := await reader.read(1 << 18):
            received += len(chunk)
        keep_alive = False
    return status, received, keep_alive


async def _client(port: int, request: bytes, phase: Phase, start_at: float, deadline: float,
                  out: dict[str, Any]) -> None:
    reader = writer = None
    latencies: array.array = out["latencies"]
    errors: Counter = out["errors"]
    while True:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                               limit=1 << 20)
                if time.time() < start_at:  # connected before the window opens
                    await asyncio.sleep(start_at - time.time())
            if time.time() >= deadline:
                break
            sent = time.perf_counter()
            writer.write(request)
            status, length, keep_alive = await asyncio.wait_for(_read_response(reader),
                                                                REQUEST_TIMEOUT)
            elapsed = time.perf_counter() - sent
            out["end"] = max(out["end"], time.time())
            if status != phase.expect_status:
                errors[f"status {status}"] += 1
            elif length != (0 if status == 304 else phase.expect_length):
                errors[f"length {length}"] += 1
            else:
                latencies.append(elapsed)
                out["bytes"] += length
            if not keep_alive:
                errors["connection closed by server"] += 1
                writer.close()
                reader = writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                TimeoutError) as exc:
            errors[type(exc).__name__] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            if time.time() >= deadline:
                break
            await asyncio.sleep(0.05)
    if writer is not None:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _generator(port: int, url_path: str, phase: Phase, clients: int, start_at: float,
               conn: Any) -> None:
    """One generator process: `clients` keep-alive connections until the deadline."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us by PID
    lines = [f"GET {url_path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: */*",
             "User-Agent: meshsite-bench"]
    lines += [f"{key}: {value}" for key, value in phase.headers]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    out: dict[str, Any] = {"latencies": array.array("d"), "errors": Counter(), "bytes": 0,
                           "end": start_at}
    deadline = start_at + phase.duration

    async def run() -> None:
        await asyncio.gather(*(_client(port, request, phase, start_at, deadline, out)
                               for _ in range(clients)))

    asyncio.run(run())
    conn.send({"latencies": out["latencies"].tobytes(), "errors": dict(out["errors"]),
               "bytes": out["bytes"], "end": out["end"]})
    conn.close()


# --- the station -----------------------------------------------------------------------------


class Bench:
    """The station under test and everything started for it, all stopped by PID in `close`."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="msbench-serve-"))
        self.station = StationProcess(self.tmp / "station")
        self.known_pids: set[int] = set()  # runstation and its children (own sessions)
        self.generators: list[multiprocessing.process.BaseProcess] = []
        self.helpers: list[subprocess.Popen] = []
        self.url_path = ""
        self.content_hash = ""

    # setup

    def start(self) -> None:
        root, owner = pki.meshsite_chain(CALLSIGN)
        provision(self.station, roots=[root], owner=owner, callsign=CALLSIGN)
        self.station.start(timeout=120)
        self.known_pids.add(self.station.pid)
        self.station.wait_ready(timeout=120)
        self._remember_children()
        body = os.urandom(BODY_SIZE)
        source = self.tmp / "big.bin"
        source.write_bytes(body)
        result = self.station.manage("publish", str(source), "--path", CONTENT_PATH,
                                     "--priority", "1", "--content-type",
                                     "application/octet-stream")
        if result.returncode != 0:
            raise RuntimeError(f"publish failed: {result.stderr[-2000:]}")
        match = re.search(r"published (/c/\S+) ", result.stdout)
        if not match:
            raise RuntimeError(f"unexpected publish output: {result.stdout!r}")
        self.url_path = match.group(1)
        self.content_hash = hashlib.sha256(body).hexdigest()
        with urllib.request.urlopen(self.station.url + self.url_path, timeout=30) as response:
            served = response.read()
            etag = response.headers["ETag"]
        if hashlib.sha256(served).hexdigest() != self.content_hash:
            raise RuntimeError("the station served a different body")
        if etag != f'"{self.content_hash}"':
            raise RuntimeError(f"unexpected ETag {etag}")
        self._remember_children()

    def _remember_children(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.station.pid).children(recursive=True):
                self.known_pids.add(child.pid)

    def web_pid(self) -> int:
        for child in psutil.Process(self.station.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                if {"daphne", "meshsite.web"} & set(child.cmdline()):
                    return child.pid
        raise RuntimeError("no daphne process under runstation")

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.station.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    # load

    def run_phase(self, phase: Phase) -> dict[str, Any]:
        web = psutil.Process(self.web_pid())
        cpu_before = sum(web.cpu_times()[:2])
        sampler = RssSampler(web, self.tree)
        sampler.start()
        context = multiprocessing.get_context("spawn")
        workers = min(GENERATOR_PROCESSES, phase.clients)
        start_at = time.time() + 2.0  # spawn and connect before the window opens
        pipes = []
        try:
            for index in range(workers):
                share = phase.clients // workers + (index < phase.clients % workers)
                receive, send = context.Pipe(duplex=False)
                process = context.Process(target=_generator, args=(
                    self.station.port, self.url_path, phase, share, start_at, send), daemon=True)
                process.start()
                send.close()
                self.generators.append(process)
                pipes.append((process, receive))
            results = []
            for process, receive in pipes:
                if not receive.poll(phase.duration + REQUEST_TIMEOUT + 30):
                    raise RuntimeError(f"generator {process.pid} did not report")
                results.append(receive.recv())
                process.join(10)
        finally:
            for process, _ in pipes:
                self._stop_generator(process)
            peak_web, peak_tree = sampler.stop()
        cpu = sum(web.cpu_times()[:2]) - cpu_before
        latencies = array.array("d")
        errors: Counter = Counter()
        transferred = 0
        for result in results:
            latencies.frombytes(result["latencies"])
            errors.update(result["errors"])
            transferred += result["bytes"]
        elapsed = max(result["end"] for result in results) - start_at
        ordered = sorted(latencies)
        return {"phase": phase, "requests": len(ordered), "seconds": elapsed,
                "rps": len(ordered) / elapsed if elapsed > 0 else 0.0,
                "mbps": transferred / elapsed / 1e6 if elapsed > 0 else 0.0,
                "p50": percentile(ordered, 0.50), "p95": percentile(ordered, 0.95),
                "p99": percentile(ordered, 0.99), "errors": errors,
                "web_rss": peak_web, "tree_rss": peak_tree, "web_cpu": cpu}

    def _stop_generator(self, process: multiprocessing.process.BaseProcess) -> None:
        if process.is_alive():
            process.terminate()
            process.join(5)
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.join(5)
        if process in self.generators:
            self.generators.remove(process)

    # teardown

    def close(self) -> list[int]:
        """Stop everything started here; returns PIDs that had to be killed afterwards."""
        for process in list(self.generators):
            self._stop_generator(process)
        for helper in self.helpers:
            if helper.poll() is None:
                helper.send_signal(signal.SIGINT)
                try:
                    helper.wait(10)
                except subprocess.TimeoutExpired:
                    helper.kill()
                    helper.wait(5)
        if self.station.process is not None:
            self._remember_children()
            self.station.stop(timeout=20)
        leftovers = []
        for pid in sorted(self.known_pids):
            with contextlib.suppress(psutil.NoSuchProcess):
                process = psutil.Process(pid)
                if process.status() != psutil.STATUS_ZOMBIE:
                    process.kill()
                    leftovers.append(pid)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return leftovers


class RssSampler:
    """Peak RSS of the web process and of the whole station, sampled every 100 ms."""

    def __init__(self, web: psutil.Process, tree: Any) -> None:
        self.web = web
        self.tree = tree
        self.peak_web = 0
        self.peak_tree = 0
        self._running = False
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        total = 0
        for process in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                rss = process.memory_info().rss
                total += rss
                if process.pid == self.web.pid:
                    self.peak_web = max(self.peak_web, rss)
        self.peak_tree = max(self.peak_tree, total)

    def start(self) -> None:
        self._running = True
        self.sample()

        def loop() -> None:
            while self._running:
                self.sample()
                time.sleep(0.1)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> tuple[int, int]:
        self._running = False
        if self._thread is not None:
            self._thread.join()
        self.sample()
        return self.peak_web, self.peak_tree


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- profiling -------------------------------------------------------------------------------


def py_spy() -> str | None:
    candidate = Path(sys.executable).with_name("py-spy")
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


IDLE_LEAVES = ("Condition.wait", "_worker (concurrent/futures/thread.py", "select (selectors.py",
               "_wait_for_tstate_lock", "Thread.join")


SUSPECTS = (
    ("new DB connection (connect + init_command PRAGMAs)", "BaseDatabaseWrapper.connect ("),
    ("DB connection close (request_finished)", "close_old_connections ("),
    ("selectors.entry_for_url (SELECT)", "entry_for_url (catalog/selectors.py)"),
    ("services.entry_touch (UPDATE per request)", "entry_touch (catalog/services.py)"),
    ("body streaming (_async_chunks)", "_async_chunks (catalog/views.py)"),
    ("asgiref async_to_sync hops", "AsyncToSync.__call__ (asgiref/sync.py)"),
    ("access log line (Logger._log)", "Logger._log ("),
)


def profile_phase(bench: Bench, phase: Phase, out: Path) -> None:
    """Run `phase` while py-spy samples the daphne process (all threads, only samples holding
    the GIL, idle waits dropped); print where the CPU goes, by function and by catalog line."""
    binary = py_spy()
    if binary is None:
        print("  py-spy not installed (.venv/bin/pip install py-spy): no profile")
        return
    collapsed = out / f"{phase.name.replace(' ', '-')}-{phase.clients}.txt"
    helper = subprocess.Popen([binary, "record", "-p", str(bench.web_pid()), "-r", "200",
                               "-d", str(int(phase.duration + 3)), "-f", "raw", "--gil",
                               "--nonblocking", "-o", str(collapsed)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    bench.helpers.append(helper)
    time.sleep(1.0)
    result = bench.run_phase(phase)
    try:
        _, stderr = helper.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        helper.send_signal(signal.SIGINT)
        _, stderr = helper.communicate(timeout=10)
    print(f"\n  {phase.name}, {phase.clients} clients: {result['rps']:.0f} req/s under py-spy "
          f"({result['requests']} requests, daphne {result['web_cpu']:.1f} CPU s)")
    if not collapsed.exists():
        print(f"  py-spy wrote nothing: {stderr.decode(errors='replace')[-500:]}")
        return
    by_function: Counter = Counter()
    by_line: Counter = Counter()
    own: Counter = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        if not stack or frames[-1].startswith(IDLE_LEAVES):
            continue
        count = int(count_text)
        total += count
        own[re.sub(r":\d+\)$", ")", frames[-1])] += count
        for frame in {re.sub(r":\d+\)$", ")", frame) for frame in frames}:
            by_function[frame] += count
        for frame in {frame for frame in frames if "catalog/" in frame}:
            by_line[frame] += count
    if not total:
        print("  no busy samples")
        return
    print(f"  {total} busy samples (GIL held); own time:")
    for frame, count in own.most_common(10):
        print(f"    {count / total:6.1%}  {frame}")
    print("  inclusive, by function:")
    wanted = ("catalog/", "meshsite/", "django/db/", "django/core/handlers", "asgiref/",
              "daphne/", "django/utils/deprecation", "twisted/web", "logging/")
    shown = 0
    for frame, count in by_function.most_common():
        if any(part in frame for part in wanted):
            print(f"    {count / total:6.1%}  {frame}")
            shown += 1
            if shown == 22:
                break
    print("  inclusive, selected suspects:")
    for label, marker in SUSPECTS:
        count = sum(n for frame, n in by_function.items() if marker in frame)
        print(f"    {count / total:6.1%}  {label}")
    print("  inclusive, by catalog line:")
    for frame, count in by_line.most_common(10):
        print(f"    {count / total:6.1%}  {frame}")


# --- output ----------------------------------------------------------------------------------


def print_row(row: dict[str, Any]) -> None:
    phase: Phase = row["phase"]
    errors = sum(row["errors"].values())
    cpu_ms = 1000 * row["web_cpu"] / row["requests"] if row["requests"] else float("nan")
    detail = f" ({dict(row['errors'])})" if errors else ""
    print(f"{phase.name:<24} {phase.clients:>7} {row['seconds']:>6.1f} {row['requests']:>8} "
          f"{row['rps']:>8.1f} {row['mbps']:>8.1f} {1000 * row['p50']:>8.1f} "
          f"{1000 * row['p95']:>8.1f} {1000 * row['p99']:>8.1f} {errors:>6} "
          f"{row['web_rss'] / 2**20:>8.1f} {row['tree_rss'] / 2**20:>9.1f} "
          f"{cpu_ms:>7.1f}{detail}")


def phases(duration: float, clients: list[int]) -> list[Phase]:
    short = max(3.0, duration / 2)
    whole = [Phase(f"GET whole {BODY_SIZE // 1024} KB", n, duration) for n in clients]
    not_modified = [Phase("If-None-Match -> 304", n, short, (("If-None-Match", "{etag}"),), 304,
                          0) for n in clients]
    ranges = [Phase(f"Range bytes=0-{RANGE_BYTES - 1}", n, short,
                    (("Range", f"bytes=0-{RANGE_BYTES - 1}"),), 206, RANGE_BYTES)
              for n in clients]
    return whole + not_modified + ranges


def with_etag(phase: Phase, etag: str) -> Phase:
    headers = tuple((key, value.replace("{etag}", etag)) for key, value in phase.headers)
    return Phase(phase.name, phase.clients, phase.duration, headers, phase.expect_status,
                 phase.expect_length)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.catalog_sync.serve")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds per whole-body phase (304 and Range phases: half)")
    parser.add_argument("--clients", default="16,64", help="comma-separated client counts")
    parser.add_argument("--profile", action="store_true",
                        help="then py-spy the daphne process under load and print hot frames")
    options, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    clients = [int(part) for part in options.clients.split(",") if part]

    def on_sigterm(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    bench = Bench()
    started = time.monotonic()
    print(f"\nServing a {BODY_SIZE // 1024} KB entry from a real station")
    try:
        bench.start()
        web = psutil.Process(bench.web_pid())
        print(f"station: `manage.py runstation --no-mdns` on 127.0.0.1:{bench.station.port} "
              f"(daphne pid {web.pid}, one process; embedded Redis, Celery worker and meshd "
              f"beside it), SQLite in a temp data dir, claimed by {CALLSIGN}")
        print(f"entry: GET {bench.url_path} ({BODY_SIZE} bytes, priority 1, sha256 "
              f"{bench.content_hash[:16]}..., verified once before the load)")
        print(f"clients: raw HTTP/1.1 keep-alive over asyncio sockets in "
              f"{GENERATOR_PROCESSES} generator processes; all on 127.0.0.1; "
              f"{os.cpu_count()} CPUs shared with the station")
        print(f"idle RSS: daphne {web.memory_info().rss / 2**20:.1f} MB, whole station "
              f"{sum(p.memory_info().rss for p in bench.tree()) / 2**20:.1f} MB")
        print(f"\n{'phase':<24} {'clients':>7} {'s':>6} {'requests':>8} {'req/s':>8} "
              f"{'MB/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6} "
              f"{'web RSS':>8} {'station':>9} {'cpu/req':>7}")
        etag = f'"{bench.content_hash}"'
        rows = []
        for phase in phases(options.duration, clients):
            row = bench.run_phase(with_etag(phase, etag))
            print_row(row)
            rows.append(row)
            if not bench.station.process or bench.station.process.poll() is not None:
                raise RuntimeError("the station exited during the load")
        print("(web RSS = peak RSS of the daphne process, station = peak of runstation and "
              "all its children incl. Redis/Celery/meshd, both in MB; cpu/req = daphne CPU "
              "ms per answered request; MB/s = body bytes)")
        print(f"peak RSS over all phases: daphne {max(r['web_rss'] for r in rows) / 2**20:.1f} "
              f"MB, whole station {max(r['tree_rss'] for r in rows) / 2**20:.1f} MB")
        if options.profile:
            out = bench.tmp / "profiles"
            out.mkdir()
            print("\nProfile (py-spy record --gil --nonblocking -r 200 on the daphne process)")
            for phase in (Phase(f"GET whole {BODY_SIZE // 1024} KB", 64, options.duration),
                          Phase("If-None-Match -> 304", 16, options.duration,
                                (("If-None-Match", etag),), 304, 0)):
                profile_phase(bench, phase, out)
    finally:
        leftovers = bench.close()
        signal.signal(signal.SIGTERM, previous)
        note = f"; killed leftover pids {leftovers}" if leftovers else ""
        print(f"serve benchmark: {time.monotonic() - started:.0f} s; every process stopped, "
              f"temp dir removed{note}")


if __name__ == "__main__":
    main()
