"""Software transfer end to end: a real station (runstation) serves its release; the installer,
run by the base Python with the standard library only, installs it into a fresh virtual
environment from the station's /simple/ and nothing else (scripts/test runs pytest in a private
network namespace: loopback only, and the installer hides any pip configuration), and the
installed `meshsite runstation --version` prints the release's version. pip and uv resolve
against the same index.

The refusals use small toy releases (tests/catalog/wheels.py) so they take seconds: no token,
a token for an untrusted certificate, an untrusted trust root, a tampered wheel (pip refuses,
nothing installed), a tampered manifest, an expired manifest, a rollback to a lower release
counter, a release by a blacklisted operator. A "replay station" (a small HTTP server in the
test that forwards to the real one) plays the untrusted transport: it serves an old or altered
document or file, as a malicious relay could.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from catalog import release as rel
from tests.catalog.wheels import toy_wheel
from tests.certificates import pki
from tests.environment import requirement_missing
from tests.harness import REPO, StationProcess, free_port, http_json
from tests.mesh.stations import blacklist, provision, run_django, wait_for

pytestmark = [pytest.mark.integration]

INSTALLER = REPO / "catalog" / "meshsite_install.py"
# scripts/bootstrap fills it (pip wheel -w) while it has the internet.
WHEELHOUSE = Path(os.environ.get("E2E_CACHE_DIR", Path.home() / ".cache" / "meshsite-tests")
                  ) / "wheelhouse"
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout (`pip wheel --no-deps`, no network), built once a session."""
    out = tmp_path_factory.mktemp("project-wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                             "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
                            capture_output=True, text=True, timeout=600, check=False,
                            env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    assert result.returncode == 0, result.stderr[-3000:]
    [wheel] = out.glob("meshsite-*.whl")
    return wheel


@pytest.fixture(scope="module")
def station(tmp_path_factory) -> Iterator[StationProcess]:
    """A station claimed by alice (LoTW), trusting the LoTW root."""
    process = StationProcess(tmp_path_factory.mktemp("release-station"),
                             env={"MESHSITE_DOWNLOAD_TOKEN_RATE": "1000"})
    provision(process, roots=[pki.lotw_root()], owner=pki.lotw_user("W1AW"), callsign="W1AW")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def download_token(url: str, who: pki.Identity) -> tuple[int, dict]:
    status, nonce = http_json(url + "/api/download-token/nonce", method="POST", body={})
    assert status == 200, nonce
    message = base64.b64decode(nonce["message"])
    assert message == (f"meshsite-download-token-v1\nstation:{nonce['stationId']}\n"
                       f"nonce:{nonce['nonce']}\n").encode()
    return http_json(url + "/api/download-token", method="POST", body={
        "certificate": who.pem, "chain": who.chain_pem, "nonce": nonce["nonce"],
        "signature": who.sign(message)})


@pytest.fixture(scope="module")
def token(station) -> str:
    status, body = download_token(station.url, pki.lotw_user("W1AW"))
    assert status == 201, body
    assert body["callsign"] == "W1AW"
    return body["token"]


@pytest.fixture(scope="module")
def lotw_root_pem(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("roots") / "lotw-root.pem"
    path.write_text(pki.lotw_root().pem)
    return path


def build(station: StationProcess, folder: Path, *args: str) -> dict:
    """`manage.py release build --wheels folder` at the station; the document it serves."""
    result = station.manage("release", "build", "--wheels", str(folder), *args, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    status, document = station.get("/get/release.json")
    assert status == 200, document
    return document


def toy_release(station: StationProcess, tmp_path: Path, version: str, *args: str) -> dict:
    folder = tmp_path / f"toy-{version}"
    toy_wheel(folder, "meshsite", version, requires=("toy-dep>=1",))
    toy_wheel(folder, "toy-dep", "1.0.0")
    document = build(station, folder, *args)
    assert document["manifest"]["version"] == version
    return document


def install(index: str, token: str, root: Path, venv: Path, state: Path,
            callsign: str = "W1AW") -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run([BASE_PYTHON, "-I", str(INSTALLER), "--index", index, "--callsign",
                           callsign, "--token", token, "--trust-root", str(root), "--venv",
                           str(venv), "--yes", "--state-file", str(state)],
                          capture_output=True, text=True, timeout=900, check=False, env=env)


def installed(venv: Path, project: str = "meshsite") -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    result = subprocess.run([str(python), "-I", "-c", "import importlib.metadata as m; "
                             f"print(m.version({project!r}))"], capture_output=True, text=True,
                            check=False, cwd=venv)
    return result.stdout.strip() or None


class ReplayStation:
    """An HTTP server on loopback that forwards every GET to the real station, except the
    release document and the files it is told to serve instead."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.overrides: dict[str, bytes] = {}
        replay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in replay.overrides:
                    self._answer(200, replay.overrides[path], {})
                    return
                request = urllib.request.Request(replay.upstream + self.path, headers={
                    k: v for k, v in self.headers.items() if k.lower() != "host"})
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        self._answer(response.status, response.read(), dict(response.headers))
                except urllib.error.HTTPError as exc:
                    self._answer(exc.code, exc.read(), dict(exc.headers))

            def _answer(self, status: int, body: bytes, headers: dict) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection",
                                           "date", "server"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def replay(station) -> Iterator[ReplayStation]:
    server = ReplayStation(station.url)
    try:
        yield server
    finally:
        server.close()


# --- the one full install -------------------------------------------------------------------


@pytest.mark.timeout(1200)
def test_a_fresh_venv_installs_the_station_from_the_station(station, token, lotw_root_pem,
                                                             project_wheel, tmp_path):
    if not any(WHEELHOUSE.glob("*.whl")):
        requirement_missing(f"no dependency wheels in {WHEELHOUSE}: scripts/bootstrap "
                            "downloads them (pip wheel -w) while it has the internet")
    folder = tmp_path / "release"
    folder.mkdir()
    for wheel in WHEELHOUSE.glob("*.whl"):
        if rel.wheel_name(wheel.name).project != "meshsite":
            shutil.copy(wheel, folder)
    shutil.copy(project_wheel, folder)
    document = build(station, folder, "--platform", "linux_x86_64", "--python", "cp311")
    version = document["manifest"]["version"]

    venv = tmp_path / "venv"
    result = install(station.url, token, lotw_root_pem, venv, tmp_path / "state.json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Signed by: W1AW" in result.stdout
    data_dir = tmp_path / "new-station"
    shown = subprocess.run([str(venv / "bin" / "meshsite"), "runstation", "--version"],
                           capture_output=True, text=True, timeout=120, check=False,
                           env={**os.environ, "MESHSITE_DATA_DIR": str(data_dir)})
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.strip().startswith(version + "+"), shown.stdout

    # Plain pip and uv resolve the whole dependency tree against the same index.
    index = station.url.replace("http://", f"http://W1AW:{token}@") + "/simple/"
    report = tmp_path / "report.json"
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--dry-run",
                          "--ignore-installed", "--only-binary=:all:", "--report", str(report),
                          "--index-url", index, "meshsite"], capture_output=True, text=True,
                         timeout=600, check=False,
                         env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    assert pip.returncode == 0, pip.stderr[-3000:]
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert resolved["meshsite"] == version and "django" in resolved
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv is None:
        requirement_missing("uv is not installed in the test venv (pip install -e '.[test]')")
    compiled = subprocess.run([uv, "pip", "compile", "-", "--no-config", "--no-cache",
                               "--index-url", index, "--python", str(venv / "bin" / "python"),
                               "--quiet"],
                              input="meshsite\n", capture_output=True, text=True, timeout=600,
                              check=False, env={k: v for k, v in os.environ.items()
                                                if not k.startswith("UV_")})
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    assert f"meshsite=={version}" in compiled.stdout and "django==" in compiled.stdout.lower()


# --- refusals -------------------------------------------------------------------------------


def test_without_a_token_the_index_answers_401_with_how(station, tmp_path, lotw_root_pem):
    toy_release(station, tmp_path, "0.0.1")
    request = urllib.request.Request(station.url + "/simple/meshsite/")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 401
    assert "POST /api/download-token" in caught.value.read().decode()
    result = install(station.url, "not-a-token", lotw_root_pem, tmp_path / "venv",
                     tmp_path / "state.json")
    assert result.returncode == 2, result.stderr
    assert "refused the download token (401)" in result.stderr
    assert "POST /api/download-token" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_a_token_for_an_untrusted_certificate_is_refused(station):
    _, stranger = pki.meshsite_chain("K1XYZ", "ed25519")
    status, body = download_token(station.url, stranger)
    assert status == 400 and body["error"] == "untrusted_root", body


def test_a_release_outside_the_trust_root_is_refused(station, token, tmp_path):
    toy_release(station, tmp_path, "0.0.2")
    other = tmp_path / "other-root.pem"
    other.write_text(pki.meshsite_root("ed25519").pem)
    result = install(station.url, token, other, tmp_path / "venv", tmp_path / "state.json")
    assert result.returncode == 3, result.stderr
    assert "REFUSED" in result.stderr and "does not chain to the trust root" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_a_tampered_wheel_installs_nothing(station, token, lotw_root_pem, replay, tmp_path):
    document = toy_release(station, tmp_path, "0.0.3")
    dep = next(f for f in document["manifest"]["files"] if f["project"] == "toy-dep")
    genuine = tmp_path / "toy-0.0.3" / dep["name"]
    replay.overrides[f"/packages/{dep['name']}"] = genuine.read_bytes() + b"\0"
    result = install(replay.url, token, lotw_root_pem, tmp_path / "venv",
                     tmp_path / "state.json")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "HASHES" in result.stderr.upper() and "nothing of the release" in result.stderr
    assert installed(tmp_path / "venv") is None
    assert installed(tmp_path / "venv", "toy-dep") is None


def test_a_tampered_manifest_is_refused(station, token, lotw_root_pem, replay, tmp_path):
    document = toy_release(station, tmp_path, "0.0.4")
    document["manifest"]["files"][0]["sha256"] = "0" * 64
    replay.overrides["/get/release.json"] = json.dumps(document).encode()
    result = install(replay.url, token, lotw_root_pem, tmp_path / "venv",
                     tmp_path / "state.json")
    assert result.returncode == 3
    assert "signature does not verify" in result.stderr
    assert not (tmp_path / "venv").exists()


PUBLISH_SHORT_LIVED = """
import datetime as dt
from pathlib import Path
from django.utils import timezone
from catalog import releases
files = sorted(Path(sys.argv[1]).glob("*.whl"))
release = releases.release_publish(files=files, expires=timezone.now() + dt.timedelta(seconds=2))
sys.stdout.write(release.raw.decode())
"""


def test_an_expired_manifest_is_refused(station, token, lotw_root_pem, replay, tmp_path):
    folder = tmp_path / "toy"
    toy_wheel(folder, "meshsite", "0.0.5", requires=("toy-dep>=1",))
    toy_wheel(folder, "toy-dep", "1.0.0")
    # Published with a two-second life inside one process (a busy machine may take longer
    # than that just to start a command); the document is kept as a stale relay would keep it.
    document = json.loads(run_django(station, PUBLISH_SHORT_LIVED, str(folder)))
    expires = dt.datetime.fromisoformat(document["manifest"]["expires"].replace("Z", "+00:00"))
    wait_for(lambda: dt.datetime.now(dt.UTC) > expires, 30, "the release expires")
    # The station itself does not serve an expired release.
    status, body = station.get("/get/release.json")
    assert status != 200 or body["manifest"]["counter"] != document["manifest"]["counter"]
    replay.overrides["/get/release.json"] = json.dumps(document).encode()
    result = install(replay.url, token, lotw_root_pem, tmp_path / "venv",
                     tmp_path / "state.json")
    assert result.returncode == 3 and "expired" in result.stderr, result.stderr
    assert not (tmp_path / "venv").exists()


def test_a_rollback_to_a_lower_counter_is_refused(station, token, lotw_root_pem, replay,
                                                  tmp_path):
    older = toy_release(station, tmp_path, "0.0.6")
    newer = toy_release(station, tmp_path, "0.0.7")
    assert newer["manifest"]["counter"] > older["manifest"]["counter"]
    state = tmp_path / "state.json"
    first = install(station.url, token, lotw_root_pem, tmp_path / "venv", state)
    assert first.returncode == 0, first.stdout + first.stderr
    assert installed(tmp_path / "venv") == "0.0.7"
    assert json.loads(state.read_text())["meshsite"]["counter"] == newer["manifest"]["counter"]
    replay.overrides["/get/release.json"] = json.dumps(older).encode()
    again = install(replay.url, token, lotw_root_pem, tmp_path / "venv2", state)
    assert again.returncode == 3 and "rollback" in again.stderr, again.stderr
    assert not (tmp_path / "venv2").exists()


def test_a_release_by_a_blacklisted_operator_is_not_served(station, token, lotw_root_pem,
                                                           tmp_path):
    document = toy_release(station, tmp_path, "0.0.8")
    owner = x509.load_pem_x509_certificate(document["credential"]["certificate"].encode())
    fingerprint = pki.fingerprint(owner)
    blacklist(station, fingerprint, "key compromised")
    try:
        status, body = station.get("/get/release.json")
        assert status == 404 and "blacklisted" in body["detail"], body
        result = install(station.url, token, lotw_root_pem, tmp_path / "venv",
                         tmp_path / "state.json")
        assert result.returncode == 2 and "blacklisted" in result.stderr, result.stderr
        assert installed(tmp_path / "venv") is None
    finally:
        run_django(station, "from certificates import services as s\n"
                   "s.blacklist_lift(fingerprint=sys.argv[1], lifted_by='owner')", fingerprint)


def test_installer_without_trust_root_shows_the_root_and_asks(station, token, tmp_path):
    toy_release(station, tmp_path, "0.0.9")
    result = subprocess.run([BASE_PYTHON, "-I", str(INSTALLER), "--index", station.url,
                             "--callsign", "W1AW", "--token", token, "--venv",
                             str(tmp_path / "venv"), "--state-file",
                             str(tmp_path / "state.json")], input="n\n", capture_output=True,
                            text=True, timeout=120, check=False)
    root = pki.lotw_root().cert
    assert pki.fingerprint(root) in result.stdout and "Trust this root?" in result.stdout
    assert result.returncode == 5 and "not confirmed" in result.stderr
    assert not (tmp_path / "venv").exists()
