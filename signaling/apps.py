from __future__ import annotations

from django.apps import AppConfig


class SignalingConfig(AppConfig):
    name = "signaling"
