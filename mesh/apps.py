from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _status(data: dict[str, Any]) -> None:
    from mesh import selectors

    mode = selectors.network_mode_get()
    data["networkMode"] = mode["mode"]
    data["networkDetail"] = mode.get("detail", "")
    data["mesh"] = {"daemon": selectors.daemon_alive(),
                    "peersActive": len(selectors.peers_active())}
    data["rf"] = selectors.rf_status()


def _info(data: dict[str, Any]) -> None:
    capabilities = data.setdefault("capabilities", [])
    if "mesh" not in capabilities:
        capabilities.append("mesh")


def _health_info(data: dict[str, Any]) -> None:
    """`/healthz` states the network mode (not a check: a station works offline)."""
    from mesh import selectors

    data["networkMode"] = selectors.network_mode_get()["mode"]


class MeshConfig(AppConfig):
    name = "mesh"
    verbose_name = "Mesh"

    def ready(self) -> None:
        from mesh.gossip import register_builtin_handlers
        from mesh.selectors import DAEMON_KEY
        from meshsite.status import (
            register_health_heartbeat,
            register_health_info,
            register_info,
            register_status,
        )

        register_builtin_handlers()
        register_status(_status)
        register_info(_info)
        # meshd beats every 1.5 s into a key that expires after 5 s.
        register_health_heartbeat("meshd", part="mesh", key=DAEMON_KEY,
                                  what="mesh daemon (meshd)", max_age=5)
        register_health_info(_health_info)
