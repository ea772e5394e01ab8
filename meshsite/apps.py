from __future__ import annotations

from django.apps import AppConfig


class MeshsiteConfig(AppConfig):
    name = "meshsite"
    verbose_name = "Meshsite station"
