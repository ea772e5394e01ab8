"""What the PWA shows live: one snapshot of the station (status, peers, recent content) built
from the apps' own status providers and selectors, for the pages' first render and for the
`/ws/live` socket, which pushes it again whenever it changes."""

from __future__ import annotations

from typing import Any

from meshsite import status as station_status
from meshsite.version import full_version

RECENT_CONTENT = 8


def _peers() -> list[dict[str, Any]]:
    from mesh import selectors
    from mesh.api import peers_live_data

    rows = peers_live_data()
    routes = {route.destination: route for route in selectors.routes()}
    for row in rows:
        route = routes.get(row["stationId"] or "")
        row["cost"] = route.cost if route else None
        row["hops"] = route.hops if route else None
    return rows


def _content() -> dict[str, Any]:
    from catalog import selectors
    from catalog.serializers import ContentEntrySerializer

    rows = selectors.entries_current()
    summary = selectors.catalog_summary(rows)
    recent = rows.order_by("-updated_at")[:RECENT_CONTENT]
    return {"entryCount": summary["entryCount"], "totalSize": summary["totalSize"],
            "conflicts": rows.filter(conflict=True).count(),
            "recent": ContentEntrySerializer(recent, many=True).data}


def station_snapshot(*, endpoint: str, signaling_url: str) -> dict[str, Any]:
    """Everything the home page shows, as JSON-ready data."""
    status = station_status.apply_status({
        "state": "unclaimed", "owner": None, "networkMode": "unknown", "networkDetail": "",
        "signaling": {"url": signaling_url, "connected": 0},
    })
    return {
        "state": status["state"],
        "owner": status.get("owner"),
        "stationId": status.get("stationId", ""),
        "networkMode": status["networkMode"],
        "networkDetail": status.get("networkDetail", ""),
        "signalingClients": status.get("signaling", {}).get("connected", 0),
        "version": full_version(),
        "endpoint": endpoint,
        "signalingUrl": signaling_url,
        "peers": _peers(),
        "content": _content(),
    }
