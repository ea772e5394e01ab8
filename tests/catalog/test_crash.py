"""kill -9 of the console publisher while the body streams into the blob store leaves no partial
entry and loses nothing stored. (kill -9 of the station under API publishing is measured by
bench/faults/kill.py and tests/catalog/test_faults_kill.py: a kill of daphne while a POST body
arrives proved nothing, as Django reads the whole body before any catalog code runs.)"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.catalog.test_replication import entry_at, fetch, publish
from tests.certificates import pki
from tests.harness import REPO, StationProcess
from tests.mesh.stations import provision

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
