"""What the certificates app adds to `/api/status` and `/api/info`."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from certificates.models import Station, StationState

logger = logging.getLogger(__name__)


def _worker_alive() -> bool:
    """`active` = claimed and the station's worker (gossip, beacons) heartbeats."""
    from meshsite.redisconn import get_redis
    from meshsite.tasks import HEARTBEAT_KEY

    try:
        raw = get_redis().get(HEARTBEAT_KEY)
    except Exception:  # Redis down: report claimed, /healthz says why
        return False
    return raw is not None and time.time() - float(raw) <= settings.HEARTBEAT_MAX_AGE


def _station() -> Station | None:
    try:
        return Station.objects.order_by("pk").first()
    except DatabaseError:  # not migrated yet
        return None


def fill_status(data: dict[str, Any]) -> None:
    station = _station()
    if station is None or station.state == StationState.UNCLAIMED:
        data["state"] = StationState.UNCLAIMED.value
        data["owner"] = None
        return
    from certificates.selectors import is_blacklisted

    blacklisted = bool(station.owner_fingerprint) and is_blacklisted(station.owner_fingerprint)
    # A blacklisted owner cannot vouch for the station: claimed, never active (no links).
    data["state"] = (StationState.ACTIVE if _worker_alive() and not blacklisted
                     else StationState.CLAIMED).value
    data["owner"] = station.owner_callsign
    data["ownerBlacklisted"] = blacklisted
    data["stationId"] = station.station_id


def fill_info(data: dict[str, Any]) -> None:
    station = _station()
    if station is None:
        return
    if station.state != StationState.UNCLAIMED:
        data["callsign"] = station.owner_callsign
    data["stationId"] = station.station_id
    data["publicKey"] = station.public_key
    if station.ca_certificate and settings.MESHSITE_CA_KEY_FILE.exists():
        capabilities = data.setdefault("capabilities", [])
        if "ca" not in capabilities:
            capabilities.append("ca")
