"""Serving content: `/c/<callsign>/<path>` (and `<callsign>.radio`, see `middleware`), and the
proxy auto-config that sends a browser's `*.radio` traffic to this station.

Responses carry the stored content type, an ETag from the body hash, Last-Modified from the HLC,
and honour If-None-Match / If-Modified-Since and single byte ranges (If-Range too). Content is
served with a sandboxing CSP, so a published page cannot script this station's own pages.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any, BinaryIO

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.template.loader import render_to_string
from django.utils.http import http_date, parse_http_date_safe

from catalog import selectors, services
from catalog.blobstore import CHUNK
from catalog.entries import EntryError, callsign_clean, callsign_for_url, path_clean
from catalog.fetch import NO_FETCH_HEADER, FetchFailed, body_fetch
from catalog.models import ContentEntry, Priority

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CONTENT_CSP = "sandbox allow-scripts allow-forms allow-popups allow-downloads"


def _wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return "json" in accept and "text/html" not in accept


def _error(request: HttpRequest, status: int, code: str, detail: str) -> HttpResponse:
    if _wants_json(request) or "text/html" not in request.headers.get("Accept", ""):
        return JsonResponse({"error": code, "detail": detail}, status=status)
    html = render_to_string("catalog/error.html", {"status": status, "detail": detail})
    return HttpResponse(html, status=status, content_type="text/html; charset=utf-8")


def _missing(request: HttpRequest, callsign: str, path: str, reason: str) -> HttpResponse:
    """404 listing what the mesh holds for this callsign (as far as this station knows)."""
    rows = selectors.entries_current(origin=callsign)[:500]
    listing = [{"path": row.path, "url": f"/c/{callsign_for_url(callsign)}/{row.path}",
                "size": row.size, "contentType": row.content_type, "priority": row.priority,
                "modified": row.modified, "available": row.has_body} for row in rows]
    detail = f"{callsign} has no content at {path!r} on this mesh ({reason})."
    if _wants_json(request):
        return JsonResponse({"error": "not_found", "detail": detail, "callsign": callsign,
                             "entries": listing}, status=404)
    html = render_to_string("catalog/missing.html", {"callsign": callsign, "path": path,
                                                     "detail": detail, "entries": listing})
    return HttpResponse(html, status=404, content_type="text/html; charset=utf-8")


def _keep_after_access(entry: ContentEntry) -> bool:
    """Replication policy for a body fetched because someone asked for it here."""
    priority = entry.effective_priority
    if entry.pinned or priority in (Priority.ESSENTIAL, Priority.STANDARD):
        return True
    if priority == Priority.POPULAR:
        return entry.demand + entry.mesh_demand + 1 >= settings.CATALOG_DEMAND_THRESHOLD
    return False  # personal: only at the origin


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(start, end inclusive) for one satisfiable range; None to ignore; "unsatisfiable"."""
    match = _RANGE_RE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # multiple ranges or junk: serve the whole body (RFC 9110 allows it)
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None
    else:
        length = int(last)
        if length == 0:
            return "unsatisfiable"
        start, end = max(0, size - length), size - 1
    if start >= size:
        return "unsatisfiable"
    return start, end


def _sync_chunks(handle: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    with handle:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


async def _async_chunks(handle: BinaryIO, start: int, length: int) -> AsyncIterator[bytes]:
    try:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = await asyncio.to_thread(handle.read, min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def _body_response(request: HttpRequest, entry: ContentEntry, status: int, start: int,
                   length: int, *, body: BinaryIO) -> HttpResponse:
    """Stream `length` bytes from `start` of the open body file (closed when done)."""
    if request.method == "HEAD":
        body.close()
        response = HttpResponse(status=status)
    else:
        iterator: Any = (_async_chunks(body, start, length)
                         if isinstance(request, ASGIRequest)
                         else _sync_chunks(body, start, length))
        response = StreamingHttpResponse(iterator, status=status)
    response["Content-Length"] = str(length)
    return response


def _open_body(store: Any, entry: ContentEntry) -> BinaryIO | None:
    if not entry.has_body:
        return None
    try:
        return store.open(entry.content_hash)
    except FileNotFoundError:
        return None


def content_serve(request: HttpRequest, callsign: str, path: str) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return _error(request, 405, "method_not_allowed", "content is read with GET or HEAD; "
                      "publish through POST /api/content-catalog")
    try:
        callsign = callsign_clean(callsign)
        path = path_clean(path)
    except EntryError as exc:
        return _error(request, 400, exc.code, exc.detail)
    version = request.GET.get("version")
    if version is not None and not re.fullmatch(r"[0-9a-fA-F]{8,64}", version):
        return _error(request, 400, "bad_version", "version is 8 to 64 hex digits of an entry "
                                                   "id or body hash")
    entry = selectors.entry_for_url(callsign=callsign, path=path, version=version)
    if entry is None:
        return _missing(request, callsign, path, "no such entry")
    if entry.deleted:
        return _missing(request, callsign, path, "deleted by its owner")
    store = services.blob_store()
    # The body is opened before anything else happens: an open file stays readable even if
    # an eviction (here or in another process) removes it before the response has streamed.
    held = _open_body(store, entry)
    fetched_here = held is None
    if fetched_here:
        if request.headers.get(NO_FETCH_HEADER):
            return _missing(request, callsign, path, "this station does not hold the body")
        failed = FetchFailed()
        fetched = body_fetch(entry=entry, failed=failed)
        held = _open_body(store, fetched) if fetched is not None else None
        if fetched is None or held is None:
            if failed.timeout:
                return _error(request, 504, "mesh_timeout", "the body did not come back in "
                              f"time: {failed.reason}")
            return _missing(request, callsign, path, failed.reason)
        entry = fetched
        if not _keep_after_access(entry):
            services.entry_evict(entry=entry, force=True)  # serve it once, keep nothing
            fetched_here = False  # nothing was added to the store
    etag = f'"{entry.content_hash}"'
    last_modified = entry.modified_packed >> 16
    headers = {
        "ETag": etag,
        "Last-Modified": http_date(last_modified // 1000),
        "Accept-Ranges": "bytes",
        "Content-Security-Policy": CONTENT_CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Meshsite-Entry": entry.entry_id,
        "Cache-Control": "no-cache" if version is None else "public, max-age=31536000, immutable",
    }
    if entry.conflict:
        headers["X-Meshsite-Conflict"] = "1"
    not_modified = False
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        not_modified = "*" in tags or etag in tags
    else:
        since = parse_http_date_safe(request.headers.get("If-Modified-Since", ""))
        not_modified = since is not None and last_modified // 1000 <= since
    if not_modified:
        held.close()
        response = HttpResponse(status=304)
        for key, value in headers.items():
            response[key] = value
        return response
    if request.method == "GET" and not request.headers.get(NO_FETCH_HEADER):
        # Demand and LRU time: bodies served to people (a peer fetching a replica, a HEAD or
        # a revalidation answered 304 is no new demand, and costs no database write).
        services.entry_touch(entry=entry)
    if fetched_here:
        services.storage_enforce()  # a body was cached here: stay within the budget
    size = entry.size
    status, start, length = 200, 0, size
    range_header = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if range_header and (if_range is None or if_range.strip() == etag):
        parsed = _parse_range(range_header, size)
        if parsed == "unsatisfiable":
            held.close()
            response = _error(request, 416, "range_not_satisfiable",
                              f"the body has {size} bytes")
            response["Content-Range"] = f"bytes */{size}"
            return response
        if isinstance(parsed, tuple):
            start, end = parsed
            status, length = 206, end - start + 1
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    response = _body_response(request, entry, status, start, length, body=held)
    response["Content-Type"] = entry.content_type
    for key, value in headers.items():
        response[key] = value
    return response


def content_index(request: HttpRequest, callsign: str) -> HttpResponse:
    """`/c/<callsign>/`: the callsign's index.html, else the listing."""
    return content_serve(request, callsign, "index.html")


def proxy_pac(request: HttpRequest) -> HttpResponse:
    """A proxy auto-config file: `*.radio` through this station, everything else direct."""
    host = request.get_host()
    body = (
        "// Meshsite: reach http://CALLSIGN.radio/ through this station.\n"
        "function FindProxyForURL(url, host) {\n"
        '  if (shExpMatch(host, "*.radio") || dnsDomainIs(host, ".radio")) {\n'
        f'    return "PROXY {host}";\n'
        "  }\n"
        '  return "DIRECT";\n'
        "}\n"
    )
    response = HttpResponse(body, content_type="application/x-ns-proxy-autoconfig")
    response["Cache-Control"] = "max-age=300"
    return response


def http_date_from_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
