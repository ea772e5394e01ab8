"""Reads of the catalog: what to list, serve, reconcile and fetch from whom."""

from __future__ import annotations

import threading
from typing import Any

from django.db.models import Max, QuerySet, Sum

from catalog.changes import VERSION_KEY
from catalog.models import ContentEntry, OriginStation, PeerPenalty
from catalog.reconcile import Catalog
from meshsite.redisconn import get_redis

_cache_lock = threading.Lock()
_cache: dict[str, Any] = {"version": None, "catalog": None}


def entries_current(*, origin: str | None = None, priority: int | None = None,
                    include_deleted: bool = False) -> QuerySet[ContentEntry]:
    rows = ContentEntry.objects.filter(is_current=True)
    if not include_deleted:
        rows = rows.filter(deleted=False)
    if origin:
        rows = rows.filter(origin_callsign=origin)
    if priority:
        rows = rows.filter(priority=priority)
    return rows.order_by("origin_callsign", "path")


def entries_all() -> QuerySet[ContentEntry]:
    return ContentEntry.objects.order_by("origin_callsign", "path", "-modified_packed")


def entry_by_id(entry_id: str) -> ContentEntry | None:
    return ContentEntry.objects.filter(entry_id=entry_id).first()


def entry_for_url(*, callsign: str, path: str, version: str | None = None) -> ContentEntry | None:
    """The entry a `/c/<callsign>/<path>` URL names: the current version, or with `version`
    the version whose entry id (or body hash) starts with it (at least 8 hex digits)."""
    rows = ContentEntry.objects.filter(origin_callsign=callsign, path=path)
    if version:
        version = version.lower()
        return (rows.filter(entry_id__startswith=version).first()
                or rows.filter(content_hash__startswith=version, deleted=False)
                .order_by("-modified_packed").first())
    return rows.filter(is_current=True).first()


def path_versions(entry: ContentEntry) -> QuerySet[ContentEntry]:
    return ContentEntry.objects.filter(origin_callsign=entry.origin_callsign,
                                       path=entry.path).order_by("-modified_packed")


def catalog_summary(rows: QuerySet[ContentEntry]) -> dict[str, Any]:
    agg = rows.aggregate(total=Sum("size"), last=Max("updated_at"))
    return {"totalSize": agg["total"] or 0, "lastUpdated": agg["last"],
            "entryCount": rows.count()}


def sync_catalog() -> Catalog:
    """Every version this station knows (tombstones too) as (modified HLC, entry id), cached
    per process until the catalog version in Redis moves."""
    try:
        version = get_redis().get(VERSION_KEY)
    except Exception:
        version = None
    with _cache_lock:
        if version is not None and _cache["version"] == version:
            return _cache["catalog"]
    rows = ContentEntry.objects.values_list("modified_packed", "entry_id")
    catalog = Catalog((packed, bytes.fromhex(entry_id)) for packed, entry_id in rows)
    with _cache_lock:
        _cache["version"], _cache["catalog"] = version, catalog
    return catalog


def body_holders(entry: ContentEntry) -> list[dict[str, Any]]:
    """Linked peers that may hold the body, cheapest first: known replicas before others, fewer
    penalties first, then lower round-trip time."""
    from mesh.models import Peer

    replicas = set(entry.replicas.values_list("station_id", flat=True))
    penalties = dict(PeerPenalty.objects.values_list("station_id", "count"))
    holders = []
    for peer in Peer.objects.filter(station_id__isnull=False, authenticated=True)\
            .exclude(endpoint=""):
        if peer.state == "unreachable":
            continue
        holders.append({
            "station_id": peer.station_id, "callsign": peer.callsign,
            "endpoint": peer.endpoint.rstrip("/"),
            "key": (0 if peer.station_id in replicas or peer.station_id ==
                    entry.origin_station_id else 1, penalties.get(peer.station_id, 0),
                    peer.rtt_ms if peer.rtt_ms is not None else 1e9),
        })
    holders.sort(key=lambda holder: holder["key"])
    return holders


def known_origins(limit: int) -> list[str]:
    """The station ids of the origin stations whose credentials we hold, when they are at
    most `limit` (a pull names them so their credentials do not come again); else none."""
    ids = list(OriginStation.objects.exclude(credential={}).order_by("station_id")
               .values_list("station_id", flat=True)[:limit + 1])
    return ids if len(ids) <= limit else []
