"""Two real TNCs (Debian's Direwolf) that hear each other by "radio" while their network
namespaces share no IP path: each Direwolf's transmit audio goes to an ALSA `file` plugin that
pipes it into a forwarder started in the OTHER namespace (`ip netns exec`), which hands it to
that namespace's Direwolf UDP audio input. Each TNC's KISS port is 127.0.0.1:8001 of its own
namespace. Direwolf prints every frame it decodes as `[0.n] SRC>DEST...`, which `decoded()`
reads back (test-infrastructure.md, "A real TNC")."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.mesh.netns import kill_namespace, sh

KISS_PORT = 8001
AUDIO_PORT = 7355
FORWARDER = Path(__file__).with_name("rf_udpfwd.py")
_DECODED = re.compile(r"^\[\d+\.\d+\] ([A-Z0-9]{1,6}(?:-\d{1,2})?)>", re.MULTILINE)


def direwolf_available() -> bool:
    return shutil.which("direwolf") is not None


class DirewolfPair:
    def __init__(self, folder: Path, calls: tuple[str, str]) -> None:
        self.folder = folder
        tag = f"{os.getpid() % 100000}"
        self.namespaces = (f"rfdw{tag}a", f"rfdw{tag}b")
        self.calls = calls
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, timeout: float = 30) -> DirewolfPair:
        for ns in self.namespaces:
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for index, ns in enumerate(self.namespaces):
            other = self.namespaces[1 - index]
            home = self.folder / f"tnc{index}"
            home.mkdir(parents=True, exist_ok=True)
            (home / ".asoundrc").write_text(
                "pcm.radio {\n  type file\n  slave.pcm \"null\"\n"
                f"  file \"|ip netns exec {other} {sys.executable} {FORWARDER} {AUDIO_PORT}\"\n"
                "  format \"raw\"\n}\n")
            (home / "direwolf.conf").write_text(
                f"ADEVICE UDP:{AUDIO_PORT} radio\nARATE 44100\nACHANNELS 1\nCHANNEL 0\n"
                f"MYCALL {self.calls[index]}\nMODEM 1200\nKISSPORT {KISS_PORT}\nAGWPORT 0\n"
                "FULLDUP ON\n")
            log = home / "direwolf.log"
            self.logs.append(log)
            with open(log, "wb") as out:
                self.processes.append(subprocess.Popen(
                    ["ip", "netns", "exec", ns, "direwolf", "-c", str(home / "direwolf.conf"),
                     "-t", "0"], cwd=home, env={**os.environ, "HOME": str(home)},
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + timeout
        while not all("Ready to accept KISS TCP" in log.read_text(errors="replace")
                      for log in self.logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise RuntimeError("Direwolf did not start:\n" + "\n".join(
                    log.read_text(errors="replace")[-1500:] for log in self.logs))
            time.sleep(0.2)
        return self

    def decoded(self, index: int) -> list[str]:
        """Sources of every frame TNC `index` decoded off the air."""
        return _DECODED.findall(self.logs[index].read_text(errors="replace"))

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 15)
        for ns in self.namespaces:
            kill_namespace(ns)  # the forwarders and whatever else runs there, by PID
            with contextlib.suppress(subprocess.CalledProcessError, OSError):
                sh("ip", "netns", "del", ns)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
