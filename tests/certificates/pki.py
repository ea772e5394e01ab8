"""Certificates built in code for the tests: a LoTW-shaped chain exactly as the spec describes
(raw ASCII extensions, RSA-1024 user certificate, a production CA that expired after issuing it,
no SAN) and Meshsite chains with Ed25519 and EC keys. RSA keys are cached for the session."""

from __future__ import annotations

import base64
import datetime as dt
import functools
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from certificates.x509tools import (
    LOTW_CALLSIGN_OID,
    LOTW_DXCC_OID,
    LOTW_QSO_NOT_AFTER_OID,
    LOTW_QSO_NOT_BEFORE_OID,
    MESHSITE_LICENSE_OID,
    encode_license_extension,
    fingerprint,
    sign_message,
    to_pem,
)

__all__ = ["fingerprint", "to_pem"]

NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)

ARRL = [
    x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
    x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CT"),
    x509.NameAttribute(NameOID.LOCALITY_NAME, "Newington"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "American Radio Relay League"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Logbook of the World"),
]


@functools.cache
def rsa_key(name: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """RSA generation is slow: one key per name for the whole session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _hash_for(key) -> hashes.HashAlgorithm | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def make_cert(*, subject: x509.Name, key, issuer_name: x509.Name | None = None, issuer_key=None,
              ca: bool = False, path_length: int | None = None,
              not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None, extensions: list | None = None,
              key_usage: x509.KeyUsage | None = None, serial: int | None = None,
              basic_constraints: bool = True) -> x509.Certificate:
    issuer_name = issuer_name or subject
    issuer_key = issuer_key or key
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(serial or x509.random_serial_number())
               .not_valid_before(not_before or NOW - 30 * DAY)
               .not_valid_after(not_after or NOW + 365 * DAY))
    if basic_constraints:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    for ext in extensions or []:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(issuer_key, _hash_for(issuer_key))


def ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                         crl_sign=True, encipher_only=False, decipher_only=False)


def user_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=True,
                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                         crl_sign=False, encipher_only=False, decipher_only=False)


def name(cn: str, callsign: str | None = None) -> x509.Name:
    attrs = []
    if callsign:
        attrs.append(x509.NameAttribute(LOTW_CALLSIGN_OID, callsign))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


@dataclass
class Identity:
    """A certificate with its key and the chain above it (root last)."""

    cert: x509.Certificate
    key: object
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def pem(self) -> str:
        return to_pem(self.cert)

    @property
    def chain_pem(self) -> list[str]:
        return [to_pem(c) for c in self.chain]

    def sign(self, message: bytes) -> str:
        return base64.b64encode(sign_message(self.key, message)).decode("ascii")


@functools.cache
def lotw_root() -> Identity:
    key = rsa_key("lotw-root")
    subject = x509.Name([*ARRL, x509.NameAttribute(NameOID.COMMON_NAME,
                                                   "Logbook of the World Root CA"),
                         x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "arrl.org"),
                         x509.NameAttribute(NameOID.EMAIL_ADDRESS, "lotw@arrl.org")])
    cert = make_cert(subject=subject, key=key, ca=True, not_before=NOW - 4000 * DAY,
                     not_after=NOW + 4000 * DAY, key_usage=ca_usage(), serial=1)
    return Identity(cert, key)


@functools.cache
def lotw_production(expired: bool = True) -> Identity:
    """The Production CA, RSA-2048, CA:TRUE; by default it expired 90 days ago (after issuing)."""
    root = lotw_root()
    key = rsa_key("lotw-production")
    subject = x509.Name([*ARRL, x509.NameAttribute(NameOID.COMMON_NAME,
                                                   "Logbook of the World Production CA"),
                         x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "arrl.org"),
                         x509.NameAttribute(NameOID.EMAIL_ADDRESS, "lotw@arrl.org")])
    not_after = NOW - 90 * DAY if expired else NOW + 1000 * DAY
    cert = make_cert(subject=subject, key=key, issuer_name=root.cert.subject,
                     issuer_key=root.key, ca=True, not_before=NOW - 3650 * DAY,
                     not_after=not_after, key_usage=ca_usage(), serial=2)
    return Identity(cert, key, [root.cert])


def lotw_user(callsign: str = "W1AW", *, key_name: str | None = None,
              not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
              dxcc: str = "291") -> Identity:
    """A LoTW user certificate: RSA-1024, callsign attribute first (UTF8String), then CN and
    emailAddress; QSO dates and DXCC as raw-ASCII extensions; CA:FALSE; no SubjectAltName."""
    production = lotw_production()
    key = rsa_key(key_name or f"lotw-user-{callsign}", 1024)
    subject = x509.Name([
        x509.NameAttribute(LOTW_CALLSIGN_OID, callsign),
        x509.NameAttribute(NameOID.COMMON_NAME, "Hiram Percy Maxim"),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, f"{callsign.lower()}@example.org"),
    ])
    extensions = [
        x509.UnrecognizedExtension(LOTW_QSO_NOT_BEFORE_OID, b"1945-11-01"),
        x509.UnrecognizedExtension(LOTW_QSO_NOT_AFTER_OID, b"2030-12-31"),
        x509.UnrecognizedExtension(LOTW_DXCC_OID, dxcc.encode("ascii")),
    ]
    cert = make_cert(subject=subject, key=key, issuer_name=production.cert.subject,
                     issuer_key=production.key, ca=False,
                     not_before=not_before or NOW - 365 * DAY,  # before the CA expired
                     not_after=not_after or NOW + 2 * 365 * DAY, extensions=extensions,
                     key_usage=user_usage())
    return Identity(cert, key, [production.cert, production.chain[0]])


def lotw_chain_for(callsign: str = "W1AW") -> Identity:
    return lotw_user(callsign)


def license_ext(callsign: str, license_class: str = "extra", can_issue: bool = False):
    return x509.UnrecognizedExtension(MESHSITE_LICENSE_OID, encode_license_extension(
        callsign=callsign, license_class=license_class, can_issue=can_issue))


def meshsite_root(kind: str = "ed25519") -> Identity:
    key = ed_key() if kind == "ed25519" else ec_key()
    cert = make_cert(subject=name(f"Meshsite test root {kind}"), key=key, ca=True,
                     key_usage=ca_usage(), not_before=NOW - 400 * DAY, not_after=NOW + 3650 * DAY)
    return Identity(cert, key)


def issue(parent: Identity, *, callsign: str | None, kind: str = "ed25519", ca: bool = False,
          path_length: int | None = None, license_class: str = "general",
          can_issue: bool = False, not_before: dt.datetime | None = None,
          not_after: dt.datetime | None = None, cn: str | None = None,
          with_extension: bool = True, lotw_attribute: bool = True,
          extra_extensions: list | None = None) -> Identity:
    """A child certificate of `parent` (Ed25519, EC or RSA key)."""
    key = {"ed25519": ed_key, "ec": ec_key}.get(kind, lambda: rsa_key(f"child-{callsign}"))()
    extensions = list(extra_extensions or [])
    if with_extension and callsign:
        extensions.append(license_ext(callsign, license_class, can_issue))
    subject = name(cn or callsign or "anonymous", callsign if lotw_attribute else None)
    cert = make_cert(subject=subject, key=key, issuer_name=parent.cert.subject,
                     issuer_key=parent.key, ca=ca, path_length=path_length,
                     key_usage=ca_usage() if ca else user_usage(),
                     not_before=not_before or NOW - 10 * DAY,
                     not_after=not_after or NOW + 365 * DAY, extensions=extensions)
    return Identity(cert, key, [parent.cert, *parent.chain])


def meshsite_chain(callsign: str = "DL1BOB", kind: str = "ed25519") -> tuple[Identity, Identity]:
    """(root, user) where root -> intermediate (may issue) -> user, all with `kind` keys."""
    root = meshsite_root(kind)
    intermediate = issue(root, callsign="DL0CA", kind=kind, ca=True, path_length=0,
                         can_issue=True, license_class="club")
    user = issue(intermediate, callsign=callsign, kind=kind)
    return root, user


def private_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
