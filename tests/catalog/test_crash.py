"""kill -9 in the middle of an upload leaves no partial entry and loses nothing stored: once
for the console publisher (killed while the body streams into the blob store) and once for the
web server (killed while a POST body is arriving)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import psutil
import pytest

from tests.catalog.test_replication import entry_at, fetch, publish
from tests.certificates import pki
from tests.harness import REPO, StationProcess
from tests.mesh.stations import provision, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    root = pki.meshsite_root("ed25519")
    owner = pki.issue(root, callsign="DL1K")
    st = StationProcess(tmp_path_factory.mktemp("crash"))
    provision(st, roots=[root], owner=owner, callsign="DL1K")
    st.start()
    try:
        yield st
    finally:
        st.stop()


def blobs(st: StationProcess) -> set[str]:
    root = st.data_dir / "blobs"
    return {p.name for p in root.glob("??/*") if p.is_file()}


def test_kill_9_during_console_publish(station, tmp_path):
    kept = publish(station, tmp_path, "kept.txt", b"acknowledged before the crash", 3)
    before = blobs(station)
    proc = subprocess.Popen([sys.executable, str(REPO / "manage.py"), "publish", "-",
                             "--path", "huge.bin", "--priority", "3"],
                            env=station.env, cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp_dir = station.data_dir / "blobs" / "tmp"
    assert proc.stdin is not None
    chunk = b"\xab" * 65536
    deadline = time.monotonic() + 60
    while not any(tmp_dir.glob("*.part")):  # the body is streaming into a temporary file
        proc.stdin.write(chunk)
        proc.stdin.flush()
        assert time.monotonic() < deadline, "the publisher never started writing"
    for _ in range(16):
        proc.stdin.write(chunk)
    proc.stdin.flush()
    proc.kill()
    proc.wait(10)
    assert proc.returncode == -9
    assert entry_at(station, "DL1K", "huge.bin") is None
    assert blobs(station) == before  # no partial blob under a content name
    assert entry_at(station, "DL1K", "kept.txt")["entryId"] == kept
    assert fetch(station, "/c/DL1K/kept.txt")[:2] == (200, b"acknowledged before the crash")


def test_kill_9_of_the_web_server_during_an_upload(station, tmp_path):
    from tests.harness import http_json

    _, claim = http_json(station.url + "/api/status")
    assert claim["state"] in ("claimed", "active")
    rotated = station.manage("claimstation", "--rotate-token", "--json")
    token = json.loads(rotated.stdout)["accessToken"]
    daphne = next(p for p in psutil.Process(station.process.pid).children(recursive=True)
                  if "daphne" in " ".join(p.cmdline()))
    kept = publish(station, tmp_path, "kept-web.txt", b"stored before the web server died", 3)
    before = blobs(station)
    size = 20 * 1024 * 1024
    sock = socket.create_connection(("127.0.0.1", station.port), timeout=10)
    sock.sendall((f"POST /api/content-catalog?path=upload.bin&priority=3 HTTP/1.1\r\n"
                  f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                  f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n")
                 .encode())
    for _ in range(100):
        sock.sendall(b"\xcd" * 65536)  # about a third of the body
    daphne.kill()
    sock.close()
    # The supervisor restarts the web server; the half-sent upload left nothing behind.
    def up() -> bool:
        try:
            return http_json(station.url + "/api/status")[0] == 200
        except OSError:
            return False

    wait_for(up, 60, "daphne restarted", interval=0.5)
    assert entry_at(station, "DL1K", "upload.bin") is None
    assert blobs(station) == before
    assert entry_at(station, "DL1K", "kept-web.txt")["entryId"] == kept
    assert fetch(station, "/c/DL1K/kept-web.txt")[:2] == (200, b"stored before the web server died")
