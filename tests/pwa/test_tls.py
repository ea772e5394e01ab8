"""Optional HTTPS: MESHSITE_TLS_CERT / MESHSITE_TLS_KEY are checked when the settings load, and
make runstation serve HTTPS (daphne's ssl endpoint) with https:// and wss:// URLs."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshsite.tls import TlsConfigError, daphne_ssl_endpoint, tls_files_check
from tests.harness import REPO, StationProcess


def _write_pair(folder: Path, name: str = "station") -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "W1AW.radio")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("W1AW.radio")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_good_files_pass(tmp_path):
    tls_files_check(*_write_pair(tmp_path))


@pytest.mark.parametrize("problem, message", [
    ("missing cert", "MESHSITE_TLS_CERT='{cert}' cannot be read"),
    ("not pem", "holds no PEM certificate"),
    ("other key", "is not the key of the first certificate"),
    ("encrypted key", "is encrypted"),
    ("garbage key", "holds no PEM private key"),
])
def test_bad_files_say_which_and_why(tmp_path, problem, message):
    cert, key = _write_pair(tmp_path)
    if problem == "missing cert":
        cert.unlink()
    elif problem == "not pem":
        cert.write_text("hello")
    elif problem == "other key":
        _, key = _write_pair(tmp_path, "other")
    elif problem == "encrypted key":
        loaded = serialization.load_pem_private_key(key.read_bytes(), None)
        key.write_bytes(loaded.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")))
    elif problem == "garbage key":
        key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(TlsConfigError) as caught:
        tls_files_check(cert, key)
    assert message.format(cert=cert) in str(caught.value)


def test_endpoint_string_escapes_colons():
    endpoint = daphne_ssl_endpoint(host="::", port=8443, cert=Path("/a:b/c.crt"),
                                   key=Path("/k=1.key"))
    assert endpoint == r"ssl:port=8443:interface=\:\::privateKey=/k\=1.key:certKey=/a\:b/c.crt"


def test_one_variable_without_the_other_stops_the_station(tmp_path):
    cert, _ = _write_pair(tmp_path)
    station = StationProcess(data_dir=tmp_path / "data", env={"MESHSITE_TLS_CERT": str(cert)})
    result = station.manage("check")
    assert result.returncode != 0
    assert "MESHSITE_TLS_CERT and MESHSITE_TLS_KEY go together" in result.stderr


@pytest.mark.integration
def test_runstation_serves_https_and_wss(tmp_path):
    cert, key = _write_pair(tmp_path)
    station = StationProcess(data_dir=tmp_path / "data", env={
        "MESHSITE_TLS_CERT": str(cert), "MESHSITE_TLS_KEY": str(key),
        "MESHSITE_LOG_LEVEL": "warning"})
    log = open(station.log_path, "ab")  # noqa: SIM115 - closed by the child's exit
    station.process = subprocess.Popen(station.command(), env=station.env, cwd=REPO,
                                       stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
    log.close()
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False  # the certificate names W1AW.radio, we dial 127.0.0.1
    url = f"https://127.0.0.1:{station.port}/api/status"
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and status is None:
            assert station.process.poll() is None, station.output()[-3000:]
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:
                    status = json.loads(response.read())
            except OSError:
                time.sleep(0.3)
        assert status is not None, f"no HTTPS answer in 90 s:\n{station.output()[-3000:]}"
        assert status["endpoint"] == f"https://127.0.0.1:{station.port}"
        assert status["signaling"]["url"] == f"wss://127.0.0.1:{station.port}/ws/signal"
        with pytest.raises((OSError, http.client.HTTPException)):  # no plain HTTP there
            urllib.request.urlopen(f"http://127.0.0.1:{station.port}/api/status", timeout=3)
        station.wait_ready(60)
        assert f"https://127.0.0.1:{station.port}/" in station.output()
    finally:
        station.stop()
