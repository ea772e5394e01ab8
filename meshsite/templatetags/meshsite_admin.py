"""The admin as the operator's control plane: the station's callsign on every admin page, and
the dashboard on the index (state, network mode, counters, recent events, mesh map), read from
the apps' selectors and status providers."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from meshsite import meshmap
from meshsite import status as station_status
from meshsite.version import full_version

register = template.Library()

RECENT = 8


@register.simple_tag
def station_callsign() -> str:
    from certificates.selectors import station_get

    return station_get().owner_callsign or "Unclaimed station"


def _map_stations() -> list[meshmap.MapStation]:
    from mesh import selectors

    live = selectors.live_members()
    routes = {route.destination: route for route in selectors.routes()}
    stations: dict[str, meshmap.MapStation] = {}
    for peer in selectors.peers_list().prefetch_related("links"):
        if not peer.station_id:
            continue
        current = live.get(str(peer.pk), {})
        route = routes.get(peer.station_id)
        kinds = {link.kind for link in peer.links.all()}
        stations[peer.station_id] = meshmap.MapStation(
            station_id=peer.station_id, callsign=peer.callsign,
            state=current.get("state") or peer.state, linked=bool(current.get("connected")),
            rtt_ms=current.get("rttMs", peer.rtt_ms), link_kind="rf" if kinds == {"rf"} else "lan",
            hops=route.hops if route else None, cost=route.cost if route else None,
            next_hop=route.next_hop if route else None)
    for destination, route in routes.items():
        if destination not in stations:
            stations[destination] = meshmap.MapStation(
                station_id=destination, callsign=getattr(route, "known_callsign", "")
                or route.callsign, state="active", hops=route.hops, cost=route.cost,
                next_hop=route.next_hop)
    return sorted(stations.values(), key=lambda s: (s.callsign, s.station_id))


def _events() -> list[dict[str, Any]]:
    from catalog import selectors as catalog_selectors
    from mesh.models import NetworkModeChange, Peer

    events = [{"at": row.at, "kind": "network",
               "text": f"Internet {row.previous} → {row.mode}"}
              for row in NetworkModeChange.objects.order_by("-at")[:RECENT]]
    events += [{"at": peer.state_changed_at, "kind": "station",
                "text": f"{peer.callsign or peer.endpoint} is {peer.state}"}
               for peer in Peer.objects.exclude(state_changed_at=None)
               .order_by("-state_changed_at")[:RECENT]]
    events += [{"at": entry.updated_at, "kind": "content",
                "text": f"{entry.origin_callsign}/{entry.path}"
                        + (" (conflict)" if entry.conflict else "")}
               for entry in catalog_selectors.entries_all().order_by("-updated_at")[:RECENT]]
    return sorted(events, key=lambda e: e["at"], reverse=True)[:RECENT * 2]


@register.simple_tag
def station_dashboard() -> dict[str, Any]:
    from catalog import selectors as catalog_selectors
    from certificates.models import BlacklistEntry, Certificate

    status = station_status.apply_status({"state": "unclaimed", "owner": None,
                                          "networkMode": "unknown", "networkDetail": "",
                                          "signaling": {"url": "", "connected": 0}})
    stations = _map_stations()
    current = catalog_selectors.entries_current()
    counters = [
        ("Stations known", len(stations)),
        ("Linked now", sum(1 for s in stations if s.linked)),
        ("Routes", sum(1 for s in stations if s.hops)),
        ("Content entries", current.count()),
        ("Conflicts", current.filter(conflict=True).count()),
        ("Certificates", Certificate.objects.count()),
        ("Blacklisted", BlacklistEntry.objects.count()),
        ("Signaling clients", (status.get("signaling") or {}).get("connected") or 0),
    ]
    own = status.get("owner") or ""
    return {"state": status["state"], "owner": own, "mode": status["networkMode"],
            "detail": status.get("networkDetail", ""), "version": full_version(),
            "uptime": station_status.uptime_seconds(), "counters": counters,
            "events": _events(),
            "map": SafeString(meshmap.render(own_callsign=own, stations=stations))}
