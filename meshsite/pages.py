"""The PWA's pages, service worker and manifest. Pages are rendered here from the apps'
selectors (the first paint needs no script) and kept live by the ES modules under
`static/pwa/`, which use the station's own API and `/ws/live`. No domain logic: every write a
page offers goes through the API, which checks who may do it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie

from meshsite.api import signaling_url, station_endpoint
from meshsite.live import station_snapshot

# No inline script or style anywhere in the PWA; WebSockets to this station only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' ws: wss:; media-src 'self' blob:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'; manifest-src 'self'; "
    "worker-src 'self'"
)

NAV = [("home", "/", "Home"), ("stations", "/stations", "Stations"),
       ("content", "/content", "Content"), ("talk", "/talk", "Talk"),
       ("mail", "/mail", "Mail"), ("get", "/get/", "Get your own station")]

PRIORITY_NAMES = {1: "Essential", 2: "Popular", 3: "Standard", 4: "Personal"}


def pwa_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A PWA page: strict CSP, a CSRF cookie for the API calls its module makes."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response["Referrer-Policy"] = "same-origin"
        return response

    return ensure_csrf_cookie(wrapped)


def is_operator(request: HttpRequest) -> bool:
    """The station owner signed in (their admin account is a superuser)."""
    user = request.user
    return bool(user.is_authenticated and user.is_superuser)


def _context(request: HttpRequest, page: str, **extra: Any) -> dict[str, Any]:
    snapshot = station_snapshot(endpoint=station_endpoint(request),
                                signaling_url=signaling_url(request))
    return {"page": page, "nav": NAV, "snap": snapshot, "operator": is_operator(request),
            **extra}


@pwa_page
def home_page(request: HttpRequest) -> HttpResponse:
    return render(request, "pwa/home.html", _context(request, "home"))


@pwa_page
def claim_page(request: HttpRequest) -> HttpResponse:
    return render(request, "pwa/claim.html", _context(request, "claim"))


@pwa_page
def stations_page(request: HttpRequest) -> HttpResponse:
    from mesh import selectors

    return render(request, "pwa/stations.html", _context(
        request, "stations", local_servers=selectors.local_servers()))


@pwa_page
def content_page(request: HttpRequest) -> HttpResponse:
    from catalog import selectors

    query = request.GET.get("q", "").strip()[:200]
    rows = selectors.entries_current()
    if query:
        rows = rows.filter(path__icontains=query) | rows.filter(origin_callsign__icontains=query)
    stations: dict[str, dict[int, list]] = {}
    for entry in rows.order_by("origin_callsign", "priority", "path")[:1000]:
        stations.setdefault(entry.origin_callsign, {}).setdefault(entry.priority, []).append(entry)
    groups = [{"callsign": callsign,
               "priorities": [{"priority": p, "name": PRIORITY_NAMES.get(p, str(p)),
                               "entries": entries} for p, entries in sorted(by.items())]}
              for callsign, by in stations.items()]
    conflicts: dict[tuple[str, str], list] = {}
    for entry in selectors.entries_all().filter(conflict=True, deleted=False)[:200]:
        conflicts.setdefault((entry.origin_callsign, entry.path), []).append(entry)
    for (callsign, path), versions in list(conflicts.items()):
        winner = selectors.entries_current().filter(origin_callsign=callsign, path=path).first()
        if winner and all(v.entry_id != winner.entry_id for v in versions):
            versions.insert(0, winner)
        versions.sort(key=lambda v: (not v.is_current, v.modified_packed))
        for version in versions:
            version.published_at = _hlc_time(version.modified)
    return render(request, "pwa/content.html", _context(
        request, "content", groups=groups, query=query,
        conflicts=[{"callsign": c, "path": p, "versions": v}
                   for (c, p), v in conflicts.items()],
        priorities=sorted(PRIORITY_NAMES.items())))


@pwa_page
def talk_page(request: HttpRequest) -> HttpResponse:
    return render(request, "pwa/talk.html", _context(request, "talk"))


@pwa_page
def mail_page(request: HttpRequest) -> HttpResponse:
    """Mail: the mailbox's end-to-end encrypted messages, all cryptography in the browser
    (static/pwa/mail.js); the station only sees the API calls of docs/mailbox.md."""
    # Where the page is a secure context without HTTPS: this port on the station's own computer.
    _, _, port = request.get_host().rpartition(":")
    local = f"http://localhost{':' + port if port.isdigit() else ''}/mail"
    return render(request, "pwa/mail.html", _context(request, "mail", local_url=local))


PLATFORM_NAMES = {"linux_x86_64": "Linux x86_64", "linux_aarch64": "Linux aarch64 (Raspberry Pi)",
                  "macos_arm64": "macOS (Apple silicon)", "windows_amd64": "Windows x86_64"}


@pwa_page
def get_page(request: HttpRequest) -> HttpResponse:
    """"Get your own station": the release served here, the installer and its SHA-256; the
    module proves the operator's license for a download token and fills in the commands."""
    from catalog import releases
    from catalog.index import installer_bytes
    from certificates.selectors import station_get

    _, digest = installer_bytes()
    release = releases.release_current()
    manifest = release.manifest if release is not None else None
    return render(request, "pwa/get.html", _context(
        request, "get", installer_sha256=digest, release=manifest,
        platforms=_release_platforms(manifest) if manifest else [],
        refusals=releases.release_refusals() if release is None else [],
        station_id=station_get().station_id,
        origin=request.build_absolute_uri("/").rstrip("/"), host=request.get_host()))


def _release_platforms(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Per platform of a release: its wheels (count, size) and what has no wheel there."""
    from catalog.release import platform_of

    rows = []
    for platform in manifest.get("platforms", []):
        files = [f for f in manifest.get("files", [])
                 if platform in platform_of(f["name"].removesuffix(".whl").split("-")[-1])]
        missing = [m for m in manifest.get("missing", []) if m.get("platform") == platform]
        rows.append({"key": platform, "name": PLATFORM_NAMES.get(platform, platform),
                     "files": len(files), "size": sum(f.get("size", 0) for f in files),
                     "missing": missing})
    return rows


def _hlc_time(text: str) -> datetime | None:
    """When a version was published, from its HLC timestamp (the wall-clock part)."""
    from catalog.hlc import ClockError, Timestamp

    try:
        return datetime.fromtimestamp(Timestamp.parse(text).wall_ms / 1000, UTC)
    except (ClockError, ValueError, OverflowError):
        return None


class OperatorSignInForm(AuthenticationForm):
    """Only the station's operator (a superuser: the account the claim created) signs in."""

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if not user.is_superuser:
            raise forms.ValidationError(
                "This account is not the station's operator. Sign in with the account the "
                "claim created (its username is the owner's callsign).", code="not_operator")


class OperatorSignInView(auth_views.LoginView):
    form_class = OperatorSignInForm
    template_name = "pwa/signin.html"
    redirect_authenticated_user = False

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), **_context(self.request, "signin")}

    def get_default_redirect_url(self) -> str:
        return "/"


signin_page = pwa_page(OperatorSignInView.as_view())
signout_page = pwa_page(auth_views.LogoutView.as_view(next_page="/"))


@never_cache
def service_worker(request: HttpRequest) -> HttpResponse:
    """`/sw.js`: at the root so that its scope is the whole station."""
    body = render_to_string("pwa/sw.js", {})
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/"
    return response


def manifest(request: HttpRequest) -> HttpResponse:
    body = render_to_string("pwa/manifest.webmanifest",
                            {"snap": {"owner": _owner()}})
    return HttpResponse(body, content_type="application/manifest+json")


def _owner() -> str:
    from certificates.selectors import station_get

    return station_get().owner_callsign or ""
