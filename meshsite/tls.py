"""Optional HTTPS for `runstation`: checking the operator's certificate and key files, and the
Twisted endpoint string daphne serves them with. No Django imports."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization


class TlsConfigError(ValueError):
    """The TLS files cannot be used; the message says which file and why."""


def tls_files_check(cert: Path, key: Path) -> None:
    """Raise TlsConfigError unless `cert` holds PEM certificates (the server's first) and `key`
    the matching unencrypted PEM private key."""
    try:
        cert_data = cert.read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"MESHSITE_TLS_CERT={str(cert)!r} cannot be read: "
                             f"{exc.strerror or exc}") from exc
    try:
        key_data = key.read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"MESHSITE_TLS_KEY={str(key)!r} cannot be read: "
                             f"{exc.strerror or exc}") from exc
    try:
        certificates = x509.load_pem_x509_certificates(cert_data)
    except ValueError as exc:
        raise TlsConfigError(f"MESHSITE_TLS_CERT={str(cert)!r} holds no PEM certificate "
                             "(expected -----BEGIN CERTIFICATE-----).") from exc
    try:
        private_key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError as exc:
        raise TlsConfigError(f"MESHSITE_TLS_KEY={str(key)!r} is encrypted: give the station an "
                             "unencrypted key file (mode 0600).") from exc
    except ValueError as exc:
        raise TlsConfigError(f"MESHSITE_TLS_KEY={str(key)!r} holds no PEM private key.") from exc
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificates[0].public_key().public_bytes(*spki) != \
            private_key.public_key().public_bytes(*spki):
        raise TlsConfigError(f"MESHSITE_TLS_KEY={str(key)!r} is not the key of the first "
                             f"certificate in MESHSITE_TLS_CERT={str(cert)!r}.")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def daphne_ssl_endpoint(*, host: str, port: int, cert: Path, key: Path) -> str:
    """daphne's `-e` argument: Twisted's ssl server endpoint, every value escaped."""
    return (f"ssl:port={port}:interface={_escape(host)}:privateKey={_escape(str(key))}"
            f":certKey={_escape(str(cert))}")
