"""Reading a certificate, its chain and its private key from files (console commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from certificates.errors import CertificateError
from certificates.x509tools import LoadedBundle, load_certificates, load_private_key, to_pem


def _read(path: str | None, what: str) -> bytes:
    if not path:
        raise CommandError(f"{what} is required.")
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise CommandError(f"Cannot read {what} {path!r}: {exc}") from exc


def _password(path: str | None) -> bytes | None:
    if not path:
        return None
    lines = _read(path, "the password file").splitlines()
    return lines[0] if lines else b""


def add_credential_arguments(parser: Any) -> None:
    parser.add_argument("--cert", help="License certificate file (PEM, DER or .tq6; PEM may "
                        "carry the chain after the certificate).")
    parser.add_argument("--key", help="Private key of the certificate (PEM or DER, PKCS#8 or "
                        "traditional). It is only used here, never stored or sent.")
    parser.add_argument("--key-password-file", help="File whose first line is the key's "
                        "password, if the key is encrypted.")
    parser.add_argument("--chain", help="File with the intermediate certificates (PEM).")
    parser.add_argument("--p12", help="PKCS#12 file (.p12/.pfx, e.g. a TQSL export) holding "
                        "certificate, chain and key; instead of --cert/--key.")
    parser.add_argument("--password-file", help="File whose first line is the .p12 password.")


def load_credentials(options: dict) -> tuple[str, list[str], Any]:
    """(certificate PEM, chain PEMs, private key) from --p12 or --cert/--key/--chain."""
    try:
        if options.get("p12"):
            bundle: LoadedBundle = load_certificates(_read(options["p12"], "--p12"),
                                                     _password(options.get("password_file")))
            if bundle.private_key is None:
                raise CommandError("The .p12 file holds no private key.")
            key = bundle.private_key
        else:
            if not options.get("cert") or not options.get("key"):
                raise CommandError("Give --cert FILE and --key FILE, or --p12 FILE.")
            bundle = load_certificates(_read(options["cert"], "--cert"))
            key = load_private_key(_read(options["key"], "--key"),
                                   _password(options.get("key_password_file")))
        chain = [to_pem(c) for c in bundle.chain]
        if options.get("chain"):
            extra = load_certificates(_read(options["chain"], "--chain"))
            chain += [to_pem(extra.certificate), *(to_pem(c) for c in extra.chain)]
    except CertificateError as exc:
        raise CommandError(f"{exc.code}: {exc.detail}", returncode=2) from exc
    return to_pem(bundle.certificate), chain, key
