from __future__ import annotations

from django.apps import AppConfig


class CertificatesConfig(AppConfig):
    name = "certificates"
    verbose_name = "Certificates and trust"

    def ready(self) -> None:
        from certificates.status import fill_info, fill_status
        from meshsite.status import register_info, register_status

        register_status(fill_status)
        register_info(fill_info)
