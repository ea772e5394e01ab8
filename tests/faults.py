"""Faults for integration tests and `bench/faults`: the exact set of processes a station started,
and HTTP requests held in flight while it is stopped or killed."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request

import psutil


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and every descendant by parent PID, whatever session or group it moved to
    (a psutil.Process remembers its start time, so a reused PID is not mistaken for it)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running; a zombie has ended (only its exit status waits for a reaper)."""
    still = []
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                still.append(proc)
    return still


def wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until none is alive or `timeout` passes; return those still alive."""
    deadline = time.monotonic() + timeout
    while alive(processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(processes)


def describe(processes: list[psutil.Process]) -> list[str]:
    out = []
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            out.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
    return out


class InFlight:
    """Keep requests in flight against a station: `getters` threads looping GETs of the given
    paths and `uploads` POSTs whose bodies stop halfway and stay open, until closed."""

    def __init__(self, host: str, port: int, paths: list[str], *, getters: int = 8,
                 uploads: int = 4, upload_path: str = "/api/content-catalog?path=held.bin",
                 headers: dict[str, str] | None = None) -> None:
        self.host, self.port, self.paths = host, port, paths
        self.getters, self.uploads, self.upload_path = getters, uploads, upload_path
        self.headers = headers or {}
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.sockets: list[socket.socket] = []
        self.answered = 0

    def __enter__(self) -> InFlight:
        for number in range(self.getters):
            thread = threading.Thread(target=self._get_loop, args=(number,), daemon=True)
            thread.start()
            self.threads.append(thread)
        for _ in range(self.uploads):
            with contextlib.suppress(OSError):
                self.sockets.append(self._held_upload())
        return self

    def _get_loop(self, number: int) -> None:
        base = f"http://{self.host}:{self.port}"
        while not self.stopping.is_set():
            path = self.paths[number % len(self.paths)]
            try:
                with urllib.request.urlopen(base + path, timeout=30) as response:
                    response.read()
                self.answered += 1
            except OSError:
                time.sleep(0.05)

    def _held_upload(self) -> socket.socket:
        size = 64 * 1024 * 1024
        sock = socket.create_connection((self.host, self.port), timeout=10)
        extra = "".join(f"{key}: {value}\r\n" for key, value in self.headers.items())
        sock.sendall((f"POST {self.upload_path} HTTP/1.1\r\nHost: {self.host}\r\n{extra}"
                      f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n")
                     .encode())
        sock.sendall(b"\xcd" * (1024 * 1024))
        return sock

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self.threads:
            thread.join(timeout=35)
