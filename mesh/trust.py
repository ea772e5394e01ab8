"""The mesh's view of station identity and trust, all of it delegated to `certificates`.

The mesh never validates a certificate itself: it asks the certificates app (station key,
credential, chain to a trusted root, blacklist). This module is the one place that knows the
certificates app's function names, so the rest of the mesh stays independent of them.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

class TrustRefused(Exception):
    """A station or an entry failed a trust check; `code` as the certificates app names it."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class LocalStation:
    station_id: str
    callsign: str
    fingerprint: str
    credential: dict[str, Any] | None
    withheld: str = ""  # why there is no credential: "" | "unclaimed" | "owner_blacklisted"

    @property
    def identity(self) -> tuple[str, str, str, str, str]:
        """What other stations see of us: when it changes, links and adverts must follow."""
        nonce = (self.credential or {}).get("nonce") or ""
        return (self.station_id, self.callsign, self.fingerprint, str(nonce), self.withheld)

    def withheld_detail(self) -> str:
        if self.withheld == "owner_blacklisted":
            return ("the owner's certificate of this station is blacklisted here, so it cannot "
                    "prove who it is; lift the blacklist entry or hand the station over")
        return "this station has no owner yet and cannot prove who it is; claim it first"


@dataclass(frozen=True)
class ProvenStation:
    station_id: str
    callsign: str
    fingerprint: str
    public_key_b64: str


def local_station() -> LocalStation:
    """This station's id, owner callsign and credential (None while unclaimed)."""
    from certificates import selectors as cert_selectors
    from certificates import services as cert_services

    station = cert_selectors.station_get()
    credential = cert_services.station_credential(station)
    callsign = ""
    fingerprint = ""
    withheld = ""
    if credential:
        callsign = credential.get("callsign") or ""
        fingerprint = station.owner_fingerprint  # of the certificate, stored with the claim
        if is_blacklisted(fingerprint):
            credential, callsign, withheld = None, "", "owner_blacklisted"
    else:
        withheld = "unclaimed"
    return LocalStation(station_id=station.station_id, callsign=callsign,
                        fingerprint=fingerprint, credential=credential, withheld=withheld)


def sign(message: bytes) -> bytes:
    from certificates import services as cert_services

    return cert_services.station_sign(message)


def verify_credential(credential: Any) -> ProvenStation:
    """Check another station's credential: its owner chains to a root we trust, is not
    blacklisted, and delegated this station key. Raises TrustRefused."""
    from certificates import services as cert_services
    from certificates.errors import CertificateError

    if not isinstance(credential, dict):
        raise TrustRefused("unproven", "no station credential was presented")
    try:
        verified = cert_services.station_credential_verify(credential)
    except CertificateError as exc:
        raise TrustRefused(exc.code, exc.detail) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise TrustRefused("malformed", f"station credential is malformed: {exc}") from exc
    public_key_b64 = credential.get("publicKey")
    if not isinstance(public_key_b64, str):
        raise TrustRefused("malformed", "station credential has no publicKey")
    return ProvenStation(station_id=verified.station_id, callsign=verified.callsign,
                         fingerprint=verified.fingerprint, public_key_b64=public_key_b64)


def verify_station_signature(public_key_b64: str, signature: bytes, message: bytes) -> None:
    """Raise TrustRefused('bad_signature') unless `signature` is the key's over `message`."""
    from certificates import services as cert_services
    from certificates.errors import CertificateError

    try:
        cert_services.station_public_verify(public_key_b64=public_key_b64, signature=signature,
                                            message=message)
    except CertificateError as exc:
        raise TrustRefused("bad_signature", exc.detail) from exc
    except (ValueError, TypeError) as exc:
        raise TrustRefused("bad_signature", str(exc)) from exc


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- certificates and blacklist as the mesh syncs them ----------------------------------------

def _chain_of(certificate: Any) -> list[str]:
    chain, seen = [], {certificate.pk}
    current = certificate.issuer_certificate
    while current is not None and current.pk not in seen and len(chain) < 10:
        if current.trust_level == "root":
            break  # every station has its own roots; the receiver must already trust one
        chain.append(current.pem)
        seen.add(current.pk)
        current = current.issuer_certificate
    return chain


def _certificates_to_sync() -> Any:
    from certificates.models import Certificate

    return Certificate.objects.filter(trust_level__in=["peer", "intermediate"],
                                      state__in=["verified", "trusted"])


def certificates_for_sync() -> dict[str, dict[str, Any]]:
    """Our verified non-root certificates, by fingerprint, with the chain up to (not
    including) the root."""
    rows = _certificates_to_sync().select_related("issuer_certificate")
    return {row.fingerprint: {"fingerprint": row.fingerprint, "certificate": row.pem,
                              "chain": _chain_of(row)} for row in rows}


def certificate_fingerprints_for_sync() -> list[str]:
    """Only the fingerprints of `certificates_for_sync` (one query: meshd reads it every
    second to notice a change)."""
    return list(_certificates_to_sync().values_list("fingerprint", flat=True))


def certificate_import(item: dict[str, Any]) -> bool:
    """Add a certificate heard from the mesh if it validates against OUR roots and is not
    blacklisted here. Returns True when it was new and added."""
    from certificates import services as cert_services
    from certificates.errors import CertificateError
    from certificates.models import Certificate

    pem, chain = item.get("certificate"), item.get("chain") or []
    if not isinstance(pem, str) or len(pem) > 10_000 or not isinstance(chain, list) or len(
            chain) > 10 or not all(isinstance(c, str) and len(c) <= 10_000 for c in chain):
        return False
    fingerprint = item.get("fingerprint")
    if isinstance(fingerprint, str) and Certificate.objects.filter(
            fingerprint=fingerprint.lower()).exists():
        return False
    try:
        cert_services.certificate_add(certificate=pem, chain=chain, trust_level="peer",
                                      source="mesh")
    except CertificateError as exc:
        if exc.code != "already_known":
            import logging

            logging.getLogger(__name__).info("mesh certificate not added", extra={
                "fingerprint": fingerprint, "error": exc.code, "detail": exc.detail})
        return False
    return True


def blacklist_local() -> list[tuple[str, str]]:
    """Our own effective blacklist entries (not learnt from the mesh): (fingerprint, reason)."""
    from certificates.models import BlacklistEntry

    rows = BlacklistEntry.objects.filter(effective=True, lifted_at__isnull=True)\
        .exclude(source="mesh").order_by("created_at")
    return [(row.fingerprint, row.reason) for row in rows]


def is_blacklisted(fingerprint: str) -> bool:
    from certificates import selectors as cert_selectors

    return bool(fingerprint) and cert_selectors.is_blacklisted(fingerprint)


def blacklist_fingerprints() -> list[str]:
    from certificates.models import BlacklistEntry

    return list(BlacklistEntry.objects.filter(effective=True, lifted_at__isnull=True)
                .values_list("fingerprint", flat=True))


def blacklist_apply(fingerprint: str, reason: str, *, signer: str = "", signature: str = "",
                    effective: bool = True, created_by: str = "") -> None:
    """Blacklist a certificate here because a trusted station said so (effective), or file the
    claim as a report for the owner to review (not effective)."""
    from certificates import services as cert_services

    cert_services.certificate_blacklist(fingerprint=fingerprint, reason=reason,
                                        created_by=created_by, source="mesh",
                                        signed_by_station=signer, signature=signature,
                                        effective=effective)


def credential_issued(credential: dict[str, Any], fingerprint: str, signer: str) -> str | None:
    """Why the station `signer` may blacklist the certificate `fingerprint` as its issuer even
    when we do not trust its root, or None when it may: the credential is `signer`'s own (its
    station id derives from its key), its owner certificate is the direct issuer of that
    certificate (issuer name and signature checked), and the owner delegated the station key.
    Returns the reason for a refusal, for the log and the report."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    from certificates import services as cert_services
    from certificates.errors import CertificateError
    from certificates.models import Certificate
    from certificates.x509tools import station_id_for

    target = Certificate.objects.filter(fingerprint=fingerprint).first()
    if target is None:
        return "the blacklisted certificate is not known here, so its issuer cannot be checked"
    fields = ("stationId", "publicKey", "certificate", "nonce", "delegation")
    if any(not isinstance(credential.get(name), str) for name in fields):
        return "the signer's credential lacks " + ", ".join(
            name for name in fields if not isinstance(credential.get(name), str))
    if credential["stationId"] != signer:
        return f"the credential is for station {credential['stationId']}, not the signer {signer}"
    try:
        raw_key = base64.b64decode(credential["publicKey"], validate=True)
    except ValueError:
        return "the credential's publicKey is not base64"
    if station_id_for(raw_key) != signer:
        return "the signer's station id does not belong to the credential's key"
    try:
        owner = x509.load_pem_x509_certificate(credential["certificate"].encode())
        child = x509.load_pem_x509_certificate(target.pem.encode())
    except ValueError as exc:
        return f"a certificate does not parse: {exc}"
    try:
        child.verify_directly_issued_by(owner)
    except (ValueError, TypeError, InvalidSignature):
        return (f"the signer's owner certificate ({owner.subject.rfc4514_string()}) did not "
                "issue the blacklisted certificate")
    try:
        delegation = base64.b64decode(credential["delegation"], validate=True)
        message = cert_services.delegation_message(
            station_id=signer, public_key_b64=credential["publicKey"],
            nonce=credential["nonce"])
        cert_services.signature_verify(public_key=owner.public_key(), signature=delegation,
                                       message=message)
    except (ValueError, CertificateError):
        return "the issuer's certificate did not delegate the signer's station key"
    return None
