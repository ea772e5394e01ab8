"""Network mode on a real station: a loopback probe target stopped -> offline within 30 s,
restarted -> online; shown in /api/status, /healthz detail and pushed on /ws/mesh/status."""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import pytest
import websockets

from tests.harness import StationProcess, free_port
from tests.mesh.stations import wait_for

pytestmark = pytest.mark.integration


class TcpTarget:
    """A tiny TCP server standing in for 'the internet'."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        sock.settimeout(0.2)
        self.sock = sock

        def serve() -> None:
            while self.sock is sock:
                try:
                    conn, _ = sock.accept()
                except (TimeoutError, OSError):
                    continue
                conn.close()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()
        if self.thread is not None:
            self.thread.join(2)


def wait_mode(station: StationProcess, mode: str, limit: float) -> float:
    seen: list[str] = []

    def reached() -> bool:
        status, body = station.get("/api/status")
        seen.append(body["networkMode"] if status == 200 else f"HTTP {status}")
        return seen[-1] == mode

    try:
        return wait_for(reached, limit, f"networkMode {mode}", interval=0.25)
    except AssertionError:
        raise AssertionError(f"networkMode never became {mode} within {limit}s "
                             f"(last: {seen[-1:]}):\n{station.output()[-3000:]}") from None


def test_probe_target_down_then_up(tmp_path):
    target = TcpTarget(free_port())
    target.start()
    station = StationProcess(tmp_path / "a", env={
        "MESHSITE_CONNECTIVITY_TARGETS": f"127.0.0.1:{target.port}",
        "MESHSITE_CONNECTIVITY_INTERVAL": "2", "MESHSITE_CONNECTIVITY_TIMEOUT": "1"})
    pushed: list[dict] = []
    listening = threading.Event()

    async def listen(stop: asyncio.Event) -> None:
        async with websockets.connect(station.ws_url + "/ws/mesh/status") as ws:
            listening.set()
            while not stop.is_set():
                try:
                    pushed.append(json.loads(await asyncio.wait_for(ws.recv(), 0.5)))
                except TimeoutError:
                    continue

    try:
        station.start()
        station.wait_ready()
        wait_mode(station, "online", 30)
        stop = asyncio.Event()
        loop = asyncio.new_event_loop()
        listener = threading.Thread(target=lambda: loop.run_until_complete(listen(stop)),
                                    daemon=True)
        listener.start()
        wait_for(listening.is_set, 10, "listening on /ws/mesh/status")

        target.stop()
        went_offline = wait_mode(station, "offline", 30)
        _status, health = station.get("/healthz")
        assert health["networkMode"] == "offline"
        assert "network" not in health["failed"]  # the station itself still works

        target.start()
        came_back = wait_mode(station, "online", 30)

        def modes() -> list[str]:
            return [m["mode"] for m in list(pushed) if m.get("type") == "NETWORK_MODE"]

        wait_for(lambda: "offline" in modes() and modes()[-1] == "online", 10,
                 "offline then online pushed on /ws/mesh/status")
        loop.call_soon_threadsafe(stop.set)
        listener.join(5)
        print(f"\nconnectivity: offline detected after {went_offline:.1f}s, "
              f"online again after {came_back:.1f}s (interval 2s, 2 failures needed)")
        assert "offline" in modes() and modes()[-1] == "online", pushed
        status, network = station.get("/api/mesh/network")
        assert status == 200
        assert network["mode"] == "online"
        assert network["targets"][0]["ok"] is True
    finally:
        target.stop()
        station.stop()
