"""Reads: the station singleton, trust roots, the blacklist, certificates."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from cryptography import x509
from django.conf import settings
from django.db import IntegrityError
from django.db.models import QuerySet

from certificates import keyfile
from certificates.errors import CertificateError
from certificates.models import (
    BlacklistEntry,
    Certificate,
    CertificateState,
    OwnerToken,
    Station,
    StationState,
    TrustLevel,
)
from certificates.x509tools import load_certificates, station_id_for

logger = logging.getLogger(__name__)


@functools.cache
def _station_key_cached(path: str):
    return keyfile.load_or_create_ed25519(Path(path))


def station_private_key():
    """The station's Ed25519 private key (created on first use in the data dir, mode 0600)."""
    return _station_key_cached(str(settings.MESHSITE_STATION_KEY_FILE))


def station_public_key_b64() -> str:
    import base64

    return base64.b64encode(keyfile.public_raw(station_private_key())).decode("ascii")


def station_get() -> Station:
    """The station row, created with its key on first use. The key file is the truth: a row
    whose key differs (a restored database beside a new key) is re-keyed and loses its claim."""
    public_b64 = station_public_key_b64()
    station_id = station_id_for(keyfile.public_raw(station_private_key()))
    station = Station.objects.order_by("pk").first()
    if station is None:
        try:
            return Station.objects.create(pk=1, station_id=station_id, public_key=public_b64)
        except IntegrityError:
            station = Station.objects.get(pk=1)
    if station.public_key != public_b64:
        logger.warning("station key changed; the old delegation no longer applies",
                       extra={"old": station.station_id, "new": station_id})
        Station.objects.filter(pk=station.pk).update(
            station_id=station_id, public_key=public_b64, state=StationState.UNCLAIMED,
            delegation_signature="", delegation_nonce="")
        station.refresh_from_db()
    return station


def is_blacklisted(fingerprint: str) -> bool:
    return BlacklistEntry.objects.filter(fingerprint=fingerprint.lower(), effective=True,
                                         lifted_at__isnull=True).exists()


@functools.lru_cache(maxsize=32)
def _root_file(path: str, mtime: float) -> tuple[x509.Certificate, ...]:
    data = Path(path).read_bytes()
    bundle = load_certificates(data)
    return (bundle.certificate, *bundle.chain)


def trust_roots_from_files() -> list[x509.Certificate]:
    roots: list[x509.Certificate] = []
    for name in settings.MESHSITE_TRUST_ROOT_FILES:
        path = Path(name)
        try:
            roots.extend(_root_file(str(path), path.stat().st_mtime))
        except (OSError, CertificateError) as exc:
            logger.error("trust root file unreadable", extra={"path": str(path), "error": str(exc)})
    return roots


def trust_roots() -> list[x509.Certificate]:
    """Configured trust anchors: root certificates in the store plus MESHSITE_TRUST_ROOT_FILES."""
    roots = [x509.load_pem_x509_certificate(pem.encode("ascii")) for pem in
             Certificate.objects.filter(trust_level=TrustLevel.ROOT)
             .exclude(state=CertificateState.BLACKLISTED).values_list("pem", flat=True)]
    return roots + trust_roots_from_files()


def certificate_list(*, trust_level: str | None = None, state: str | None = None,
                     callsign: str | None = None) -> QuerySet[Certificate]:
    queryset = Certificate.objects.all().order_by("-created_at", "-pk")
    if trust_level:
        queryset = queryset.filter(trust_level=trust_level)
    if state:
        queryset = queryset.filter(state=state)
    if callsign:
        queryset = queryset.filter(callsign=callsign.strip().upper())
    return queryset


def certificate_get(fingerprint: str) -> Certificate | None:
    return Certificate.objects.filter(fingerprint=fingerprint.strip().lower()).first()


def certificate_chain(certificate: Certificate) -> list[Certificate]:
    """The stored issuers of `certificate`, nearest first (stops at a loop or after 11)."""
    chain: list[Certificate] = []
    seen = {certificate.pk}
    current = certificate.issuer_certificate
    while current is not None and current.pk not in seen and len(chain) <= 10:
        chain.append(current)
        seen.add(current.pk)
        current = current.issuer_certificate
    return chain


def owner_tokens(callsign: str | None = None) -> QuerySet[OwnerToken]:
    queryset = OwnerToken.objects.filter(revoked_at__isnull=True)
    return queryset.filter(callsign=callsign) if callsign else queryset


def station_can_issue() -> bool:
    station = Station.objects.order_by("pk").first()
    return bool(station and station.ca_certificate and settings.MESHSITE_CA_KEY_FILE.exists())
