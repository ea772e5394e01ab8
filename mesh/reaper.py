"""The station's reaper: whatever kills the supervisor, no part of the station outlives it.

`runstation`'s supervisor starts this tiny process first (`python -m mesh.reaper GRACE`) and
keeps the write end of its stdin. It writes one line per part it starts (the part's PID, which is
also its process group and session) and `kill` when it has stopped the parts itself. The reaper
follows every process descended from those parts, whatever session or group it moved to.

When its stdin closes (the supervisor exited, normally or by kill -9 or the OOM killer), the reaper
sends SIGTERM to everything it follows, waits GRACE seconds and SIGKILLs what is left: a daphne
that deadlocks in its graceful shutdown (a request in flight at interpreter exit) cannot hang on.
After `kill` it SIGKILLs the leftovers at once, because the supervisor already gave them their
grace. No Django imports: it must start in milliseconds and work when the station cannot.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys

import psutil

# A scan reads every process's /proc entry (~20 ms on a busy host): often enough to catch a part's
# child before it is orphaned, rarely enough to cost well under 1 % of a core. The scan that counts
# runs the moment the supervisor is gone, while the parts still lead their descendants.
SCAN_INTERVAL = 5.0


class Reaper:
    def __init__(self) -> None:
        self.followed: dict[int, psutil.Process] = {}
        self.leaders: set[int] = set()

    def follow(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            self.followed.setdefault(pid, psutil.Process(pid))
            self.leaders.add(pid)

    def scan(self) -> None:
        """Follow every live descendant of a followed process, and anything still in a part's
        session (orphans reparented to init keep their session unless they left it)."""
        self.followed = {pid: proc for pid, proc in self.followed.items() if _running(proc)}
        # A dead part's PID may come back as an unrelated session: forget it.
        self.leaders &= self.followed.keys()
        children: dict[int, list[psutil.Process]] = {}
        for proc in psutil.process_iter(["ppid"]):
            if proc.pid in self.followed or proc.pid == os.getpid():
                continue
            children.setdefault(proc.info["ppid"], []).append(proc)
            with contextlib.suppress(OSError):
                if os.getsid(proc.pid) in self.leaders:
                    self.followed[proc.pid] = proc
        parents = list(self.followed)
        while parents:
            for child in children.pop(parents.pop(), []):
                self.followed.setdefault(child.pid, child)
                parents.append(child.pid)

    def reap(self, grace: float) -> None:
        self.scan()
        targets = [proc for proc in self.followed.values() if _running(proc)]
        if grace > 0:
            for proc in targets:
                with contextlib.suppress(psutil.Error):
                    proc.terminate()
            _gone, targets = psutil.wait_procs(targets, timeout=grace)
            targets = [proc for proc in targets if _running(proc)]
        self.scan()
        for proc in {*targets, *(p for p in self.followed.values() if _running(p))}:
            with contextlib.suppress(psutil.Error):
                proc.kill()


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def main(argv: list[str]) -> int:
    grace = float(argv[0]) if argv else 5.0
    # The supervisor decides about Ctrl-C and SIGTERM; the reaper only acts once it is gone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    reaper = Reaper()
    fd = sys.stdin.fileno()
    pending = b""
    while True:
        readable, _, _ = select.select([fd], [], [], SCAN_INTERVAL)
        if readable:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                word = line.strip().decode("ascii", "replace")
                if word == "kill":
                    grace = 0.0
                elif word.isdigit():
                    reaper.follow(int(word))
        reaper.scan()
    reaper.reap(grace)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
