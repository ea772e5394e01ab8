"""Fetching a body this station lacks from a peer that holds it, over the peer's HTTP endpoint.

Peers are tried cheapest first (`selectors.body_holders`). The body streams into the blob store
with its signed hash as the expectation, so a wrong body is never stored; the peer that served it
is penalised and the next one tried. The request carries `X-Meshsite-No-Fetch` so the peer
answers only from what it holds (no fetch chains; multi-hop forwarding is the routing issue's).
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from urllib.parse import quote

from django.conf import settings

from catalog.blobstore import CHUNK
from catalog.entries import callsign_for_url
from catalog.models import ContentEntry
from catalog.selectors import body_holders
from catalog.services import CatalogError, body_store

logger = logging.getLogger(__name__)

NO_FETCH_HEADER = "X-Meshsite-No-Fetch"


def _chunks(response) -> object:
    while True:
        chunk = response.read(CHUNK)
        if not chunk:
            return
        yield chunk


def body_fetch(*, entry: ContentEntry, max_peers: int = 5) -> ContentEntry | None:
    """Fetch and store the body of `entry` from the cheapest peer that has it; None if no peer
    could serve a body matching the signed hash."""
    url_path = (f"/c/{callsign_for_url(entry.origin_callsign)}/{quote(entry.path)}"
                f"?version={entry.entry_id}")
    for holder in body_holders(entry)[:max_peers]:
        endpoint = holder["endpoint"]
        if not endpoint.startswith(("http://", "https://")):
            continue
        request = urllib.request.Request(endpoint + url_path,  # noqa: S310 - scheme checked
                                         headers={NO_FETCH_HEADER: "1"})
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
                                           "size": entry.size})
        return stored
    return None
