from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _status(data: dict[str, Any]) -> None:
    from mesh import selectors

    mode = selectors.network_mode_get()
    data["networkMode"] = mode["mode"]
    data["mesh"] = {"daemon": selectors.daemon_alive(),
                    "peersActive": len(selectors.peers_active())}


def _info(data: dict[str, Any]) -> None:
    capabilities = data.setdefault("capabilities", [])
    if "mesh" not in capabilities:
        capabilities.append("mesh")


def _network_check() -> tuple[bool, str]:
    """Health stays ok offline (the station works without the internet); the detail says it."""
    from mesh import selectors

    mode = selectors.network_mode_get()
    targets = ", ".join(f"{t['target']} {'ok' if t['ok'] else 'down'}"
                        for t in mode.get("targets", []))
    return True, f"network mode {mode['mode']}" + (f" ({targets})" if targets else "")


class MeshConfig(AppConfig):
    name = "mesh"
    verbose_name = "Mesh"

    def ready(self) -> None:
        from mesh.gossip import register_builtin_handlers
        from meshsite.status import register_health_check, register_info, register_status

        register_builtin_handlers()
        register_status(_status)
        register_info(_info)
        register_health_check("network", _network_check)
