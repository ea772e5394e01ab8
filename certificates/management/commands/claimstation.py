"""`manage.py claimstation`: claim this station from the console, signing locally."""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from certificates import services
from certificates.credentials import add_credential_arguments, load_credentials
from certificates.errors import CertificateError
from certificates.models import CertificateSource
from certificates.selectors import station_get
from certificates.x509tools import load_certificates, read_license, sign_message


class Command(BaseCommand):
    help = ("Claim this station for your callsign with your license certificate and its key "
            "(signed here; the key is never stored). Also rotates the owner token and hands the "
            "station over to another callsign. Exits 2 with the refusal code on failure.")

    def add_arguments(self, parser: Any) -> None:
        add_credential_arguments(parser)
        parser.add_argument("--callsign", help="Callsign to claim for (default: the "
                            "certificate's).")
        parser.add_argument("--metadata", default="{}", help="Station metadata as a JSON "
                            "object, e.g. '{\"location\": \"FN31\"}'.")
        parser.add_argument("--handover", action="store_true", help="Hand an already claimed "
                            "station over to the callsign of the given certificate (revokes the "
                            "old owner's tokens and admin account).")
        parser.add_argument("--rotate-token", action="store_true", help="Revoke every owner "
                            "token and print a new one (no certificate needed).")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def _print(self, options: dict, data: dict[str, Any], lines: list[str]) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(data))
        else:
            for line in lines:
                self.stdout.write(line)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["rotate_token"]:
                token = services.owner_token_rotate(label="console")
                owner = station_get().owner_callsign
                self._print(options, {"owner": owner, "accessToken": token},
                            [f"New owner token for {owner} (all older tokens are revoked):",
                             token])
                return
            try:
                metadata = json.loads(options["metadata"])
            except ValueError as exc:
                raise CommandError(f"--metadata is not JSON: {exc}") from exc
            certificate, chain, key = load_credentials(options)
            callsign = options["callsign"] or read_license(
                load_certificates(certificate).certificate).callsign or ""
            nonce = secrets.token_urlsafe(24)
            signature = sign_message(key, services.claim_message(nonce))
            result = services.station_claim(
                certificate=certificate, chain=chain, callsign=callsign, nonce=nonce,
                signature=signature, metadata=metadata, nonce_checked=True,
                handover=options["handover"], source=CertificateSource.CONSOLE)
        except CertificateError as exc:
            raise CommandError(f"claim refused: {exc.code}: {exc.detail}", returncode=2) from exc
        data = {"success": True, "owner": result.owner, "stationId": result.station.station_id,
                "accessToken": result.access_token, "adminUsername": result.admin_username,
                "adminPassword": result.admin_password, "expired": result.license.expired}
        verb = "Handed over" if options["handover"] else "Claimed"
        self._print(options, data, [
            f"{verb} station {result.station.station_id} for {result.owner}.",
            f"Owner token (keep it secret): {result.access_token}",
            f"Admin login at /admin/: user {result.admin_username} password "
            f"{result.admin_password} (one-time; change it, or run manage.py ownerpassword)",
        ] + (["Warning: the certificate is expired (accepted by "
              "MESHSITE_ALLOW_EXPIRED_CERTIFICATES)."] if result.license.expired else []))
