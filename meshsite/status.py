"""What `/api/status`, `/api/info` and `/healthz` report, assembled from the apps.

`meshsite` holds no domain logic: each app registers, in its `AppConfig.ready`, a function that
fills in its part (the certificates app the station state and owner, the mesh the network mode,
signaling the connected clients) and, if it has one, a health check of a part it runs (the mesh
its daemon's heartbeat) and what `/healthz` should say besides (the mesh its network mode).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

STARTED_AT = time.monotonic()

StatusProvider = Callable[[dict[str, Any]], None]
HealthCheck = Callable[[], tuple[bool, str]]

_status_providers: list[StatusProvider] = []
_info_providers: list[StatusProvider] = []
_health_checks: dict[str, HealthCheck] = {}
# name -> (the supervisor's part name, heartbeat key in Redis, what it is, max age in seconds)
_health_heartbeats: dict[str, tuple[str, str, str, float]] = {}
_health_info_providers: list[StatusProvider] = []


def register_status(provider: StatusProvider) -> None:
    if provider not in _status_providers:
        _status_providers.append(provider)


def register_info(provider: StatusProvider) -> None:
    if provider not in _info_providers:
        _info_providers.append(provider)


def register_health_check(name: str, check: HealthCheck) -> None:
    _health_checks[name] = check


def register_health_heartbeat(name: str, *, part: str, key: str, what: str,
                              max_age: float) -> None:
    """A part that proves it lives by writing time.time() into Redis `key`: checked by
    `meshsite.health` with the others in one round trip (ok within `max_age` seconds, and
    only from the process the supervisor runs as `part` now)."""
    _health_heartbeats[name] = (part, key, what, max_age)


def health_heartbeats() -> dict[str, tuple[str, str, str, float]]:
    return dict(_health_heartbeats)


def register_health_info(provider: StatusProvider) -> None:
    if provider not in _health_info_providers:
        _health_info_providers.append(provider)


def apply_health_info(data: dict[str, Any]) -> dict[str, Any]:
    for provider in _health_info_providers:
        provider(data)
    return data


def apply_status(data: dict[str, Any]) -> dict[str, Any]:
    for provider in _status_providers:
        provider(data)
    return data


def apply_info(data: dict[str, Any]) -> dict[str, Any]:
    for provider in _info_providers:
        provider(data)
    return data


def health_checks() -> dict[str, HealthCheck]:
    return dict(_health_checks)


def uptime_seconds() -> int:
    return int(time.monotonic() - STARTED_AT)
