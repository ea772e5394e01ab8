"""Real processes: twenty concurrent claims against daphne subprocesses sharing one SQLite
database and Redis (exactly one wins), and the console claim as a real `manage.py` run."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest
from django.conf import settings

from certificates.x509tools import to_pem
from tests.certificates import pki
from tests.harness import DaphneProcess, http_json, migrate, station_env

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

CLAIMANTS = 20
PROCESSES = 3


def _run_manage(env: dict, *args: str):
    import subprocess
    import sys

    from tests.harness import REPO

    return subprocess.run([sys.executable, str(REPO / "manage.py"), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def station_dir(tmp_path: Path):
    data_dir = tmp_path / "station"
    data_dir.mkdir()
    env = station_env(data_dir, REDIS_URL=settings.REDIS_URL)
    migrate(data_dir, env)
    return data_dir, env


def test_twenty_concurrent_claims_one_winner(station_dir, tmp_path):
    data_dir, env = station_dir
    root = pki.meshsite_root()
    (tmp_path / "root.pem").write_text(to_pem(root.cert))
    added = _run_manage(env, "trustroot", "add", str(tmp_path / "root.pem"))
    assert added.returncode == 0, added.stderr
    claimants = [pki.issue(root, callsign=f"DL{n}RC") for n in range(CLAIMANTS)]
    servers = [DaphneProcess(data_dir, env=env) for _ in range(PROCESSES)]
    try:
        for server in servers:
            server.start()
        bodies = []
        for number, who in enumerate(claimants):
            server = servers[number % PROCESSES]
            status, nonce = http_json(server.url + "/api/claim-station/nonce", method="POST")
            assert status == 200, nonce
            message = base64.b64decode(nonce["message"])
            bodies.append((server, {
                "certificate": who.pem, "chain": who.chain_pem,
                "station": {"callsign": f"DL{number}RC", "metadata": {}},
                "nonce": nonce["nonce"], "signature": who.sign(message)}))
        barrier = threading.Barrier(CLAIMANTS)
        results: list[tuple[int, dict, str]] = []
        lock = threading.Lock()

        def claim(server: DaphneProcess, body: dict) -> None:
            barrier.wait()
            status, answer = http_json(server.url + "/api/claim-station", method="POST",
                                       body=body, timeout=60)
            with lock:
                results.append((status, answer, body["station"]["callsign"]))

        threads = [threading.Thread(target=claim, args=item) for item in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        assert len(results) == CLAIMANTS
        winners = [r for r in results if r[0] == 200]
        losers = [r for r in results if r[0] != 200]
        assert len(winners) == 1, [(s, a) for s, a, _ in results]
        assert all(s == 403 and a["error"] == "already_claimed" for s, a, _ in losers), losers
        winner = winners[0][2]
        assert winners[0][1]["owner"] == winner
        for server in servers:
            status, body = http_json(server.url + "/api/status")
            assert status == 200 and body["owner"] == winner and body["state"] != "unclaimed"
        late = sum(1 for _, a, _ in losers if "first" in a["detail"])
        print(f"race: {late} of {len(losers)} losers passed every check and lost at the "
              "conditional UPDATE")
    finally:
        for server in servers:
            server.stop()


def test_console_claim_subprocess_then_api_sees_the_owner(station_dir, tmp_path):
    data_dir, env = station_dir
    (tmp_path / "lotw.pem").write_text(to_pem(pki.lotw_root().cert))
    assert _run_manage(env, "trustroot", "add", str(tmp_path / "lotw.pem")).returncode == 0
    alice = pki.lotw_user("W1AW")
    (tmp_path / "alice.pem").write_text(alice.pem + "".join(alice.chain_pem))
    (tmp_path / "alice.key").write_bytes(pki.private_pem(alice.key))
    mallory = pki.lotw_user("N0MAL")
    (tmp_path / "mallory.key").write_bytes(pki.private_pem(mallory.key))
    refused = _run_manage(env, "claimstation", "--cert", str(tmp_path / "alice.pem"), "--key",
                          str(tmp_path / "mallory.key"))
    assert refused.returncode == 2 and "bad_proof" in refused.stderr
    done = _run_manage(env, "claimstation", "--cert", str(tmp_path / "alice.pem"), "--key",
                       str(tmp_path / "alice.key"))
    assert done.returncode == 0, done.stderr
    assert "Claimed station" in done.stdout and "mso_" in done.stdout
    token = next(w for w in done.stdout.split() if w.startswith("mso_"))
    server = DaphneProcess(data_dir, env=env)
    try:
        server.start()
        status, body = http_json(server.url + "/api/status")
        assert body["owner"] == "W1AW"
        status, body = http_json(server.url + "/api/owner-token/rotate", method="POST",
                                 headers={"Authorization": f"Bearer {token}"})
        assert status == 200 and body["accessToken"] != token
    finally:
        server.stop()
    key_file = data_dir / "station_ed25519.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
