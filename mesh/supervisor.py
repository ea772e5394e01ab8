"""Process supervision for `runstation` (no Django imports).

Each part of a station (embedded Redis, daphne, the Celery worker with beat, the mesh
daemon) runs as a child in its own process group, so stopping a part stops everything it
forked. A child that dies is restarted with exponential backoff; one that keeps dying stops
the whole station with a message naming the part and its last output, so a station is never
left half alive.

Whatever ends the supervisor, nothing it started lives on: children get PR_SET_PDEATHSIG (SIGTERM,
the start of a graceful stop), and a reaper process (`mesh/reaper.py`) that follows every process
descended from the parts SIGKILLs whatever is still alive a few seconds after the supervisor is
gone, whatever session it moved to. A normal stop SIGTERMs every part, SIGKILLs each part's
process group once `stop_timeout` has passed, and lets the reaper kill any straggler at once.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: own session, SIGTERM when the parent dies."""
    os.setsid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            pass


@dataclass
class ChildSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[], bool] | None = None
    ready_timeout: float = 60.0
    description: str = ""
    others_wait: bool = False  # the parts after this one start only once it is ready
    pass_fds: tuple[int, ...] = ()  # descriptors the child inherits (a shared listening socket)


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen | None = None
    restarts: collections.deque = field(default_factory=lambda: collections.deque(maxlen=32))
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=20))
    next_start: float = 0.0


class StationFailed(RuntimeError):
    """A part of the station could not be kept running."""


class Supervisor:
    def __init__(self, specs: list[ChildSpec], *, emit: Callable[[str], None],
                 max_restarts: int = 5, window: float = 60.0, stop_timeout: float = 6.0,
                 backoff_max: float = 16.0, reaper_grace: float = 5.0,
                 on_state: Callable[[str, str, int | None, str], None] | None = None) -> None:
        self.children = [Child(spec) for spec in specs]
        self.emit = emit
        self.max_restarts = max_restarts
        self.window = window
        self.stop_timeout = stop_timeout
        self.backoff_max = backoff_max
        self._stop = threading.Event()
        self.stop_reason = ""
        # (part name, state running|exited|stopped, pid, detail) for whoever reports health.
        self.on_state = on_state or (lambda name, state, pid, detail: None)
        self.reaper = subprocess.Popen(
            [sys.executable, "-m", "mesh.reaper", str(reaper_grace)], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, start_new_session=True)

    # -- starting ---------------------------------------------------------------------------

    def _pump(self, child: Child, stream) -> None:
        prefix = f"[{child.spec.name}] "
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            child.tail.append(line)
            sys.stderr.write(prefix + line + "\n")
        stream.close()

    def _spawn(self, child: Child) -> None:
        child.process = subprocess.Popen(
            child.spec.argv, env=child.spec.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            pass_fds=child.spec.pass_fds,
        )
        self._tell_reaper(str(child.process.pid))
        threading.Thread(target=self._pump, args=(child, child.process.stdout),
                         name=f"pump-{child.spec.name}", daemon=True).start()
        self.on_state(child.spec.name, "running", child.process.pid,
                      f"started at {time.time():.3f}")

    def _tell_reaper(self, line: str) -> None:
        if self.reaper.stdin is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self.reaper.stdin.write(line.encode() + b"\n")
            self.reaper.stdin.flush()

    def _wait_ready(self, child: Child) -> None:
        if child.spec.ready is None:
            return
        deadline = time.monotonic() + child.spec.ready_timeout
        while time.monotonic() < deadline:
            if self._stop.is_set():
                return
            if child.process is not None and child.process.poll() is not None:
                raise StationFailed(self._failure(child, "exited while starting"))
            if child.spec.ready():
                return
            time.sleep(0.1)
        waited = f"not ready within {child.spec.ready_timeout:.0f}s"
        raise StationFailed(self._failure(child, waited))

    def start(self) -> None:
        """Start the children in order. A part with `others_wait` is ready before the next
        starts; the others start at once and are waited for together at the end."""
        waiting: list[Child] = []
        for child in self.children:
            if self._stop.is_set():
                return
            self._spawn(child)
            if child.spec.others_wait:
                self._wait_ready(child)
                self._started(child)
            elif child.spec.ready is None:
                self._started(child)
            else:
                waiting.append(child)
        for child in waiting:
            self._wait_ready(child)
            self._started(child)

    def _started(self, child: Child) -> None:
        if child.process is not None and not self._stop.is_set():
            self.emit(f"started {child.spec.name} (pid {child.process.pid})"
                      + (f": {child.spec.description}" if child.spec.description else ""))

    # -- running ----------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self._stop.set()

    def _failure(self, child: Child, what: str) -> str:
        code = child.process.returncode if child.process is not None else None
        tail = "\n  ".join(list(child.tail)[-8:]) or "(no output)"
        return (f"part '{child.spec.name}' {what} (exit code {code}). Last output:\n  {tail}")

    def _check(self, child: Child) -> None:
        process = child.process
        if process is None:
            if time.monotonic() >= child.next_start:
                self._spawn(child)
                self.emit(f"restarted {child.spec.name} (pid {child.process.pid})")
            return
        code = process.poll()
        if code is None:
            return
        # What the dead part forked (pool workers) would live on as orphans: sweep its group.
        _signal_group(process.pid, signal.SIGKILL)
        now = time.monotonic()
        while child.restarts and now - child.restarts[0] > self.window:
            child.restarts.popleft()
        if len(child.restarts) >= self.max_restarts:
            raise StationFailed(self._failure(
                child, f"died {len(child.restarts) + 1} times within {self.window:.0f}s"))
        child.restarts.append(now)
        delay = min(self.backoff_max, 2 ** (len(child.restarts) - 1))
        self.emit(f"{child.spec.name} exited with code {code}; restarting in {delay:.0f}s")
        self.on_state(child.spec.name, "exited", process.pid,
                      f"exited with code {code}; restarting in {delay:.0f}s")
        child.process = None
        child.next_start = now + delay

    def run(self, poll: float = 0.2) -> None:
        """Supervise until a stop is requested; raise StationFailed when a part can't be kept up."""
        while not self._stop.wait(poll):
            for child in self.children:
                self._check(child)

    # -- stopping ---------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM every child's process group (last started first), SIGKILL what is left."""
        deadline = time.monotonic() + self.stop_timeout
        live = [c for c in reversed(self.children) if c.process and c.process.poll() is None]
        for child in live:
            _signal_group(child.process.pid, signal.SIGTERM)
        for child in live:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                child.process.wait(remaining)
            except subprocess.TimeoutExpired:
                self.emit(f"{child.spec.name} did not stop in time; killing it")
                _signal_group(child.process.pid, signal.SIGKILL)
                child.process.wait(2)
            # Grandchildren (celery pool workers) may outlive their leader: sweep the group.
            _signal_group(child.process.pid, signal.SIGKILL)
            self.on_state(child.spec.name, "stopped", child.process.pid, "stopped")
        # Whatever left the parts' groups and sessions: the reaper kills it now, without grace.
        self._tell_reaper("kill")
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self.reaper.stdin.close()
        try:
            self.reaper.wait(5)
        except subprocess.TimeoutExpired:
            self.reaper.kill()
            self.reaper.wait(2)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
