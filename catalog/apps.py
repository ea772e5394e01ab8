from __future__ import annotations

from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Content catalog"

    def ready(self) -> None:
        from catalog import forward
        from catalog.changes import content_changed
        from catalog.sync import register
        from catalog.tasks import sync_soon
        from meshsite.status import register_info

        register()
        forward.register()
        register_info(_info)
        content_changed.connect(sync_soon, dispatch_uid="catalog.tasks.sync_soon")


def _info(info: dict) -> None:
    capabilities = info.setdefault("capabilities", [])
    if "cache" not in capabilities:
        capabilities.append("cache")
