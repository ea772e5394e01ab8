from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _status(data: dict[str, Any]) -> None:
    from signaling.selectors import clients_connected

    signaling = data.setdefault("signaling", {})
    try:
        signaling["connected"] = clients_connected()
    except Exception:  # Redis down: /healthz says so; status still answers
        signaling["connected"] = None


def _info(data: dict[str, Any]) -> None:
    capabilities = data.setdefault("capabilities", [])
    if "signaling" not in capabilities:
        capabilities.append("signaling")
    if "webrtc" not in capabilities:
        capabilities.append("webrtc")


class SignalingConfig(AppConfig):
    name = "signaling"
    verbose_name = "Signaling"

    def ready(self) -> None:
        from meshsite.status import register_info, register_status

        register_status(_status)
        register_info(_info)
        from signaling import mailbox_mesh

        mailbox_mesh.register()
