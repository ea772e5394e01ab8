"""Writes and verifications of the certificates app: licenses, proofs, the station's identity,
the claim, owner tokens, trust roots, the blacklist and the small CA.

Other apps call these (see docs/certificates.md): `license_verify`, `signature_verify`,
`nonce_issue` / `nonce_consume`, `station_sign`, `station_credential`,
`station_credential_verify`, `station_public_verify`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from certificates import keyfile
from certificates.errors import CertificateError
from certificates.models import (
    BlacklistEntry,
    Certificate,
    CertificateSource,
    CertificateState,
    IssuedCertificate,
    OwnerToken,
    Station,
    StationState,
    TrustLevel,
)
from certificates.selectors import (
    is_blacklisted,
    station_get,
    station_private_key,
    trust_roots,
)
from certificates.x509tools import (
    LicenseInfo,
    build_certificate,
    csr_callsign,
    decode_signature,
    fingerprint,
    load_certificates,
    load_chain,
    load_csr,
    normalize_callsign,
    public_key_matches,
    read_license,
    station_id_for,
    to_pem,
    validate_chain,
    verify_signature,
)
from certificates.x509tools import delegation_message as _delegation_message
from meshsite.redisconn import get_redis, rate_window_take

logger = logging.getLogger(__name__)

NONCE_PREFIX = "certificates:nonce:"
ISSUE_RATE_PREFIX = "certificates:issued:"
_PURPOSE_RE = re.compile(r"^[a-z0-9_.-]{1,40}$")
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
TOKEN_PREFIX = "mso_"  # noqa: S105 - a prefix, not a secret


# --- licenses -----------------------------------------------------------------------------------


@dataclass
class VerifiedLicense:
    """A license certificate that chained to one of our roots."""

    callsign: str
    fingerprint: str
    license_class: str
    can_issue: bool
    public_key: Any
    certificate: x509.Certificate
    chain: list[x509.Certificate]  # validated issuers, nearest first, root last
    expired: bool = False
    info: LicenseInfo | None = None
    presented_chain: list[x509.Certificate] = field(default_factory=list)


def _as_certificate(value: str | bytes | x509.Certificate) -> tuple[x509.Certificate,
                                                                   list[x509.Certificate]]:
    if isinstance(value, x509.Certificate):
        return value, []
    bundle = load_certificates(value)
    return bundle.certificate, bundle.chain


def license_verify(*, certificate: str | bytes | x509.Certificate,
                   chain: list[str | bytes | x509.Certificate] | None = None,
                   callsign: str | None = None) -> VerifiedLicense:
    """Validate a license certificate (+ chain) against our trust roots and blacklist.

    `certificate` may be PEM (possibly with its chain appended), DER, or a parsed certificate.
    With `callsign`, the certificate must be for that callsign. Raises `CertificateError`."""
    if chain is not None and not isinstance(chain, list | tuple):
        raise CertificateError("malformed", "The chain must be a list of PEM certificates.")
    cert, bundled = _as_certificate(certificate)
    extra = [c for c in (chain or []) if isinstance(c, x509.Certificate)]
    texts = [c for c in (chain or []) if not isinstance(c, x509.Certificate)]
    for item in texts:
        if not isinstance(item, str | bytes):
            raise CertificateError("malformed", "Each chain item must be PEM text.")
    presented = bundled + extra + load_chain(texts)
    info = read_license(cert)
    wanted = normalize_callsign(callsign) if callsign is not None else None
    validated = validate_chain(cert, presented, trust_roots(), now=timezone.now(),
                               allow_expired=settings.MESHSITE_ALLOW_EXPIRED_CERTIFICATES,
                               is_blacklisted=is_blacklisted)
    if not info.callsign:
        raise CertificateError(
            "bad_callsign", "The certificate carries no callsign (LoTW attribute "
            "1.3.6.1.4.1.12348.1.1, the Meshsite license extension, or a callsign CN).")
    cert_callsign = normalize_callsign(info.callsign)
    if wanted is not None and wanted != cert_callsign:
        raise CertificateError(
            "callsign_mismatch", f"The certificate is for {cert_callsign}, not {wanted}.")
    return VerifiedLicense(
        callsign=cert_callsign, fingerprint=fingerprint(cert), license_class=info.license_class,
        can_issue=info.can_issue, public_key=cert.public_key(), certificate=cert,
        chain=validated.path[1:], expired=validated.expired, info=info,
        presented_chain=presented)


def signature_verify(*, public_key: Any, signature: bytes, message: bytes) -> None:
    """RSA PKCS#1 v1.5 / PSS (SHA-256), ECDSA (SHA-256), Ed25519; raises `bad_proof`."""
    verify_signature(public_key, signature, message)


# --- nonces -------------------------------------------------------------------------------------


def nonce_issue(*, purpose: str, ttl: int | None = None) -> str:
    """A random single-use nonce for `purpose`, stored in Redis for `ttl` seconds."""
    if not _PURPOSE_RE.match(purpose or ""):
        raise ValueError(f"bad nonce purpose {purpose!r}")
    nonce = secrets.token_urlsafe(24)
    get_redis().set(f"{NONCE_PREFIX}{purpose}:{nonce}", "1",
                    ex=ttl or settings.MESHSITE_NONCE_TTL)
    return nonce


def nonce_consume(*, purpose: str, nonce: str) -> bool:
    """True once for a nonce issued for `purpose` and not expired; atomic (GETDEL)."""
    if not isinstance(nonce, str) or not _NONCE_RE.match(nonce) or not _PURPOSE_RE.match(
            purpose or ""):
        return False
    return get_redis().getdel(f"{NONCE_PREFIX}{purpose}:{nonce}") is not None


# --- the station's own key and credential --------------------------------------------------------


def delegation_message(*, station_id: str, public_key_b64: str, nonce: str) -> bytes:
    """The canonical bytes an owner signs to let a station key speak for their callsign."""
    return _delegation_message(station_id=station_id, public_key_b64=public_key_b64, nonce=nonce)


def station_sign(message: bytes) -> bytes:
    """Ed25519 signature of `message` with the station key."""
    return station_private_key().sign(message)


def station_credential(station: Station | None = None) -> dict | None:
    """This station's credential for other stations (of `station`, the row just read, if
    given); None while unclaimed."""
    station = station or station_get()
    if station.state == StationState.UNCLAIMED or not station.delegation_signature:
        return None
    return {
        "stationId": station.station_id,
        "publicKey": station.public_key,
        "callsign": station.owner_callsign,
        "certificate": station.owner_certificate,
        "chain": list(station.owner_chain),
        "nonce": station.delegation_nonce,
        "delegation": station.delegation_signature,
    }


@dataclass
class VerifiedStation:
    station_id: str
    callsign: str
    public_key: ed25519.Ed25519PublicKey
    fingerprint: str
    license: VerifiedLicense


def _ed25519_from_b64(value: Any) -> tuple[ed25519.Ed25519PublicKey, bytes]:
    if not isinstance(value, str) or len(value) > 64:
        raise CertificateError("bad_credential", "publicKey must be base64 of 32 raw bytes.")
    try:
        raw = base64.b64decode(value, validate=True)
        return ed25519.Ed25519PublicKey.from_public_bytes(raw), raw
    except ValueError as exc:
        raise CertificateError(
            "bad_credential", "publicKey is not a base64 raw Ed25519 public key.") from exc


def station_credential_verify(credential: dict) -> VerifiedStation:
    """Check another station's credential: its owner's certificate chains to a root we trust and
    is not blacklisted, and the owner signed this station key. Raises `CertificateError`."""
    if not isinstance(credential, dict):
        raise CertificateError("bad_credential", "A station credential is a JSON object.")
    required = ("stationId", "publicKey", "callsign", "certificate", "nonce", "delegation")
    missing = [name for name in required if not isinstance(credential.get(name), str)]
    if missing:
        raise CertificateError(
            "bad_credential", f"The credential lacks (or has non-string) {', '.join(missing)}.")
    public_key, raw = _ed25519_from_b64(credential["publicKey"])
    if station_id_for(raw) != credential["stationId"]:
        raise CertificateError(
            "bad_credential", "stationId does not belong to publicKey (first 16 bytes of its "
            "SHA-256, hex).")
    chain = credential.get("chain") or []
    if not isinstance(chain, list):
        raise CertificateError("bad_credential", "chain must be a list of PEM certificates.")
    verified = license_verify(certificate=credential["certificate"], chain=chain,
                              callsign=credential["callsign"])
    message = delegation_message(station_id=credential["stationId"],
                                 public_key_b64=credential["publicKey"],
                                 nonce=credential["nonce"])
    signature_verify(public_key=verified.public_key,
                     signature=decode_signature(credential["delegation"]), message=message)
    return VerifiedStation(station_id=credential["stationId"], callsign=verified.callsign,
                           public_key=public_key, fingerprint=verified.fingerprint,
                           license=verified)


def station_public_verify(*, public_key_b64: str, signature: bytes, message: bytes) -> None:
    """Verify an Ed25519 signature by another station's key; raises `bad_proof`."""
    try:
        key, _ = _ed25519_from_b64(public_key_b64)
        key.verify(signature, message)
    except (InvalidSignature, CertificateError) as exc:
        raise CertificateError("bad_proof", "The station signature does not verify.") from exc


# --- the certificate store -----------------------------------------------------------------------


def _fields(cert: x509.Certificate) -> dict[str, Any]:
    info = read_license(cert)
    return {
        "serial": format(cert.serial_number, "x"),
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "callsign": info.callsign or "",
        "license_class": info.license_class,
        "can_issue": info.can_issue,
        "is_ca": info.is_ca,
        "not_before": cert.not_valid_before_utc,
        "not_after": cert.not_valid_after_utc,
        "qso_not_before": info.qso_not_before,
        "qso_not_after": info.qso_not_after,
        "dxcc": info.dxcc,
        "pem": to_pem(cert),
    }


def _store_one(cert: x509.Certificate, *, trust_level: str, state: str, source: str,
               issuer: Certificate | None) -> tuple[Certificate, bool]:
    fp = fingerprint(cert)
    existing = Certificate.objects.filter(fingerprint=fp).first()
    if existing is not None:
        changed = []
        if issuer is not None and existing.issuer_certificate_id is None and issuer.pk != \
                existing.pk:
            existing.issuer_certificate = issuer
            changed.append("issuer_certificate")
        rank = {TrustLevel.PEER: 0, TrustLevel.INTERMEDIATE: 1, TrustLevel.ROOT: 2}
        if rank[trust_level] > rank[existing.trust_level]:
            existing.trust_level = trust_level
            changed.append("trust_level")
        if existing.state == CertificateState.PENDING and state != CertificateState.PENDING:
            existing.state = state
            changed.append("state")
        if changed:
            existing.save(update_fields=[*changed, "updated_at"])
        return existing, False
    created = Certificate.objects.create(fingerprint=fp, trust_level=trust_level, state=state,
                                         source=source, issuer_certificate=issuer, **_fields(cert))
    return created, True


def _store_path(path: list[x509.Certificate], *, trust_level: str, source: str,
                state: str = CertificateState.VERIFIED) -> tuple[Certificate, bool]:
    """Store a validated path (end first, root last), linking each certificate to its issuer."""
    issuer: Certificate | None = None
    created = False
    for depth in range(len(path) - 1, -1, -1):
        cert = path[depth]
        if depth == len(path) - 1 and len(path) > 1:
            level, item_state = TrustLevel.ROOT, CertificateState.TRUSTED
            item_source = CertificateSource.SETTINGS
        elif depth == 0:
            level, item_state, item_source = trust_level, state, source
        else:
            level, item_state, item_source = TrustLevel.INTERMEDIATE, CertificateState.VERIFIED, \
                source
        issuer, created = _store_one(cert, trust_level=level, state=item_state,
                                     source=item_source, issuer=issuer)
    if issuer is None:
        raise CertificateError("malformed", "Empty certificate path.")
    return issuer, created


def trustroot_add(*, certificate: str | bytes | x509.Certificate,
                  source: str = CertificateSource.CONSOLE) -> tuple[Certificate, bool]:
    """Add a trust anchor: a self-signed CA certificate. Returns (row, created)."""
    cert, extra = _as_certificate(certificate)
    if extra:
        raise CertificateError(
            "malformed", "Add one root at a time (the file holds several certificates).")
    info = read_license(cert)
    if not info.is_ca:
        raise CertificateError("not_a_ca", "A trust root must be a CA certificate "
                               "(basicConstraints CA:TRUE).")
    if cert.issuer != cert.subject:
        raise CertificateError(
            "untrusted_root", "A trust root must be self-signed; this one is issued by "
            f"'{cert.issuer.rfc4514_string()}'. Add that issuer as the root instead.")
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise CertificateError(
            "bad_signature", "The root's self-signature does not verify.") from exc
    fp = fingerprint(cert)
    if is_blacklisted(fp):
        raise CertificateError("blacklisted", f"{fp} is blacklisted; lift it first.")
    with transaction.atomic():
        row, created = _store_one(cert, trust_level=TrustLevel.ROOT,
                                  state=CertificateState.TRUSTED, source=source, issuer=None)
        if not created and (row.trust_level != TrustLevel.ROOT or row.state !=
                            CertificateState.TRUSTED):
            row.trust_level = TrustLevel.ROOT
            row.state = CertificateState.TRUSTED
            row.save(update_fields=["trust_level", "state", "updated_at"])
    return row, created


def trustroot_remove(*, fingerprint: str) -> bool:
    """Stop trusting a root (the row stays, as a peer record). False if it was not a root."""
    updated = Certificate.objects.filter(fingerprint=fingerprint.strip().lower(),
                                         trust_level=TrustLevel.ROOT).update(
        trust_level=TrustLevel.INTERMEDIATE, state=CertificateState.VERIFIED,
        updated_at=timezone.now())
    return updated == 1


def certificate_add(*, certificate: str | bytes, chain: list[str] | None = None,
                    trust_level: str = TrustLevel.PEER,
                    source: str = CertificateSource.API) -> tuple[Certificate, bool]:
    """Add a certificate after validating its chain. Roots go through `trustroot_add`."""
    if trust_level == TrustLevel.ROOT:
        return trustroot_add(certificate=certificate, source=source)
    if trust_level not in (TrustLevel.INTERMEDIATE, TrustLevel.PEER):
        raise CertificateError("bad_request", "trustLevel must be root, intermediate or peer.")
    verified = license_verify(certificate=certificate, chain=chain)
    if trust_level == TrustLevel.INTERMEDIATE and not (verified.info and verified.info.is_ca):
        raise CertificateError(
            "not_a_ca", "Only a CA certificate (basicConstraints CA:TRUE) can be added as an "
            "intermediate.")
    with transaction.atomic():
        return _store_path([verified.certificate, *verified.chain], trust_level=trust_level,
                           source=source)


def certificate_trust(*, fingerprint: str) -> int:
    return Certificate.objects.filter(fingerprint=fingerprint).exclude(
        state=CertificateState.BLACKLISTED).update(state=CertificateState.TRUSTED,
                                                  updated_at=timezone.now())


# --- blacklist ------------------------------------------------------------------------------------


def certificate_blacklist(*, fingerprint: str, reason: str, created_by: str = "",
                          source: str = CertificateSource.API, signed_by_station: str = "",
                          signature: str = "", effective: bool = True) -> BlacklistEntry:
    """Blacklist a fingerprint (known or not). Mesh reports arrive with `effective=False`."""
    fp = fingerprint.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", fp):
        raise CertificateError("malformed", "A fingerprint is 64 hex characters (SHA-256).")
    with transaction.atomic():
        entry = BlacklistEntry.objects.create(
            fingerprint=fp, reason=(reason or "")[:2000], created_by=created_by[:150],
            source=source, signed_by_station=signed_by_station, signature=signature,
            effective=effective)
        if effective:
            Certificate.objects.filter(fingerprint=fp).update(
                state=CertificateState.BLACKLISTED, updated_at=timezone.now())
    logger.info("certificate blacklisted", extra={"fingerprint": fp, "by": created_by,
                                                  "effective": effective})
    return entry


def blacklist_lift(*, fingerprint: str, lifted_by: str = "") -> int:
    """Lift every active entry for `fingerprint`; the certificate goes back to verified."""
    fp = fingerprint.strip().lower()
    with transaction.atomic():
        count = BlacklistEntry.objects.filter(fingerprint=fp, lifted_at__isnull=True).update(
            lifted_at=timezone.now(), lifted_by=lifted_by[:150])
        Certificate.objects.filter(fingerprint=fp, state=CertificateState.BLACKLISTED).update(
            state=CertificateState.VERIFIED, updated_at=timezone.now())
    return count


# --- owner tokens and the admin user ------------------------------------------------------------


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def owner_token_issue(*, callsign: str, label: str = "") -> str:
    """A new bearer token for the owner; returns the token (only its hash is stored)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    OwnerToken.objects.create(key_hash=_hash_token(token), prefix=token[:10], callsign=callsign,
                              label=label[:60])
    return token


def owner_token_revoke(*, token: str | None = None, callsign: str | None = None) -> int:
    """Revoke one token, or every token of `callsign` (or of everyone, with neither)."""
    queryset = OwnerToken.objects.filter(revoked_at__isnull=True)
    if token is not None:
        queryset = queryset.filter(key_hash=_hash_token(token))
    elif callsign is not None:
        queryset = queryset.filter(callsign=callsign)
    return queryset.update(revoked_at=timezone.now())


def owner_token_rotate(*, label: str = "rotated") -> str:
    """Revoke every owner token and return a new one for the current owner."""
    station = station_get()
    if station.state == StationState.UNCLAIMED:
        raise CertificateError("not_claimed", "The station has no owner yet: claim it first.")
    with transaction.atomic():
        owner_token_revoke()
        return owner_token_issue(callsign=station.owner_callsign, label=label)


def owner_token_authenticate(token: str) -> OwnerToken | None:
    """The live token row for the current owner, or None."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = OwnerToken.objects.filter(key_hash=_hash_token(token), revoked_at__isnull=True).first()
    if row is None:
        return None
    station = station_get()
    if station.state == StationState.UNCLAIMED or row.callsign != station.owner_callsign:
        return None
    now = timezone.now()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        OwnerToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row


def owner_user_ensure(*, callsign: str, reset_password: bool = True) -> tuple[Any, str | None]:
    """The owner's Django superuser (username = callsign), active; other owners' accounts made by
    a claim are deactivated. Returns (user, new one-time password or None)."""
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=callsign)
    user.is_staff = True
    user.is_superuser = True
    user.is_active = True
    password = None
    if reset_password:
        password = secrets.token_urlsafe(12)
        user.set_password(password)
    user.save()
    return user, password


def owner_password_reset() -> tuple[str, str]:
    """A new admin password for the current owner: (username, password)."""
    station = station_get()
    if station.state == StationState.UNCLAIMED:
        raise CertificateError("not_claimed", "The station has no owner yet: claim it first.")
    _, password = owner_user_ensure(callsign=station.owner_callsign)
    return station.owner_callsign, password or ""


# --- the claim ----------------------------------------------------------------------------------


@dataclass
class ClaimResult:
    station: Station
    owner: str
    access_token: str
    admin_username: str
    admin_password: str
    license: VerifiedLicense


def claim_message(nonce: str) -> bytes:
    """What a claimant signs for this station with `nonce` (the delegation message)."""
    station = station_get()
    return delegation_message(station_id=station.station_id, public_key_b64=station.public_key,
                              nonce=nonce)


def _check_metadata(metadata: Any) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise CertificateError("bad_request", "station.metadata must be a JSON object.")
    if len(json.dumps(metadata)) > 4096:
        raise CertificateError("too_large", "station.metadata is larger than 4 KB.")
    return metadata


def station_claim(*, certificate: str | bytes, chain: list[str] | None, callsign: str,
                  nonce: str, signature: str | bytes, metadata: dict | None = None,
                  nonce_checked: bool = False, handover: bool = False,
                  source: str = CertificateSource.CLAIM) -> ClaimResult:
    """Claim the station for the licensed operator who signed `claim_message(nonce)`.

    Exactly one claim wins: the row moves from unclaimed to claimed in one conditional UPDATE.
    `nonce_checked` is for the console, which makes its own nonce. `handover` (console only)
    moves an already claimed station to another callsign and revokes the old owner's tokens."""
    station = station_get()
    if station.state != StationState.UNCLAIMED and not handover:
        raise CertificateError(
            "already_claimed", f"This station already belongs to {station.owner_callsign}.")
    if handover and station.state == StationState.UNCLAIMED:
        raise CertificateError("not_claimed", "Nothing to hand over: the station is unclaimed.")
    callsign = normalize_callsign(callsign)
    metadata = _check_metadata(metadata)
    if not isinstance(nonce, str) or not nonce:
        raise CertificateError("bad_nonce", "A nonce from POST /api/claim-station/nonce is "
                               "required.")
    raw_signature = decode_signature(signature)
    verified = license_verify(certificate=certificate, chain=chain, callsign=callsign)
    if not nonce_checked and not nonce_consume(purpose="claim", nonce=nonce):
        raise CertificateError(
            "bad_nonce", "The nonce is unknown, expired or already used: get a fresh one from "
            "POST /api/claim-station/nonce.")
    message = delegation_message(station_id=station.station_id,
                                 public_key_b64=station.public_key, nonce=nonce)
    signature_verify(public_key=verified.public_key, signature=raw_signature, message=message)
    # Intermediates only: a verifier supplies the root from its own trust store.
    chain_pems = [to_pem(c) for c in verified.chain[:-1]]
    values = {
        "state": StationState.CLAIMED,
        "owner_callsign": callsign,
        "owner_certificate": to_pem(verified.certificate),
        "owner_chain": chain_pems,
        "owner_fingerprint": verified.fingerprint,
        "delegation_nonce": nonce,
        "delegation_signature": base64.b64encode(raw_signature).decode("ascii"),
        "metadata": metadata,
        "claimed_at": timezone.now(),
        "updated_at": timezone.now(),
    }
    with transaction.atomic():
        if handover:
            previous = station.owner_callsign
            updated = Station.objects.filter(pk=station.pk).exclude(
                state=StationState.UNCLAIMED).update(**values)
        else:
            previous = None
            # The race: many claimants passed every check above; only the UPDATE that still
            # finds the row unclaimed wins, the others see 0 rows and are refused.
            updated = Station.objects.filter(pk=station.pk, state=StationState.UNCLAIMED).update(
                **values)
        if updated != 1:
            raise CertificateError("already_claimed", "Another operator claimed the station "
                                   "first.")
        _store_path([verified.certificate, *verified.chain], trust_level=TrustLevel.PEER,
                    source=source, state=CertificateState.TRUSTED)
        owner_token_revoke()
        token = owner_token_issue(callsign=callsign, label="claim" if not handover else "handover")
        if previous and previous != callsign:
            get_user_model().objects.filter(username=previous).update(is_active=False)
        _, password = owner_user_ensure(callsign=callsign)
    station.refresh_from_db()
    logger.info("station claimed", extra={"callsign": callsign, "station": station.station_id,
                                          "handover": handover})
    return ClaimResult(station=station, owner=callsign, access_token=token,
                       admin_username=callsign, admin_password=password or "", license=verified)


# --- the certificate authority ------------------------------------------------------------------


def ca_configure(*, certificate: str | bytes, chain: list[str] | None, private_key: Any) -> Station:
    """Make this station a CA: a CA-capable license certificate that validates, and its key
    (stored PKCS#8 in MESHSITE_CA_KEY_FILE with mode 0600)."""
    verified = license_verify(certificate=certificate, chain=chain)
    info = verified.info
    if not (info and info.is_ca):
        raise CertificateError("not_a_ca", "The certificate is not a CA (basicConstraints "
                               "CA:TRUE is needed to issue).")
    try:
        usage = verified.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            raise CertificateError("not_a_ca", "The certificate's keyUsage lacks keyCertSign.")
    except x509.ExtensionNotFound:
        pass
    if not public_key_matches(private_key, verified.certificate):
        raise CertificateError("bad_key", "The private key does not belong to the certificate.")
    pem_key = private_key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    keyfile.replace_secret_file(settings.MESHSITE_CA_KEY_FILE, pem_key)
    station = station_get()
    with transaction.atomic():
        _store_path([verified.certificate, *verified.chain], trust_level=TrustLevel.INTERMEDIATE,
                    source=CertificateSource.CONSOLE, state=CertificateState.TRUSTED)
        station.ca_certificate = to_pem(verified.certificate)
        station.ca_chain = [to_pem(c) for c in verified.chain]
        station.ca_fingerprint = verified.fingerprint
        station.save(update_fields=["ca_certificate", "ca_chain", "ca_fingerprint", "updated_at"])
    return station


def ca_remove() -> None:
    station = station_get()
    station.ca_certificate = ""
    station.ca_chain = []
    station.ca_fingerprint = ""
    station.save(update_fields=["ca_certificate", "ca_chain", "ca_fingerprint", "updated_at"])
    settings.MESHSITE_CA_KEY_FILE.unlink(missing_ok=True)


def _issue_rate_reserve(ca_fingerprint: str) -> None:
    """Take one of the CA's issuance slots (sliding window in Redis) or raise `rate_limited`."""
    window = settings.MESHSITE_CA_ISSUE_WINDOW
    retry = rate_window_take(key=ISSUE_RATE_PREFIX + ca_fingerprint, window=window,
                             limit=settings.MESHSITE_CA_ISSUE_LIMIT)
    if retry:
        raise CertificateError(
            "rate_limited", f"This CA issued {settings.MESHSITE_CA_ISSUE_LIMIT} certificates in "
            f"the last {window} s; try again in {retry} s.", retry_after=retry)


def _ca_material() -> tuple[Station, x509.Certificate, list[x509.Certificate], Any]:
    station = station_get()
    key_path = settings.MESHSITE_CA_KEY_FILE
    if not station.ca_certificate or not key_path.exists():
        raise CertificateError(
            "not_a_ca_station", "This station holds no CA-capable certificate and key: the owner "
            "configures one with `manage.py castation`.")
    ca_cert = x509.load_pem_x509_certificate(station.ca_certificate.encode("ascii"))
    ca_chain = [x509.load_pem_x509_certificate(p.encode("ascii")) for p in station.ca_chain]
    ca_key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    return station, ca_cert, ca_chain, ca_key


@dataclass
class IssueResult:
    certificate: x509.Certificate
    chain: list[x509.Certificate]
    record: IssuedCertificate


def certificate_issue(*, csr: str | bytes, proof_certificate: str | bytes,
                      proof_chain: list[str] | None, proof_signature: str | bytes,
                      license_class: str | None = None, can_issue: bool = False,
                      requested_by: str = "", remote_addr: str = "") -> IssueResult:
    """Issue a license certificate from a CSR. The requester proves their license: a certificate
    chaining to our roots for the CSR's callsign, and its key's signature over the CSR (DER)."""
    station, ca_cert, ca_chain, ca_key = _ca_material()
    csr_obj = load_csr(csr)
    callsign = csr_callsign(csr_obj)
    if not callsign:
        raise CertificateError(
            "bad_csr", "The CSR subject names no callsign (attribute 1.3.6.1.4.1.12348.1.1 or "
            "a callsign CN).")
    callsign = normalize_callsign(callsign)
    proof = license_verify(certificate=proof_certificate, chain=proof_chain)
    signature_verify(public_key=proof.public_key, signature=decode_signature(proof_signature),
                     message=csr_obj.public_bytes(serialization.Encoding.DER))
    if proof.callsign != callsign:
        raise CertificateError(
            "callsign_mismatch", f"The CSR is for {callsign} but the proof of license is for "
            f"{proof.callsign}.")
    if can_issue and not proof.can_issue:
        raise CertificateError(
            "not_authorised", "Issuing rights are granted only to holders of issuing rights.")
    try:
        ca_constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound as exc:
        raise CertificateError("not_a_ca_station", "The station's CA certificate is not a CA."
                               ) from exc
    if can_issue and ca_constraints.path_length == 0:
        raise CertificateError(
            "path_length_exceeded", "This station's CA may not issue CA certificates "
            "(pathLenConstraint 0).")
    if is_blacklisted(station.ca_fingerprint):
        raise CertificateError("not_a_ca_station", "The station's CA certificate is blacklisted.")
    klass = license_class if license_class is not None else proof.license_class
    if not isinstance(klass, str) or len(klass) > 40:
        raise CertificateError("bad_request", "licenseClass must be text of at most 40 chars.")
    now = timezone.now()
    not_after = min(now + dt.timedelta(days=settings.MESHSITE_CA_VALIDITY_DAYS),
                    ca_cert.not_valid_after_utc)
    if not_after <= now:
        raise CertificateError("not_a_ca_station", "The station's CA certificate has expired.")
    _issue_rate_reserve(station.ca_fingerprint)
    issued = build_certificate(csr_obj, ca_cert=ca_cert, ca_key=ca_key, callsign=callsign,
                               license_class=klass, can_issue=can_issue,
                               not_before=now - dt.timedelta(minutes=5), not_after=not_after)
    with transaction.atomic():
        ca_row = Certificate.objects.filter(fingerprint=station.ca_fingerprint).first()
        _store_one(issued, trust_level=TrustLevel.INTERMEDIATE if can_issue else TrustLevel.PEER,
                   state=CertificateState.VERIFIED, source=CertificateSource.ISSUED,
                   issuer=ca_row)
        record = IssuedCertificate.objects.create(
            fingerprint=fingerprint(issued), serial=format(issued.serial_number, "x"),
            callsign=callsign, license_class=klass, can_issue=can_issue,
            not_before=issued.not_valid_before_utc, not_after=issued.not_valid_after_utc,
            ca_fingerprint=station.ca_fingerprint, proof_fingerprint=proof.fingerprint,
            requested_by=requested_by[:150], remote_addr=remote_addr[:64], pem=to_pem(issued))
    logger.info("certificate issued", extra={"callsign": callsign, "serial": record.serial})
    return IssueResult(certificate=issued, chain=[ca_cert, *ca_chain], record=record)
