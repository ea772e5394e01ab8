"""Reads of the mesh app."""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any, NamedTuple

from django.conf import settings
from django.db.models import F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, NullIf

from mesh import trust
from mesh.models import MeshBlacklistEntry, Peer, Route
from meshsite import hotread
from meshsite.redisconn import get_redis
from meshsite.version import full_version

CAPABILITIES = ["signaling", "webrtc", "mesh"]


def peers_list() -> QuerySet[Peer]:
    return Peer.objects.prefetch_related("links").order_by("callsign", "endpoint", "pk")


def peers_active() -> list[Peer]:
    """Peers heard recently enough to be `active` (what other apps should talk to)."""
    return list(Peer.objects.filter(state=Peer.State.ACTIVE).order_by("callsign"))


def peer_by_station_id(station_id: str) -> Peer | None:
    return Peer.objects.filter(station_id=station_id).first()


def local_servers() -> list[Peer]:
    """Stations found on the LAN by mDNS (and still known)."""
    return list(Peer.objects.filter(discovery_method=Peer.Method.MDNS)
                .exclude(state=Peer.State.UNREACHABLE).order_by("callsign", "endpoint"))


def network_mode_get() -> dict[str, Any]:
    """{mode: online|offline|degraded|unknown, since, checkedAt, targets} from the last check."""
    try:
        raw = get_redis().get("meshsite:mesh:network-mode")
    except Exception:
        return {"mode": "unknown", "detail": "Redis unreachable"}
    if not raw:
        return {"mode": "unknown", "detail": "no connectivity check has run yet"}
    state = json.loads(raw)
    state.pop("failures", None)
    return state


DAEMON_KEY = "meshsite:mesh:daemon"  # meshd's heartbeat (mesh/daemon.py)


def daemon_alive() -> bool:
    try:
        return bool(get_redis().exists(DAEMON_KEY))
    except Exception:
        return False


def rf_status() -> dict[str, Any]:
    """The radio as /api/status and the admin show it: settings, and what meshd published about
    its TNC connection (`state` is `unknown` while meshd does not run)."""
    from mesh.radio import RF_STATE_KEY  # meshd's module: not loaded by every reader

    if not settings.RF_KISS:
        return {"configured": False}
    data: dict[str, Any] = {"configured": True, "url": settings.RF_KISS, "state": "unknown",
                            "ssid": settings.RF_SSID, "bitrate": settings.RF_BITRATE,
                            "airtimeShare": settings.RF_AIRTIME_SHARE,
                            "idInterval": settings.RF_ID_INTERVAL}
    try:
        raw = get_redis().get(RF_STATE_KEY)
    except Exception:
        raw = None
    if raw:
        published = json.loads(raw)
        published.pop("url", None)
        data.update(published)
    return data


def blacklist_for_sync() -> dict[str, dict[str, Any]]:
    """Applied, signed entries as they travel: key `fingerprint:signer:timestamp`."""
    out = {}
    for record in MeshBlacklistEntry.objects.filter(status=MeshBlacklistEntry.Status.APPLIED)\
            .exclude(signature=""):
        key = f"{record.fingerprint}:{record.signer_station_id}:{record.timestamp}"
        out[key] = {"fingerprint": record.fingerprint, "reason": record.reason,
                    "timestamp": record.timestamp, "signer": record.signer_station_id,
                    "credential": record.signer_credential, "signature": record.signature}
    return out


def own_endpoint() -> str:
    if settings.MESHSITE_PUBLIC_URL:
        return settings.MESHSITE_PUBLIC_URL.rstrip("/")
    host = settings.MESHSITE_HOST
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - we only describe our own bind address
        return ""
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.MESHSITE_PORT}"


def own_endpoints() -> list[str]:
    """Where other stations can reach us, as we state it in a link handshake: the public URL,
    else the bound address, else every IPv4 address of this host (loopback only when it has no
    other). The other side checks them by connecting back."""
    endpoint = own_endpoint()
    if endpoint:
        return [endpoint]
    from mesh.mdns import interface_addresses

    try:
        addresses = interface_addresses([])
    except (OSError, ValueError):
        return []
    return [f"http://{address}:{settings.MESHSITE_PORT}" for address in addresses][:8]


def own_announcement() -> dict[str, Any]:
    local = trust.local_station()
    return {"stationId": local.station_id, "callsign": local.callsign,
            "endpoint": own_endpoint(), "capabilities": CAPABILITIES,
            "version": full_version()}


def peers_for_gossip(*, exclude: str, limit: int) -> list[dict[str, Any]]:
    """Our known, recently active peers with an id and endpoint, for a PEER_LIST."""
    rows = Peer.objects.filter(state=Peer.State.ACTIVE, station_id__isnull=False)\
        .exclude(endpoint="").exclude(station_id=exclude).order_by("-last_contact")[:limit]
    return [{"stationId": p.station_id, "callsign": p.callsign, "endpoint": p.endpoint,
             "capabilities": p.capabilities} for p in rows]


def trust_digest() -> str:
    """Changes when our certificates or blacklist change: meshd syncs its links then."""
    certificates = sorted(trust.certificate_fingerprints_for_sync())
    blacklist = sorted(trust.blacklist_fingerprints())
    blob = json.dumps([certificates, blacklist]).encode()
    return hashlib.sha256(blob).hexdigest()


def live_members() -> dict[str, Any]:
    """meshd's live view: {peer id: {state, lastHeard (unix), rttMs, connected}}."""
    try:
        raw = get_redis().get("meshsite:mesh:members")
    except Exception:
        return {}
    return json.loads(raw) if raw else {}


def now() -> float:
    return time.time()


# -- routing table ----------------------------------------------------------------------------

def _callsign_known(field: str, station_field: str, *others: QuerySet) -> Coalesce:
    """The callsign meshd stored in `field`, else the first of `others` (rows of the station in
    `station_field`) with one, else the peer list's, else ""."""
    peer = Peer.objects.filter(station_id=OuterRef(station_field))
    sources = [Subquery(rows.exclude(callsign="").values("callsign")[:1])
               for rows in (*others, peer)]
    return Coalesce(NullIf(F(field), Value("")), *sources, Value(""))


def routes_annotated() -> QuerySet[Route]:
    """Every stored route with `known_callsign` and `known_next_hop_callsign`: the callsign meshd
    stored, else (next hop) the one stored with the route to the next hop, else `Peer.callsign`
    of that station id, else "" (one query, for lists and the admin)."""
    next_hop_route = Route.objects.filter(destination=OuterRef("next_hop"))
    return Route.objects.annotate(
        known_callsign=_callsign_known("callsign", "destination"),
        known_next_hop_callsign=_callsign_known("next_hop_callsign", "next_hop",
                                                next_hop_route))


_STATION_ID = re.compile(r"[0-9a-f]{32}")  # as mesh.services.STATION_ID_RE (no import back)
_CALLSIGN = re.compile(r"[A-Za-z0-9/-]{1,16}")


def _route_destination_q(text: str) -> Q:
    value = text.strip()
    if _STATION_ID.fullmatch(value.lower()):
        return Q(destination=value.lower())
    callsign = value.upper() if _CALLSIGN.fullmatch(value) else ""
    if not callsign:
        raise ValueError(f"{text!r} is neither a station id (32 hex digits) nor a callsign (up "
                         f"to 16 letters, digits, / or -)")
    return Q(known_callsign=callsign)


def _known_callsigns(route: Route) -> Route:
    route.callsign = route.known_callsign
    route.next_hop_callsign = route.known_next_hop_callsign
    return route


def routes(*, destination: str | None = None) -> list[Route]:
    """meshd's routing table by cost, then callsign; blank callsigns filled from the peer list.
    `destination`: only the route to that station, by station id or callsign (ValueError
    saying what is wrong when it is neither)."""
    rows = routes_annotated().order_by("cost", "known_callsign", "destination")
    if destination is not None:
        rows = rows.filter(_route_destination_q(destination))
    return [_known_callsigns(route) for route in rows]


class NextHop(NamedTuple):
    next_hop: str
    hops: int
    cost: int
    lan_next_hop: str
    lan_hops: int | None


def next_hop_to(station_id: str) -> NextHop | None:
    """Where traffic for `station_id` goes, from its stored route, or None: what forwarding
    reads at every hop, so one row by its unique key and no callsigns (`route_to` fills those
    in with subqueries, several times the cost), read without the ORM's compiler."""
    found = hotread.row(Route, NextHop._fields, "destination", station_id)
    return None if found is None else NextHop(*found)


def route_to(station_id: str) -> Route | None:
    """The stored route to `station_id`, callsigns filled as in `routes`, or None."""
    route = routes_annotated().filter(destination=station_id).first()
    return None if route is None else _known_callsigns(route)
