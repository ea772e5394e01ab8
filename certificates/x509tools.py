"""License certificates without Django: loading, reading LoTW fields, walking chains, proofs.

Everything here works on `cryptography` objects and raises `CertificateError` with a code:

- `load_certificates(data, password)` reads PEM (one or many), DER, PKCS#12 (legacy RC2-40 exports
  included) and LoTW `.tq6` files (gzip XML with `rootcert` / `cacert` / `usercert` PEM elements).
- `read_license(cert)` extracts the callsign (LoTW subject attribute 1.3.6.1.4.1.12348.1.1, else our
  own extension, else the CN), the license class and issuing rights (our extension), the QSO date
  range and DXCC entity (LoTW raw-ASCII extensions).
- `validate_chain(...)` walks from the presented certificate to a configured root with
  `verify_directly_issued_by`, the way TQSL does: each CA must have been valid when it issued its
  child (not necessarily today), the end certificate must be valid now.
- `verify_signature(...)` checks a proof of possession with RSA (PKCS#1 v1.5 or PSS), ECDSA or
  Ed25519 keys, SHA-256.
- `build_certificate(...)` issues a license certificate from a CSR (the station's small CA).

Our extension (OID `MESHSITE_LICENSE_OID`, under the 2.25 UUID arc) is DER:
`SEQUENCE { callsign UTF8String, licenseClass UTF8String, canIssue BOOLEAN }`.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from certificates.errors import CertificateError

# ARRL's arc (LoTW).
LOTW_CALLSIGN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.12348.1.1")
LOTW_QSO_NOT_BEFORE_OID = x509.ObjectIdentifier("1.3.6.1.4.1.12348.1.2")
LOTW_QSO_NOT_AFTER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.12348.1.3")
LOTW_DXCC_OID = x509.ObjectIdentifier("1.3.6.1.4.1.12348.1.4")
LOTW_SUPERSEDED_OID = x509.ObjectIdentifier("1.3.6.1.4.1.12348.1.5")
# Meshsite's own license extension: a UUID-derived OID (2.25.<uuid as integer>).
MESHSITE_LICENSE_OID = x509.ObjectIdentifier("2.25.194433368197519149863786835394264238331")

MAX_CERTIFICATE_BYTES = 10 * 1024  # DER size of one certificate
MAX_CHAIN_DEPTH = 10  # certificates presented beside the end certificate, and path length
MAX_INPUT_BYTES = 256 * 1024  # whole uploaded bundle (PEM text, .p12, .tq6) before parsing
MAX_TQ6_BYTES = 1024 * 1024  # decompressed .tq6

# ITU-style amateur callsign: optional prefix "XX/", a 1-3 character prefix, a digit, a suffix
# ending in a letter, optional "/P", "/MM", "/3" portable designators.
CALLSIGN_RE = re.compile(
    r"^(?:[A-Z0-9]{1,4}/)?[A-Z0-9]{1,3}[0-9][A-Z0-9]{0,3}[A-Z](?:/[A-Z0-9]{1,4})?$")

_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]*?-----END CERTIFICATE-----")
_TQ6_RE = re.compile(rb"<(rootcert|cacert|usercert)>(.*?)</\1>", re.DOTALL)


# --- small helpers ----------------------------------------------------------------------------


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER encoding, lower-case hex."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def to_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def normalize_callsign(value: str) -> str:
    """Upper-case, stripped; raises `bad_callsign` unless it is a well-formed callsign."""
    if not isinstance(value, str):
        raise CertificateError("bad_callsign", "The callsign must be a string.")
    callsign = value.strip().upper()
    if len(callsign) > 20 or not CALLSIGN_RE.match(callsign):
        raise CertificateError(
            "bad_callsign",
            f"{value[:40]!r} is not a well-formed amateur callsign (letters and digits with a "
            "digit after a 1-3 character prefix, e.g. W1AW, DL1ABC, VE3/W1AW/P).")
    return callsign


def is_callsign(value: str) -> bool:
    try:
        normalize_callsign(value)
    except CertificateError:
        return False
    return True


# --- our DER extension --------------------------------------------------------------------------


def _der_len(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(value)) + value


def _der_read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One TLV at `pos`: (tag, value, next position). Raises ValueError on truncation."""
    if pos + 2 > len(data):
        raise ValueError("truncated TLV")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated value")
    return tag, data[pos:pos + length], pos + length


def encode_license_extension(*, callsign: str, license_class: str, can_issue: bool) -> bytes:
    body = (_der(0x0C, callsign.encode("utf-8")) + _der(0x0C, license_class.encode("utf-8"))
            + _der(0x01, b"\xff" if can_issue else b"\x00"))
    return _der(0x30, body)


def decode_license_extension(value: bytes) -> tuple[str, str, bool]:
    """(callsign, license class, can issue); raises `malformed`."""
    try:
        tag, body, end = _der_read(value, 0)
        if tag != 0x30 or end != len(value):
            raise ValueError("not a SEQUENCE")
        tag1, callsign, pos = _der_read(body, 0)
        tag2, license_class, pos = _der_read(body, pos)
        tag3, flag, pos = _der_read(body, pos)
        if (tag1, tag2, tag3) != (0x0C, 0x0C, 0x01) or len(flag) != 1 or pos != len(body):
            raise ValueError("unexpected fields")
        return callsign.decode("utf-8"), license_class.decode("utf-8"), flag != b"\x00"
    except (ValueError, UnicodeDecodeError) as exc:
        raise CertificateError(
            "malformed", f"The Meshsite license extension {MESHSITE_LICENSE_OID.dotted_string} "
            f"cannot be decoded ({exc}).") from exc


# --- loading ------------------------------------------------------------------------------------


@dataclass
class LoadedBundle:
    """What a file or upload held: the end certificate, the other certificates, maybe a key."""

    certificate: x509.Certificate
    chain: list[x509.Certificate]
    private_key: object | None = None
    format: str = "pem"


def _check_size(cert: x509.Certificate) -> x509.Certificate:
    size = len(cert.public_bytes(serialization.Encoding.DER))
    if size > MAX_CERTIFICATE_BYTES:
        raise CertificateError(
            "too_large", f"A certificate of {size} bytes exceeds the limit of "
            f"{MAX_CERTIFICATE_BYTES} bytes (DER).")
    return cert


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
    except ValueError:
        return False


def _pick_end(certs: list[x509.Certificate]) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """The end certificate is the first one no other certificate in the bundle names as issuer;
    failing that, the first non-CA one; failing that, the first."""
    if len(certs) == 1:
        return certs[0], []
    issuers = {c.issuer.public_bytes() for c in certs if c.issuer != c.subject}
    for index, cert in enumerate(certs):
        if cert.subject.public_bytes() not in issuers:
            return cert, certs[:index] + certs[index + 1:]
    for index, cert in enumerate(certs):
        if not _is_ca(cert):
            return cert, certs[:index] + certs[index + 1:]
    return certs[0], certs[1:]


def _parse_pem_blocks(blocks: Iterable[bytes]) -> list[x509.Certificate]:
    certs = []
    for number, block in enumerate(blocks, start=1):
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except ValueError as exc:
            raise CertificateError(
                "malformed", f"PEM certificate #{number} cannot be parsed: {exc}") from exc
    return certs


def _check_count(certs: list) -> None:
    if len(certs) > MAX_CHAIN_DEPTH + 1:
        raise CertificateError(
            "chain_too_deep", f"{len(certs)} certificates were given; a chain holds at most "
            f"{MAX_CHAIN_DEPTH} certificates beside the end certificate.")


def _load_tq6(data: bytes) -> LoadedBundle:
    try:
        inflater = zlib.decompressobj(wbits=31)
        text = inflater.decompress(data, MAX_TQ6_BYTES + 1)
    except zlib.error as exc:
        raise CertificateError("malformed", f"The .tq6 file is not valid gzip: {exc}") from exc
    if len(text) > MAX_TQ6_BYTES:
        raise CertificateError("too_large", "The .tq6 file inflates beyond 1 MB.")
    elements = _TQ6_RE.findall(text)
    if not elements:
        raise CertificateError(
            "malformed", "The .tq6 file holds no rootcert, cacert or usercert element.")
    by_kind: dict[str, list[x509.Certificate]] = {"rootcert": [], "cacert": [], "usercert": []}
    for kind, body in elements:
        blocks = _PEM_RE.findall(body)
        if not blocks:
            raise CertificateError("malformed", f"A <{kind.decode()}> element holds no PEM.")
        by_kind[kind.decode()].extend(_parse_pem_blocks(blocks))
    everything = by_kind["usercert"] + by_kind["cacert"] + by_kind["rootcert"]
    _check_count(everything)
    for cert in everything:
        _check_size(cert)
    if by_kind["usercert"]:
        end = by_kind["usercert"][0]
        chain = by_kind["usercert"][1:] + by_kind["cacert"] + by_kind["rootcert"]
    else:
        end, chain = _pick_end(everything)
    return LoadedBundle(end, chain, None, "tq6")


def _looks_like_pfx(data: bytes) -> bool:
    """PFX ::= SEQUENCE { version INTEGER (3), ... }; a certificate starts SEQUENCE { SEQUENCE."""
    try:
        tag, body, _ = _der_read(data, 0)
        if tag != 0x30:
            return False
        inner_tag, inner, _ = _der_read(body, 0)
        return inner_tag == 0x02 and inner == b"\x03"
    except ValueError:
        return False


def _load_pkcs12(data: bytes, password: bytes | None) -> LoadedBundle:
    try:
        loaded = pkcs12.load_pkcs12(data, password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        if password is None:
            detail = "The PKCS#12 file is password protected (or damaged): give its password."
        else:
            detail = "The PKCS#12 password is wrong (or the file is damaged)."
        raise CertificateError("bad_password", detail) from exc
    certs = [c.certificate for c in loaded.additional_certs]
    if loaded.cert is not None:
        end, chain = loaded.cert.certificate, certs
    elif certs:
        end, chain = _pick_end(certs)
    else:
        raise CertificateError("malformed", "The PKCS#12 file holds no certificate.")
    _check_count([end, *chain])
    for cert in [end, *chain]:
        _check_size(cert)
    return LoadedBundle(end, chain, loaded.key, "pkcs12")


def load_certificates(data: bytes | str, password: bytes | None = None) -> LoadedBundle:
    """Read a certificate with its chain from PEM, DER, PKCS#12 or LoTW `.tq6` bytes."""
    if isinstance(data, str):
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError as exc:
            raise CertificateError(
                "malformed", "Certificate text must be ASCII PEM.") from exc
    if not isinstance(data, bytes | bytearray):
        raise CertificateError("malformed", "A certificate must be PEM text or bytes.")
    data = bytes(data)
    if len(data) > MAX_INPUT_BYTES:
        raise CertificateError(
            "too_large", f"{len(data)} bytes is more than the {MAX_INPUT_BYTES} bytes accepted "
            "for a certificate bundle.")
    if not data.strip():
        raise CertificateError("malformed", "The certificate is empty.")
    if data[:2] == b"\x1f\x8b":
        return _load_tq6(data)
    if b"-----BEGIN" in data:
        blocks = _PEM_RE.findall(data)
        if not blocks:
            raise CertificateError(
                "malformed", "No complete '-----BEGIN CERTIFICATE-----' block was found.")
        _check_count(blocks)
        certs = _parse_pem_blocks(blocks)
        for cert in certs:
            _check_size(cert)
        end, chain = _pick_end(certs)
        return LoadedBundle(end, chain, None, "pem")
    if _looks_like_pfx(data):
        return _load_pkcs12(data, password)
    try:
        cert = x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(
            "malformed", "The data is not a certificate in PEM, DER, PKCS#12 or .tq6 form "
            f"({exc}).") from exc
    return LoadedBundle(_check_size(cert), [], None, "der")


def load_one(data: bytes | str) -> x509.Certificate:
    """Exactly one certificate (PEM or DER)."""
    bundle = load_certificates(data)
    if bundle.chain:
        raise CertificateError(
            "malformed", "Expected one certificate here, got "
            f"{len(bundle.chain) + 1}; put the others in the chain.")
    return bundle.certificate


def load_chain(items: Iterable[bytes | str] | None) -> list[x509.Certificate]:
    """A chain given as a list of PEM/DER items (each may hold several PEM blocks)."""
    certs: list[x509.Certificate] = []
    for item in items or []:
        bundle = load_certificates(item)
        certs.append(bundle.certificate)
        certs.extend(bundle.chain)
        _check_count(certs)
    return certs


def load_private_key(data: bytes, password: bytes | None = None) -> object:
    """A private key from PEM or DER (PKCS#8 / traditional); raises `bad_key`/`bad_password`."""
    loaders = [serialization.load_pem_private_key] if b"-----BEGIN" in data else [
        serialization.load_der_private_key]
    for loader in loaders:
        try:
            return loader(data, password)
        except TypeError as exc:
            raise CertificateError(
                "bad_password", f"The private key needs the right password ({exc}).") from exc
        except (ValueError, UnsupportedAlgorithm) as exc:
            if password is not None and "password" in str(exc).lower():
                raise CertificateError("bad_password",
                                       "The private key password is wrong.") from exc
            raise CertificateError("bad_key", f"The private key cannot be read: {exc}") from exc
    raise CertificateError("bad_key", "The private key cannot be read.")


# --- reading license fields ---------------------------------------------------------------------


@dataclass
class LicenseInfo:
    callsign: str | None
    license_class: str = ""
    can_issue: bool = False
    is_ca: bool = False
    qso_not_before: dt.date | None = None
    qso_not_after: dt.date | None = None
    dxcc: int | None = None
    superseded: str = ""
    extensions: dict[str, str] = field(default_factory=dict)


def _raw_ascii(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    try:
        ext = cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else None
    if raw is None:
        return None
    return raw.decode("ascii", "replace").strip()


def _date(text: str | None) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def _extensions(cert: x509.Certificate) -> x509.Extensions:
    try:
        return cert.extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise CertificateError(
            "malformed", f"The certificate's extensions cannot be parsed: {exc}") from exc


def read_license(cert: x509.Certificate) -> LicenseInfo:
    """Callsign and license fields, LoTW first, then our extension, then the CN."""
    extensions = _extensions(cert)
    callsign = None
    attrs = cert.subject.get_attributes_for_oid(LOTW_CALLSIGN_OID)
    if attrs:
        value = attrs[0].value
        callsign = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    license_class, can_issue, ext_callsign = "", False, None
    for ext in extensions:
        if ext.oid == MESHSITE_LICENSE_OID and isinstance(ext.value, x509.UnrecognizedExtension):
            ext_callsign, license_class, can_issue = decode_license_extension(ext.value.value)
    if callsign is None and ext_callsign:
        callsign = ext_callsign
    if callsign is None:
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if cns and isinstance(cns[0].value, str) and is_callsign(cns[0].value):
            callsign = cns[0].value
    if callsign is not None:
        callsign = callsign.strip().upper()
    dxcc_text = _raw_ascii(cert, LOTW_DXCC_OID)
    is_ca = _is_ca(cert)
    return LicenseInfo(
        callsign=callsign,
        license_class=license_class,
        can_issue=bool(can_issue and is_ca),
        is_ca=is_ca,
        qso_not_before=_date(_raw_ascii(cert, LOTW_QSO_NOT_BEFORE_OID)),
        qso_not_after=_date(_raw_ascii(cert, LOTW_QSO_NOT_AFTER_OID)),
        dxcc=int(dxcc_text) if dxcc_text and dxcc_text.isdigit() else None,
        superseded=_raw_ascii(cert, LOTW_SUPERSEDED_OID) or "",
    )


# --- chain validation ---------------------------------------------------------------------------


@dataclass
class ValidatedPath:
    """The path from the end certificate (first) to the trusted root (last)."""

    path: list[x509.Certificate]
    expired: bool

    @property
    def root(self) -> x509.Certificate:
        return self.path[-1]


def _name(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return "<unprintable subject>"


def _self_signed(cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _issue_path(cert: x509.Certificate, chain: list[x509.Certificate],
                roots: list[x509.Certificate]) -> list[x509.Certificate]:
    root_fps = {fingerprint(r) for r in roots}
    pool: dict[str, x509.Certificate] = {}
    for candidate in [*roots, *chain]:
        pool.setdefault(fingerprint(candidate), candidate)
    path = [cert]
    seen = {fingerprint(cert)}
    current = cert
    while fingerprint(current) not in root_fps:
        if len(path) > MAX_CHAIN_DEPTH:
            raise CertificateError(
                "chain_too_deep", f"The path to a root is longer than {MAX_CHAIN_DEPTH} "
                "certificates.")
        if current.issuer == current.subject and _self_signed(current):
            raise CertificateError(
                "untrusted_root", f"The chain ends at the self-signed certificate "
                f"'{_name(current)}', which is not one of this station's trust roots. Ask the "
                "owner to add the root (manage.py trustroot add) if it should be trusted.")
        candidates = [c for fp, c in pool.items()
                      if fp not in seen and c.subject == current.issuer]
        if not candidates:
            if current.issuer == current.subject:
                raise CertificateError(
                    "untrusted_root", f"The chain ends at the self-signed certificate "
                    f"'{_name(current)}', which is not one of this station's trust roots. Ask the "
                    "owner to add the root (manage.py trustroot add) if it should be trusted.")
            raise CertificateError(
                "chain_incomplete", f"The issuer of '{_name(current)}' "
                f"('{current.issuer.rfc4514_string()}') is neither in the chain nor a trust root: "
                "send the intermediate certificates with the chain.")
        issuer = None
        reasons = []
        for candidate in candidates:
            try:
                current.verify_directly_issued_by(candidate)
            except InvalidSignature:
                reasons.append("signature does not verify")
                continue
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                reasons.append(str(exc))
                continue
            issuer = candidate
            break
        if issuer is None:
            raise CertificateError(
                "bad_signature", f"The signature on '{_name(current)}' does not verify with the "
                f"key of its issuer '{current.issuer.rfc4514_string()}' ({'; '.join(reasons)}).")
        path.append(issuer)
        seen.add(fingerprint(issuer))
        current = issuer
    return path


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def validate_chain(cert: x509.Certificate, chain: list[x509.Certificate],
                   roots: list[x509.Certificate], *, now: dt.datetime, allow_expired: bool = False,
                   is_blacklisted: Callable[[str], bool] = lambda fp: False) -> ValidatedPath:
    """Walk `cert` up to one of `roots` through `chain`; raise `CertificateError` on any flaw."""
    if len(chain) > MAX_CHAIN_DEPTH:
        raise CertificateError(
            "chain_too_deep", f"The chain holds {len(chain)} certificates; at most "
            f"{MAX_CHAIN_DEPTH} are accepted.")
    for item in [cert, *chain]:
        _check_size(item)
        _extensions(item)
    if not roots:
        raise CertificateError(
            "untrusted_root", "This station has no trust roots configured yet: the owner adds "
            "them with `manage.py trustroot add FILE` (or MESHSITE_TRUST_ROOT_FILES).")
    path = _issue_path(cert, chain, roots)
    for item in path:
        fp = fingerprint(item)
        if is_blacklisted(fp):
            raise CertificateError(
                "blacklisted", f"'{_name(item)}' (SHA-256 {fp}) is on this station's blacklist.")
    for depth, issuer in enumerate(path[1:], start=1):
        child = path[depth - 1]
        try:
            constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise CertificateError(
                "not_a_ca", f"'{_name(issuer)}' issued '{_name(child)}' but is not a CA "
                "(basicConstraints CA:FALSE or missing).")
        try:
            usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is not None and not usage.key_cert_sign:
            raise CertificateError(
                "not_a_ca", f"'{_name(issuer)}' may not sign certificates (keyUsage lacks "
                "keyCertSign).")
        below = depth - 1  # CA certificates between this issuer and the end certificate
        if constraints.path_length is not None and below > constraints.path_length:
            raise CertificateError(
                "path_length_exceeded", f"'{_name(issuer)}' allows {constraints.path_length} "
                f"CA certificate(s) below it, the chain has {below}.")
        issued = child.not_valid_before_utc
        if not (issuer.not_valid_before_utc <= issued <= issuer.not_valid_after_utc):
            raise CertificateError(
                "issued_outside_ca_validity", f"'{_name(child)}' starts {issued:%Y-%m-%d}, "
                f"outside the validity of its issuer '{_name(issuer)}' "
                f"({issuer.not_valid_before_utc:%Y-%m-%d} to "
                f"{issuer.not_valid_after_utc:%Y-%m-%d}).")
    now = _utc(now)
    if now < cert.not_valid_before_utc:
        raise CertificateError(
            "not_yet_valid", f"'{_name(cert)}' is valid only from "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC.")
    expired = now > cert.not_valid_after_utc
    if expired and not allow_expired:
        raise CertificateError(
            "expired", f"'{_name(cert)}' expired on {cert.not_valid_after_utc:%Y-%m-%d}: renew "
            "the license certificate (LoTW: TQSL 'Renew Callsign Certificate').")
    return ValidatedPath(path, expired)


# --- signatures -------------------------------------------------------------------------------


def decode_signature(value: str | bytes) -> bytes:
    """Base64 (standard or URL-safe, padding optional) to bytes; raises `bad_proof`."""
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str) or not value or len(value) > 8192:
        raise CertificateError("bad_proof", "The signature must be non-empty base64 text.")
    text = value.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise CertificateError("bad_proof", "The signature is not valid base64.") from exc


def verify_signature(public_key: object, signature: bytes, message: bytes) -> None:
    """Accept RSA PKCS#1 v1.5 or PSS (SHA-256), ECDSA (SHA-256, DER) and Ed25519 signatures."""
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, message)
            return
        if isinstance(public_key, ed448.Ed448PublicKey):
            public_key.verify(signature, message)
            return
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
            return
        if isinstance(public_key, rsa.RSAPublicKey):
            try:
                public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
                return
            except InvalidSignature:
                public_key.verify(signature, message,
                                  padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                              salt_length=padding.PSS.AUTO),
                                  hashes.SHA256())
                return
    except (InvalidSignature, ValueError) as exc:
        raise CertificateError(
            "bad_proof", "The signature does not verify with the certificate's public key: "
            "sign the exact message with the certificate's own private key.") from exc
    raise CertificateError(
        "bad_proof", f"Keys of type {type(public_key).__name__} are not accepted for proofs "
        "(RSA, ECDSA, Ed25519).")


def sign_message(private_key: object, message: bytes) -> bytes:
    """Sign the way `verify_signature` expects (RSA PKCS#1 v1.5 SHA-256 by default)."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return private_key.sign(message)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(message, ec.ECDSA(hashes.SHA256()))
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    raise CertificateError("bad_key", f"Cannot sign with a {type(private_key).__name__}.")


def public_key_matches(private_key: object, cert: x509.Certificate) -> bool:
    try:
        mine = private_key.public_key().public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    except AttributeError:
        return False
    theirs = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return mine == theirs


# --- station identity ---------------------------------------------------------------------------


def station_id_for(public_key_raw: bytes) -> str:
    """A station id is the first 16 bytes of SHA-256 over the raw Ed25519 public key, in hex."""
    return hashlib.sha256(public_key_raw).hexdigest()[:32]


def delegation_message(*, station_id: str, public_key_b64: str, nonce: str) -> bytes:
    """The canonical bytes an owner signs to delegate a station key to their callsign."""
    return (f"meshsite-station-delegation-v1\nstation:{station_id}\nkey:{public_key_b64}\n"
            f"nonce:{nonce}\n").encode("ascii")


# --- issuing ------------------------------------------------------------------------------------


def csr_callsign(csr: x509.CertificateSigningRequest) -> str | None:
    attrs = csr.subject.get_attributes_for_oid(LOTW_CALLSIGN_OID)
    if attrs and isinstance(attrs[0].value, str):
        return attrs[0].value.strip().upper()
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns and isinstance(cns[0].value, str) and is_callsign(cns[0].value):
        return cns[0].value.strip().upper()
    return None


def load_csr(data: str | bytes) -> x509.CertificateSigningRequest:
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    if len(data) > MAX_CERTIFICATE_BYTES * 2:
        raise CertificateError("too_large", "The CSR is larger than 20 KB.")
    try:
        csr = (x509.load_pem_x509_csr(data) if b"-----BEGIN" in data
               else x509.load_der_x509_csr(data))
    except ValueError as exc:
        raise CertificateError("bad_csr", f"The CSR cannot be parsed: {exc}") from exc
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError("bad_csr", f"The CSR signature cannot be checked: {exc}") from exc
    if not valid:
        raise CertificateError("bad_csr", "The CSR is not signed by its own key.")
    return csr


def _signing_hash(ca_key: object) -> hashes.HashAlgorithm | None:
    if isinstance(ca_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


def build_certificate(csr: x509.CertificateSigningRequest, *, ca_cert: x509.Certificate,
                      ca_key: object, callsign: str, license_class: str, can_issue: bool,
                      not_before: dt.datetime, not_after: dt.datetime,
                      serial: int | None = None) -> x509.Certificate:
    """A license certificate for `callsign`: LoTW-style subject attribute plus our extension."""
    subject = x509.Name([
        x509.NameAttribute(LOTW_CALLSIGN_OID, callsign),
        x509.NameAttribute(NameOID.COMMON_NAME, callsign),
    ])
    public_key = csr.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=can_issue, path_length=0 if can_issue else None),
                       critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True,
            key_encipherment=isinstance(public_key, rsa.RSAPublicKey), data_encipherment=False,
            key_agreement=False, key_cert_sign=can_issue, crl_sign=can_issue,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_cert.public_key()), critical=False)  # type: ignore[arg-type]
        .add_extension(x509.UnrecognizedExtension(MESHSITE_LICENSE_OID, encode_license_extension(
            callsign=callsign, license_class=license_class, can_issue=can_issue)), critical=False)
    )
    return builder.sign(ca_key, _signing_hash(ca_key))  # type: ignore[arg-type]


def gzip_tq6(root: x509.Certificate | None, cas: list[x509.Certificate],
             user: x509.Certificate) -> bytes:
    """A `.tq6`-shaped file (for exports and tests)."""
    parts = ["<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<tqsldata>\n<tqslcerts>\n"]
    if root is not None:
        parts.append(f"<rootcert>\n{to_pem(root)}</rootcert>\n")
    parts.extend(f"<cacert>\n{to_pem(c)}</cacert>\n" for c in cas)
    parts.append(f"<usercert>\n{to_pem(user)}</usercert>\n</tqslcerts>\n</tqsldata>\n")
    return gzip.compress("".join(parts).encode("ascii"))
