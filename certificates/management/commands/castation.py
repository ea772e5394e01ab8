"""`manage.py castation`: make this station a small certificate authority."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from certificates import services
from certificates.credentials import add_credential_arguments, load_credentials
from certificates.errors import CertificateError
from certificates.selectors import station_can_issue, station_get


class Command(BaseCommand):
    help = ("Configure the CA-capable license certificate and key this station issues with "
            "(the key is stored in MESHSITE_CA_KEY_FILE, mode 0600), show it, or remove it.")

    def add_arguments(self, parser: Any) -> None:
        add_credential_arguments(parser)
        parser.add_argument("--show", action="store_true", help="Show the configured CA.")
        parser.add_argument("--remove", action="store_true",
                            help="Stop issuing and delete the CA key file.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["show"]:
            station = station_get()
            if not station_can_issue():
                self.stdout.write("This station is not a CA.")
                return
            self.stdout.write(f"CA certificate {station.ca_fingerprint}")
            return
        if options["remove"]:
            services.ca_remove()
            self.stdout.write("This station no longer issues certificates.")
            return
        certificate, chain, key = load_credentials(options)
        try:
            station = services.ca_configure(certificate=certificate, chain=chain,
                                            private_key=key)
        except CertificateError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}", returncode=2) from exc
        self.stdout.write(f"This station now issues with CA certificate {station.ca_fingerprint}.")
