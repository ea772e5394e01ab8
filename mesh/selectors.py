"""Reads of the mesh app."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from mesh import trust
from mesh.models import MeshBlacklistEntry, Peer
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


def daemon_alive() -> bool:
    try:
        return bool(get_redis().exists("meshsite:mesh:daemon"))
    except Exception:
        return False


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
    certificates = sorted(trust.certificates_for_sync())
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
