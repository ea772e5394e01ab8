"""`manage.py ownerpassword`: a new /admin/ password for the station owner."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from certificates import services
from certificates.errors import CertificateError


class Command(BaseCommand):
    help = "Set and print a new random /admin/ password for the station owner's account."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            username, password = services.owner_password_reset()
        except CertificateError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}", returncode=2) from exc
        self.stdout.write(f"Admin login at /admin/: user {username} password {password}")
