"""The station under test: its own Redis and one or more daphne processes on 127.0.0.1.

Every process here is started by the benchmark and stopped by its PID (and process group).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

from meshsite.embedded_redis import EmbeddedRedis, socket_path_for

REPO = Path(__file__).resolve().parents[2]

# Every client of the benchmark comes from 127.0.0.1: the per-address connection limit would
# refuse most of them (it is meant for distinct hosts). Everything else keeps its default.
BENCH_STATION_ENV = {
    "MESHSITE_SIGNALING_CONNECT_RATE": "0",
    "MESHSITE_LOG_LEVEL": "warning",
    "MESHSITE_MDNS": "off",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by the processes started later)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# daphne as `runstation` starts it (mesh/management/commands/runstation.py): no access log,
# server-side pings every MESHSITE_SIGNALING_PING_INTERVAL seconds, so the benchmark pays
# what a station pays.
RUNSTATION_DAPHNE_ARGS = [
    "--application-close-timeout", "5", "-v", "0",
    "--ping-interval", os.environ.get("MESHSITE_SIGNALING_PING_INTERVAL", "5"),
    "--ping-timeout", os.environ.get("MESHSITE_SIGNALING_PING_TIMEOUT", "5"),
]


class Station:
    """Redis + migrated SQLite data dir + `processes` daphne processes sharing that Redis."""

    def __init__(self, processes: int = 1, extra_env: dict[str, str] | None = None, *,
                 shared_socket: bool = False) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="msbench-"))
        self.redis = EmbeddedRedis(self.data_dir, socket_path_for(self.data_dir))
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith("MESHSITE_") and key not in {"REDIS_URL",
                                                                          "DATABASE_URL"}}
        self.env.update(BENCH_STATION_ENV)
        self.env.update({"MESHSITE_DATA_DIR": str(self.data_dir),
                         "REDIS_URL": f"unix://{self.redis.socket_path}",
                         "DJANGO_SETTINGS_MODULE": "meshsite.settings"})
        self.env.update(extra_env or {})
        self.count = processes
        # shared_socket: every daphne accepts on one listening socket (as `runstation` runs
        # MESHSITE_WEB_PROCESSES of them); otherwise each has a port of its own.
        self.shared_socket = shared_socket
        self._listener: socket.socket | None = None
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen] = []
        self._peak_rss = 0
        self._sampling = False
        self._sampler: threading.Thread | None = None

    def start(self) -> Station:
        self.redis.start()
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                       cwd=REPO, env=self.env, check=True, timeout=300)
        if self.shared_socket:
            self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(("127.0.0.1", 0))
            self._listener.listen(1024)
        for n in range(self.count):
            if self._listener is not None:
                port = self._listener.getsockname()[1]
                fd = self._listener.fileno()
                listen, pass_fds = ["-m", "meshsite.web", "--listen-fd", str(fd)], (fd,)
                name = f"daphne-{port}-{n}.log"
            else:
                port = free_port()
                listen, pass_fds = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port)], ()
                name = f"daphne-{port}.log"
            log = open(self.data_dir / name, "ab")  # noqa: SIM115
            proc = subprocess.Popen(
                [sys.executable, *listen, *RUNSTATION_DAPHNE_ARGS, "meshsite.asgi:application"],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, pass_fds=pass_fds)
            log.close()
            self.ports.append(port)
            self.procs.append(proc)
        for port, proc in zip(self.ports, self.procs, strict=True):
            self._wait(port, proc)
        return self

    def _wait(self, port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"daphne on {port} exited: {self.log(port)[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"daphne on {port} did not answer in {timeout}s")

    def log(self, port: int) -> str:
        paths = sorted(self.data_dir.glob(f"daphne-{port}.log")) + \
            sorted(self.data_dir.glob(f"daphne-{port}-*.log"))
        return "".join(path.read_text(errors="replace") for path in paths)

    # --- memory and CPU --------------------------------------------------------------------

    def _tree(self) -> list[psutil.Process]:
        found = []
        for proc in self.procs:
            try:
                root = psutil.Process(proc.pid)
                found += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        return found

    def rss(self) -> int:
        total = 0
        for proc in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self._tree():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def redis_rss(self) -> int:
        if self.redis.process is None:
            return 0
        try:
            return psutil.Process(self.redis.process.pid).memory_info().rss
        except psutil.NoSuchProcess:
            return 0

    def start_sampling(self) -> None:
        self._peak_rss = self.rss()
        self._sampling = True

        def sample() -> None:
            while self._sampling:
                self._peak_rss = max(self._peak_rss, self.rss())
                time.sleep(0.2)

        self._sampler = threading.Thread(target=sample, daemon=True)
        self._sampler.start()

    def stop_sampling(self) -> int:
        self._sampling = False
        if self._sampler is not None:
            self._sampler.join()
        return max(self._peak_rss, self.rss())

    def alive(self) -> bool:
        return all(proc.poll() is None for proc in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.redis.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class ExternalServer(Station):
    """A server the benchmark did not start (for instance peerjs-server, to compare in the same
    run): given its ports and PIDs, only measured, never started or stopped."""

    def __init__(self, ports: list[int], pids: list[int]) -> None:
        super().__init__(len(ports))
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.ports = ports
        self.procs = [_Pid(pid) for pid in pids]  # type: ignore[misc]
        self.redis.process = None

    def start(self) -> ExternalServer:
        return self

    def stop(self) -> None:
        pass


class _Pid:
    """The part of Popen the measurements use, for a process we did not start."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        return None if psutil.pid_exists(self.pid) else 0
