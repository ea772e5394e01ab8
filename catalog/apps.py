from __future__ import annotations

from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Content catalog"

    def ready(self) -> None:
        from catalog.sync import register
        from meshsite.status import register_info

        register()
        register_info(_info)


def _info(info: dict) -> None:
    capabilities = info.setdefault("capabilities", [])
    if "cache" not in capabilities:
        capabilities.append("cache")
