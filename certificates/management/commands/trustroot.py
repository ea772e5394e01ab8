"""`manage.py trustroot add|list|remove`: the station's trust anchors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from certificates import services
from certificates.errors import CertificateError
from certificates.models import CertificateSource
from certificates.selectors import certificate_list, trust_roots_from_files
from certificates.x509tools import fingerprint, load_certificates


class Command(BaseCommand):
    help = "Manage trust roots: the CA certificates license certificates must chain to."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True,
                                    help="add, list or remove")
        add = sub.add_parser("add", help="Add root certificates from files (PEM, DER, .tq6: "
                             "a .tq6 adds its rootcert).")
        add.add_argument("files", nargs="+", help="Certificate files.")
        sub.add_parser("list", help="List the trust roots (database and "
                       "MESHSITE_TRUST_ROOT_FILES).")
        remove = sub.add_parser("remove", help="Stop trusting a root.")
        remove.add_argument("fingerprint", help="SHA-256 fingerprint (hex) as listed.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "list":
            for row in certificate_list(trust_level="root"):
                self.stdout.write(f"{row.fingerprint}  {row.state:<11} {row.subject}")
            for cert in trust_roots_from_files():
                self.stdout.write(f"{fingerprint(cert)}  settings    "
                                  f"{cert.subject.rfc4514_string()}")
            return
        if action == "remove":
            if not services.trustroot_remove(fingerprint=options["fingerprint"]):
                raise CommandError(f"No trust root {options['fingerprint']!r}.")
            self.stdout.write(f"Removed trust root {options['fingerprint']}.")
            return
        for name in options["files"]:
            try:
                bundle = load_certificates(Path(name).read_bytes())
            except OSError as exc:
                raise CommandError(f"Cannot read {name!r}: {exc}") from exc
            except CertificateError as exc:
                raise CommandError(f"{name}: {exc.code}: {exc.detail}", returncode=2) from exc
            candidates = [c for c in [bundle.certificate, *bundle.chain] if c.issuer == c.subject]
            if not candidates:
                raise CommandError(f"{name}: untrusted_root: holds no self-signed root "
                                   "certificate.", returncode=2)
            for cert in candidates:
                try:
                    row, created = services.trustroot_add(certificate=cert,
                                                          source=CertificateSource.CONSOLE)
                except CertificateError as exc:
                    raise CommandError(f"{name}: {exc.code}: {exc.detail}",
                                       returncode=2) from exc
                verb = "Added" if created else "Already trusted:"
                self.stdout.write(f"{verb} {row.fingerprint}  {row.subject}")
