"""Fetching a body this station lacks from a station that holds it.

First the direct neighbours with an HTTP endpoint (`selectors.body_holders`, cheapest first):
the body comes straight over HTTP. Then, when none of them could serve it, the holders anywhere
on the mesh, lowest route cost first, through multi-hop forwarding (`mesh.forwarding`): the
body comes back hop by hop over the links, a few chunks at a time. The body streams into the
blob store with its signed hash as the expectation, so a wrong body is never stored; the peer
that served it is penalised and the next one tried. An HTTP request carries
`X-Meshsite-No-Fetch` so the neighbour answers only from what it holds (no HTTP fetch chains:
going further is the mesh's job).
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from urllib.parse import quote

from django.conf import settings

from catalog.blobstore import CHUNK
from catalog.entries import callsign_for_url
from catalog.models import ContentEntry
from catalog.selectors import body_holders
from catalog.services import CatalogError, body_store
from mesh.forwarding import ForwardError, fetch_sync

logger = logging.getLogger(__name__)

NO_FETCH_HEADER = "X-Meshsite-No-Fetch"


def _chunks(response) -> object:
    while True:
        chunk = response.read(CHUNK)
        if not chunk:
            return
        yield chunk


class FetchFailed:
    """Why no holder served a body: `reason` for the operator, `timeout` when the mesh ran out
    of time somewhere (the view answers 504 then, 404 otherwise)."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.timeout = False

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons[-3:]) or "no reachable station holds the body"


def body_fetch(*, entry: ContentEntry, max_peers: int = 5,
               failed: FetchFailed | None = None) -> ContentEntry | None:
    """Fetch and store the body of `entry` from the cheapest station that has it (a direct
    neighbour over HTTP, else any holder through the mesh); None if none could serve a body
    matching the signed hash (`failed` then says why)."""
    failed = failed if failed is not None else FetchFailed()
    stored = _fetch_http(entry, max_peers)
    if stored is not None:
        return stored
    return _fetch_mesh(entry, failed, max_holders=3)


def mesh_holders(entry: ContentEntry) -> list[dict]:
    """Stations that hold the body (known replicas and the origin) with a route from here,
    lowest route cost first."""
    from certificates.selectors import station_get
    from mesh import selectors as mesh_selectors

    own = station_get().station_id
    holders = set(entry.replicas.values_list("station_id", flat=True))
    holders.add(entry.origin_station_id)
    holders.discard(own)
    holders.discard("")
    found = []
    for station_id in holders:
        route = mesh_selectors.next_hop_to(station_id)
        if route is None:
            continue
        found.append({"station_id": station_id, "cost": route.cost})
    found.sort(key=lambda holder: holder["cost"])
    return found


def _callsign_of(station_id: str) -> str:
    """The callsign meshd's routing table (or the peer list) gives `station_id`, or ""."""
    from mesh import selectors as mesh_selectors

    route = mesh_selectors.route_to(station_id)
    return route.callsign if route is not None else ""


def _fetch_mesh(entry: ContentEntry, failed: FetchFailed, max_holders: int) -> ContentEntry | None:
    holders = mesh_holders(entry)[:max_holders]
    if not holders:
        failed.reasons.append("no route to any station that holds the body")
    for holder in holders:
        started = time.monotonic()
        try:
            meta, chunks = fetch_sync(holder["station_id"], "content",
                                      {"entry": entry.entry_id})
            answered = time.monotonic()
            if meta.get("size") != entry.size:
                raise ForwardError("wrong_size", f"the holder offers {meta.get('size')} "
                                                 f"bytes, the entry says {entry.size}")
            stored = body_store(entry=entry, chunks=chunks,
                                source_station_id=holder["station_id"],
                                source_callsign=_callsign_of(holder["station_id"]))
        except ForwardError as exc:
            failed.reasons.append(f"{exc.code}: {exc.detail}")
            failed.timeout = failed.timeout or exc.code == "timeout"
            logger.info("forwarded body fetch failed", extra={
                "holder": holder["station_id"], "entry": entry.entry_id, "error": exc.code,
                "detail": exc.detail})
            continue
        except CatalogError as exc:
            failed.reasons.append(f"{exc.code}: {exc.detail}")
            logger.warning("forwarded body refused", extra={
                "holder": holder["station_id"], "entry": entry.entry_id, "reason": exc.detail})
            continue
        # answer_ms: the FORWARD's round trip through every hop (a small body's whole trip);
        # ms: until the last byte was stored.
        logger.info("body fetched through the mesh", extra={
            "holder": holder["station_id"], "entry": entry.entry_id, "size": entry.size,
            "via": ",".join(str(v) for v in meta.get("via") or []),
            "answer_ms": round(1000 * (answered - started), 1),
            "ms": round(1000 * (time.monotonic() - started), 1)})
        return stored
    return None


def _fetch_http(entry: ContentEntry, max_peers: int) -> ContentEntry | None:
    url_path = (f"/c/{callsign_for_url(entry.origin_callsign)}/{quote(entry.path)}"
                f"?version={entry.entry_id}")
    for holder in body_holders(entry)[:max_peers]:
        endpoint = holder["endpoint"]
        if not endpoint.startswith(("http://", "https://")):
            continue
        request = urllib.request.Request(endpoint + url_path,  # noqa: S310 - scheme checked
                                         headers={NO_FETCH_HEADER: "1"})
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request,  # noqa: S310 - http(s) only, checked above
                                        timeout=settings.CATALOG_FETCH_TIMEOUT) as response:
                stored = body_store(entry=entry, chunks=_chunks(response),
                                    source_station_id=holder["station_id"],
                                    source_callsign=holder["callsign"])
        except CatalogError as exc:
            logger.warning("peer served a bad body", extra={
                "peer": holder["callsign"], "entry": entry.entry_id, "reason": exc.detail})
            continue
        except (urllib.error.URLError, OSError, ValueError) as exc:
            logger.info("body fetch failed", extra={"peer": holder["callsign"],
                                                    "entry": entry.entry_id, "error": str(exc)})
            continue
        logger.info("body fetched", extra={"peer": holder["callsign"], "entry": entry.entry_id,
                                           "size": entry.size,
                                           "ms": round(1000 * (time.monotonic() - started), 1)})
        return stored
    return None
