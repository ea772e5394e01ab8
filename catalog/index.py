"""The package index of the release this station serves, and the "Get your own station" page.

    /simple/                  PEP 503 HTML or PEP 691 JSON (by Accept, `Vary: Accept`)
    /simple/<project>/        every file of the project with `#sha256=`, Requires-Python and the
                              PEP 658 / 714 core-metadata hash
    /packages/<file>          the file, from the blob store or fetched through the mesh
    /packages/<file>.metadata its core metadata (PEP 658)
    /get/release.json         the signed release document (open: the installer verifies it)
    /get/trust-roots.pem      this station's trust roots (for an operator to compare)
    /get/meshsite-install.py  the standard-library installer
    /get/                     the page for operators (meshsite/pages.py)

Index and files need a download token as HTTP basic auth (CALLSIGN:TOKEN); without one the
answer is 401 saying how to get one.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import html
import json
from pathlib import Path
from typing import Any

from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)

from catalog import release as rel
from catalog import releases
from catalog.services import blob_store

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
API_VERSION = "1.1"
INSTALLER = Path(__file__).resolve().parent / "meshsite_install.py"
HOW_TO_AUTHENTICATE = (
    "A download token is needed: prove your license to this station (the page /get/ does it "
    "in the browser; or POST /api/download-token/nonce, sign "
    "b'meshsite-download-token-v1\\nstation:<stationId>\\nnonce:<nonce>\\n' with your "
    "certificate's key, POST /api/download-token), then use "
    "http://CALLSIGN:TOKEN@{host}/simple/ as the index URL.\n")


# --- negotiation and authentication ---------------------------------------------------------


def _negotiate(request: HttpRequest) -> str | None:
    """The media type to answer with (PEP 691): highest q wins, the first listed on a tie;
    None when the client accepts none of ours."""
    header = request.headers.get("Accept", "").strip()
    if not header:
        return "text/html"
    best, best_q = None, 0.0
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        q = 1.0
        for param in pieces[1:]:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        chosen = {JSON_V1: JSON_V1, "application/vnd.pypi.simple.latest+json": JSON_V1,
                  HTML_V1: HTML_V1, "application/vnd.pypi.simple.latest+html": HTML_V1,
                  "text/html": "text/html", "*/*": "text/html",
                  "text/*": "text/html"}.get(media)
        if chosen and q > best_q:
            best, best_q = chosen, q
    return best


def _unauthorized(request: HttpRequest, reason: str) -> HttpResponse:
    text = f"401 {reason}.\n" + HOW_TO_AUTHENTICATE.format(host=request.get_host())
    response = HttpResponse(text, status=401, content_type="text/plain; charset=utf-8")
    response["WWW-Authenticate"] = 'Basic realm="meshsite release index"'
    return response


def _authorize(request: HttpRequest) -> HttpResponse | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return _unauthorized(request, "no download token was given")
    try:
        user, _, token = base64.b64decode(header[6:].strip(), validate=True).decode(
            "utf-8").partition(":")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return _unauthorized(request, "the Authorization header is not CALLSIGN:TOKEN in "
                                      "base64")
    problem = releases.download_token_check(callsign=user, token=token)
    if problem is None:
        return None
    if problem.startswith("rate_limited"):
        response = HttpResponse(problem + "\n", status=429,
                                content_type="text/plain; charset=utf-8")
        response["Retry-After"] = "60"
        return response
    return _unauthorized(request, problem)


def _no_release(request: HttpRequest) -> HttpResponse:
    reasons = releases.release_refusals()
    detail = "This station serves no release of the station software" + (
        f" ({'; '.join(reasons)})" if reasons else " (none is known here yet)") + "."
    return JsonResponse({"error": "no_release", "detail": detail}, status=404)


# --- the index ------------------------------------------------------------------------------


def _projects(release: releases.VerifiedRelease) -> dict[str, list[dict[str, Any]]]:
    projects: dict[str, list[dict[str, Any]]] = {}
    for item in release.manifest["files"]:
        projects.setdefault(item["project"], []).append(item)
    return projects


def _finish(response: HttpResponse) -> HttpResponse:
    response["Vary"] = "Accept"
    response["Cache-Control"] = "no-cache"
    return response


def simple_root(request: HttpRequest) -> HttpResponse:
    denied = _authorize(request)
    if denied is not None:
        return denied
    media = _negotiate(request)
    if media is None:
        return _finish(HttpResponse(f"406 ask for {JSON_V1}, {HTML_V1} or text/html\n",
                                    status=406, content_type="text/plain"))
    release = releases.release_current()
    if release is None:
        return _finish(_no_release(request))
    names = sorted(_projects(release))
    if media == JSON_V1:
        body = json.dumps({"meta": {"api-version": API_VERSION},
                           "projects": [{"name": name} for name in names]})
        return _finish(HttpResponse(body, content_type=JSON_V1))
    links = "\n".join(f'<a href="/simple/{name}/">{name}</a><br>' for name in names)
    body = ("<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" "
            f"content=\"{API_VERSION}\"><title>Simple index</title></head><body>\n{links}\n"
            "</body></html>\n")
    return _finish(HttpResponse(body, content_type=media + "; charset=utf-8"
                                if media == "text/html" else media))


def simple_project(request: HttpRequest, project: str) -> HttpResponse:
    denied = _authorize(request)
    if denied is not None:
        return denied
    normalized = rel.normalize_project(project)
    if normalized != project:
        return _finish(HttpResponseRedirect(f"/simple/{normalized}/", status=301))
    media = _negotiate(request)
    if media is None:
        return _finish(HttpResponse(f"406 ask for {JSON_V1}, {HTML_V1} or text/html\n",
                                    status=406, content_type="text/plain"))
    release = releases.release_current()
    if release is None:
        return _finish(_no_release(request))
    files = sorted(_projects(release).get(normalized, []), key=lambda f: f["name"])
    if not files:
        return _finish(JsonResponse({"error": "not_found", "detail": f"the release "
                                     f"{release.manifest['version']} has no project "
                                     f"{normalized!r}"}, status=404))
    if media == JSON_V1:
        entries = []
        for item in files:
            entry: dict[str, Any] = {
                "filename": item["name"], "url": f"/packages/{item['name']}",
                "hashes": {"sha256": item["sha256"]}, "size": item["size"],
                "requires-python": item.get("requiresPython") or None, "yanked": False,
            }
            if item.get("metadata"):
                entry["core-metadata"] = {"sha256": item["metadata"]["sha256"]}
                entry["dist-info-metadata"] = entry["core-metadata"]
            entries.append(entry)
        body = json.dumps({"meta": {"api-version": API_VERSION}, "name": normalized,
                           "files": entries,
                           "versions": sorted({item["version"] for item in files})})
        return _finish(HttpResponse(body, content_type=JSON_V1))
    links = []
    for item in files:
        attributes = ""
        if item.get("requiresPython"):
            attributes += f' data-requires-python="{html.escape(item["requiresPython"])}"'
        if item.get("metadata"):
            digest = f'sha256={item["metadata"]["sha256"]}'
            attributes += f' data-dist-info-metadata="{digest}" data-core-metadata="{digest}"'
        links.append(f'<a href="/packages/{html.escape(item["name"])}#sha256={item["sha256"]}"'
                     f"{attributes}>{html.escape(item['name'])}</a><br>")
    body = ("<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" "
            f"content=\"{API_VERSION}\"><title>Links for {normalized}</title></head><body>\n"
            f"<h1>Links for {normalized}</h1>\n" + "\n".join(links) + "\n</body></html>\n")
    return _finish(HttpResponse(body, content_type=media + "; charset=utf-8"
                                if media == "text/html" else media))


def _listed(filename: str) -> tuple[str, int] | None:
    """(sha256, size) of a file or `<file>.metadata` named by a usable release here."""
    want_metadata = filename.endswith(".metadata")
    name = filename.removesuffix(".metadata") if want_metadata else filename
    for state in releases.releases_iter(fetch=True):
        if state.release is None or state.problem:
            continue
        for item in state.release.manifest["files"]:
            if item["name"] == name:
                if want_metadata:
                    meta = item.get("metadata")
                    return (meta["sha256"], meta["size"]) if meta else None
                return item["sha256"], item["size"]
    return None


def package_file(request: HttpRequest, filename: str) -> HttpResponse:
    denied = _authorize(request)
    if denied is not None:
        return denied
    listed = _listed(filename)
    if listed is None:
        return JsonResponse({"error": "not_found", "detail": f"{filename!r} is in no release "
                                                            "this station serves"}, status=404)
    digest, size = listed
    entry = releases.file_entry(digest)
    handle = None
    if entry is not None:
        try:
            handle = blob_store().open(digest) if entry.has_body else None
        except FileNotFoundError:
            handle = None
        if handle is None:
            from catalog.fetch import FetchFailed, body_fetch

            failed = FetchFailed()
            if body_fetch(entry=entry, failed=failed) is not None:
                handle = blob_store().open(digest)
            else:
                return JsonResponse({"error": "not_available", "detail": f"no station "
                                     f"reachable holds {filename}: {failed.reason}"},
                                    status=504 if failed.timeout else 404)
    if handle is None:
        return JsonResponse({"error": "not_available", "detail": f"this station knows of no "
                             f"copy of {filename}"}, status=404)
    response = FileResponse(handle, content_type="application/octet-stream"
                            if not filename.endswith(".metadata")
                            else "text/plain; charset=utf-8")
    response["Content-Length"] = str(size)
    response["ETag"] = f'"{digest}"'
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


# --- the installer and the page -------------------------------------------------------------


@functools.cache
def _installer(mtime: float) -> tuple[bytes, str]:
    data = INSTALLER.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def installer_bytes() -> tuple[bytes, str]:
    return _installer(INSTALLER.stat().st_mtime)


def installer_script(request: HttpRequest) -> HttpResponse:
    data, digest = installer_bytes()
    response = HttpResponse(data, content_type="text/x-python; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="meshsite-install.py"'
    response["X-Meshsite-SHA256"] = digest
    return response


def release_document(request: HttpRequest) -> HttpResponse:
    release = releases.release_current()
    if release is None:
        return _no_release(request)
    response = HttpResponse(release.raw, content_type="application/json")
    response["Cache-Control"] = "no-cache"
    return response


def trust_roots_pem(request: HttpRequest) -> HttpResponse:
    from certificates.selectors import trust_roots
    from certificates.x509tools import to_pem

    body = "".join(to_pem(cert) for cert in trust_roots())
    return HttpResponse(body, content_type="application/x-pem-file")
