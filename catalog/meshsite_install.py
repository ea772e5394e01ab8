#!/usr/bin/env python3
"""meshsite-install.py: install a verified Meshsite station from any station, with no internet.

Run it with Python 3.11 or 3.12 before you have anything else; it needs only the standard
library. It fetches the station's release document, checks

  * the manifest's Ed25519 signature by the station that built the release,
  * that station's credential: its key delegated by the owner's license certificate,
  * the owner's certificate chain up to the trust root YOU name (--trust-root), or the one the
    station names, which it shows you to confirm,
  * that the release has not expired, and that its release counter is not lower than one
    installed from this account before (no rollback),

then writes a --require-hashes requirements file from the signed hashes, creates a virtual
environment and installs with pip from the station's index. pip refuses any file whose hash
differs, so the transport (plain HTTP, any relay station) need not be trusted.

    python3 meshsite-install.py --index http://HOST:PORT --callsign CALL --token TOKEN \\
        --trust-root ROOT.pem --venv DIR --yes

The download token comes from the station's "Get your own station" page (/get/), after a
proof of your license. Exit status: 0 installed, 1 usage, 2 the station could not be used,
3 verification refused, 4 pip failed, 5 declined.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import venv
from pathlib import Path

FORMAT = "meshsite-release-v1"
SIGNING_PREFIX = b"meshsite-release-v1\n"
MAX_DOCUMENT = 1024 * 1024


class InstallerError(Exception):
    """A refusal: `.status` is the exit status, the text says what and what to do."""

    def __init__(self, message: str, status: int = 3) -> None:
        super().__init__(message)
        self.status = status


class DerError(InstallerError):
    def __init__(self, message: str) -> None:
        super().__init__(f"malformed DER: {message}", 3)


# --- Ed25519 (RFC 8032) verification ---------------------------------------------------------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, -1, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _ed_decode(data: bytes) -> tuple[int, int, int, int] | None:
    if len(data) != 32:
        return None
    value = int.from_bytes(data, "little")
    sign, y = value >> 255, value & ((1 << 255) - 1)
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, -1, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y, 1, x * y % _P


def _ed_add(p: tuple[int, int, int, int], q: tuple[int, int, int, int]) -> tuple[int, ...]:
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = t1 * 2 * _D * t2 % _P
    d = z1 * 2 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _ed_mul(scalar: int, point: tuple[int, ...]) -> tuple[int, ...]:
    result: tuple[int, ...] = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _ed_add(result, point)  # type: ignore[arg-type]
        point = _ed_add(point, point)  # type: ignore[arg-type]
        scalar >>= 1
    return result


def _ed_encode(point: tuple[int, ...]) -> bytes:
    x, y, z, _ = point
    inverse = pow(z, -1, _P)
    x, y = x * inverse % _P, y * inverse % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


_ED_BASE = _ed_decode((4 * pow(5, -1, _P) % _P).to_bytes(32, "little"))


def ed25519_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True when `signature` is a valid Ed25519 signature of `message` by `public_key`."""
    if len(signature) != 64 or len(public_key) != 32:
        return False
    point_a = _ed_decode(public_key)
    if point_a is None or _ed_decode(signature[:32]) is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(),
                       "little") % _L
    minus_a = ((_P - point_a[0]) % _P, point_a[1], 1, (_P - point_a[3]) % _P)
    check = _ed_add(_ed_mul(s, _ED_BASE), _ed_mul(h, minus_a))  # type: ignore[arg-type]
    return _ed_encode(check) == signature[:32]


# --- RSA PKCS#1 v1.5 and ECDSA P-256 verification (SHA-256) ---------------------------------

_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def rsa_pkcs1v15_verify(n: int, e: int, signature: bytes, message: bytes) -> bool:
    size = (n.bit_length() + 7) // 8
    if len(signature) != size or n < 3 or e < 3:
        return False
    value = int.from_bytes(signature, "big")
    if value >= n:
        return False
    encoded = pow(value, e, n).to_bytes(size, "big")
    digest = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    padding = size - 3 - len(digest)
    if padding < 8:
        return False
    return encoded == b"\x00\x01" + b"\xff" * padding + b"\x00" + digest


_EC_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_EC_A = _EC_P - 3
_EC_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
_EC_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_EC_G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
         0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)


def _ec_add(p: tuple[int, int] | None, q: tuple[int, int] | None) -> tuple[int, int] | None:
    if p is None:
        return q
    if q is None:
        return p
    if p[0] == q[0]:
        if (p[1] + q[1]) % _EC_P == 0:
            return None
        slope = (3 * p[0] * p[0] + _EC_A) * pow(2 * p[1], -1, _EC_P) % _EC_P
    else:
        slope = (q[1] - p[1]) * pow(q[0] - p[0], -1, _EC_P) % _EC_P
    x = (slope * slope - p[0] - q[0]) % _EC_P
    return x, (slope * (p[0] - x) - p[1]) % _EC_P


def _ec_mul(scalar: int, point: tuple[int, int] | None) -> tuple[int, int] | None:
    result = None
    while scalar:
        if scalar & 1:
            result = _ec_add(result, point)
        point = _ec_add(point, point)
        scalar >>= 1
    return result


def ecdsa_p256_verify(point: bytes, signature: bytes, message: bytes) -> bool:
    """`point` is the uncompressed public key (04 || x || y); `signature` DER (r, s)."""
    if len(point) != 65 or point[0] != 4:
        return False
    x, y = int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big")
    if x >= _EC_P or y >= _EC_P or (y * y - x * x * x - _EC_A * x - _EC_B) % _EC_P:
        return False
    try:
        tag, body, end = der_read(signature, 0)
        if tag != 0x30 or end != len(signature):
            return False
        r, pos = der_int(body, 0)
        s, pos = der_int(body, pos)
        if pos != len(body):
            return False
    except DerError:
        return False
    if not (1 <= r < _EC_N and 1 <= s < _EC_N):
        return False
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")
    w = pow(s, -1, _EC_N)
    total = _ec_add(_ec_mul(e * w % _EC_N, _EC_G), _ec_mul(r * w % _EC_N, (x, y)))
    return total is not None and total[0] % _EC_N == r


# --- DER and X.509, just what the chain needs ------------------------------------------------


def der_read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, value, position after) of the element at `pos`; definite lengths only."""
    if pos + 2 > len(data):
        raise DerError("truncated element")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tags are not used here")
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise DerError("bad length")
        length = int.from_bytes(data[pos:pos + count], "big")
        if length < 0x80 or data[pos] == 0:
            raise DerError("length not in its shortest form")
        pos += count
    if pos + length > len(data):
        raise DerError("element runs past the end")
    return tag, data[pos:pos + length], pos + length


def der_items(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """Every element of a constructed value: (tag, value, whole encoding)."""
    items, pos = [], 0
    while pos < len(data):
        tag, value, end = der_read(data, pos)
        items.append((tag, value, data[pos:end]))
        pos = end
    return items


def der_int(data: bytes, pos: int) -> tuple[int, int]:
    tag, value, end = der_read(data, pos)
    if tag != 0x02 or not value:
        raise DerError("expected an INTEGER")
    if value[0] & 0x80:
        raise DerError("negative INTEGER")
    return int.from_bytes(value, "big"), end


def der_oid(value: bytes) -> str:
    if not value:
        raise DerError("empty OID")
    parts, number = [], 0
    for byte in value:
        number = (number << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(number)
            number = 0
    if value[-1] & 0x80:
        raise DerError("truncated OID")
    first = parts[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(p) for p in head + parts[1:])


def _der_time(tag: int, value: bytes) -> dt.datetime:
    try:
        text = value.decode("ascii")
        if tag == 0x17:  # UTCTime
            moment = dt.datetime.strptime(text + "+0000", "%y%m%d%H%M%SZ%z")
        elif tag == 0x18:  # GeneralizedTime
            moment = dt.datetime.strptime(text + "+0000", "%Y%m%d%H%M%SZ%z")
        else:
            raise DerError("expected a time")
    except (UnicodeDecodeError, ValueError) as exc:
        raise DerError(f"bad time {value[:20]!r}") from exc
    return moment


OID_RSA = "1.2.840.113549.1.1.1"
OID_RSA_SHA256 = "1.2.840.113549.1.1.11"
OID_ED25519 = "1.3.101.112"
OID_EC = "1.2.840.10045.2.1"
OID_P256 = "1.2.840.10045.3.1.7"
OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
OID_BASIC_CONSTRAINTS = "2.5.29.19"
OID_CALLSIGN = "1.3.6.1.4.1.12348.1.1"
OID_CN = "2.5.4.3"


class Certificate:
    """The parts of an X.509 certificate the chain check needs."""

    def __init__(self, der: bytes) -> None:
        self.der = der
        tag, body, end = der_read(der, 0)
        if tag != 0x30 or end != len(der):
            raise DerError("a certificate is one SEQUENCE")
        parts = der_items(body)
        if len(parts) != 3 or parts[0][0] != 0x30 or parts[1][0] != 0x30 or parts[2][0] != 0x03:
            raise DerError("a certificate is tbsCertificate, algorithm, signature")
        self.tbs = parts[0][2]
        self.signature_algorithm = self._algorithm(parts[1][1])[0]
        if not parts[2][1] or parts[2][1][0] != 0:
            raise DerError("the signature BIT STRING has unused bits")
        self.signature = parts[2][1][1:]
        fields = der_items(parts[0][1])
        if fields and fields[0][0] == 0xA0:
            fields = fields[1:]
        if len(fields) < 6:
            raise DerError("tbsCertificate is missing fields")
        self.issuer, self.subject = fields[2][2], fields[4][2]
        validity = der_items(fields[3][1])
        if len(validity) != 2:
            raise DerError("validity is two times")
        self.not_before = _der_time(validity[0][0], validity[0][1])
        self.not_after = _der_time(validity[1][0], validity[1][1])
        self.key_type, self.key = self._public_key(fields[5][1])
        self.is_ca = False
        for tag, value, _ in fields[6:]:
            if tag == 0xA3:
                self._extensions(value)
        self.names = self._names(fields[4][1])

    @staticmethod
    def _algorithm(value: bytes) -> tuple[str, bytes]:
        items = der_items(value)
        if not items or items[0][0] != 0x06:
            raise DerError("an algorithm starts with an OID")
        return der_oid(items[0][1]), items[1][2] if len(items) > 1 else b""

    def _public_key(self, value: bytes) -> tuple[str, object]:
        items = der_items(value)
        if len(items) != 2 or items[0][0] != 0x30 or items[1][0] != 0x03 or not items[1][1]:
            raise DerError("subjectPublicKeyInfo is algorithm and BIT STRING")
        algorithm, parameters = self._algorithm(items[0][1])
        key = items[1][1][1:]
        if algorithm == OID_RSA:
            tag, body, _ = der_read(key, 0)
            if tag != 0x30:
                raise DerError("an RSA key is a SEQUENCE")
            n, pos = der_int(body, 0)
            e, _ = der_int(body, pos)
            return "rsa", (n, e)
        if algorithm == OID_ED25519:
            return "ed25519", key
        if algorithm == OID_EC:
            if parameters[2:] != _oid_bytes(OID_P256):
                return "unsupported", "an elliptic curve other than P-256"
            return "p256", key
        return "unsupported", f"key algorithm {algorithm}"

    def _extensions(self, value: bytes) -> None:
        _, body, _ = der_read(value, 0)
        for _, extension, _ in der_items(body):
            items = der_items(extension)
            if not items or items[0][0] != 0x06:
                raise DerError("an extension starts with an OID")
            if der_oid(items[0][1]) == OID_BASIC_CONSTRAINTS:
                _, inner, _ = der_read(items[-1][1], 0)
                flags = der_items(inner)
                self.is_ca = bool(flags and flags[0][0] == 0x01 and flags[0][1] not in
                                  (b"", b"\x00"))

    @staticmethod
    def _names(value: bytes) -> dict[str, list[str]]:
        names: dict[str, list[str]] = {}
        for _, rdn, _ in der_items(value):
            for _, attribute, _ in der_items(rdn):
                items = der_items(attribute)
                if len(items) == 2 and items[0][0] == 0x06:
                    names.setdefault(der_oid(items[0][1]), []).append(
                        items[1][1].decode("utf-8", "replace"))
        return names

    def verify(self, signature: bytes, message: bytes, algorithm: str | None = None) -> bool:
        """Whether this certificate's key made `signature` over `message`."""
        if self.key_type == "rsa" and algorithm in (None, OID_RSA_SHA256):
            n, e = self.key  # type: ignore[misc]
            return rsa_pkcs1v15_verify(n, e, signature, message)
        if self.key_type == "ed25519" and algorithm in (None, OID_ED25519):
            return ed25519_verify(self.key, signature, message)  # type: ignore[arg-type]
        if self.key_type == "p256" and algorithm in (None, OID_ECDSA_SHA256):
            return ecdsa_p256_verify(self.key, signature, message)  # type: ignore[arg-type]
        return False

    def issued(self, child: Certificate) -> bool:
        return child.issuer == self.subject and self.verify(child.signature, child.tbs,
                                                            child.signature_algorithm)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

    @property
    def label(self) -> str:
        cn = self.names.get(OID_CN, ["?"])[0]
        return f"{cn} (SHA-256 {self.fingerprint[:16]}...)"


def _oid_bytes(oid: str) -> bytes:
    numbers = [int(n) for n in oid.split(".")]
    out = bytearray([numbers[0] * 40 + numbers[1]])
    for number in numbers[2:]:
        chunk = [number & 0x7F]
        number >>= 7
        while number:
            chunk.append(0x80 | (number & 0x7F))
            number >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


_PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----")


def load_pems(text: str) -> list[Certificate]:
    certificates = []
    for block in _PEM_RE.findall(text):
        try:
            der = base64.b64decode("".join(block.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DerError("a PEM block is not base64") from exc
        certificates.append(Certificate(der))
    return certificates


def chain_verify(end: Certificate, chain: list[Certificate], root: Certificate,
                 at: dt.datetime) -> list[Certificate]:
    """The path from `end` up to `root` through `chain` (nearest first): each certificate
    signed by the next, each issuer a CA that was valid when it issued the child, and `end`
    valid at `at`. Raises InstallerError naming what failed."""
    if not end.not_before <= at <= end.not_after:
        raise InstallerError(f"the owner's certificate was not valid at {at:%Y-%m-%d %H:%M} "
                             f"(valid {end.not_before:%Y-%m-%d} to {end.not_after:%Y-%m-%d})")
    path, current = [end], end
    for _ in range(10):
        if current.der == root.der:
            return path
        if root.issued(current):
            _issued_in_validity(root, current)
            return [*path, root]
        issuer = next((c for c in chain if c.issued(current)), None)
        if issuer is None:
            raise InstallerError(
                f"the certificate of {current.label} does not chain to the trust root "
                f"{root.label}: this release was not signed under a license you trust")
        if not issuer.is_ca:
            raise InstallerError(f"{issuer.label} is not a CA but issued a certificate")
        _issued_in_validity(issuer, current)
        path.append(issuer)
        current = issuer
    raise InstallerError("the certificate chain is longer than 10")


def _issued_in_validity(issuer: Certificate, child: Certificate) -> None:
    if not issuer.not_before <= child.not_before <= issuer.not_after:
        raise InstallerError(f"{issuer.label} issued {child.label} outside its own validity")


# --- the release document --------------------------------------------------------------------


def canonical(manifest: dict) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise InstallerError(f"{what} is missing from the release document")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InstallerError(f"{what} is not base64") from exc


def _time(value: object, what: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(str(value) + "+0000", "%Y-%m-%dT%H:%M:%SZ%z")
    except ValueError as exc:
        raise InstallerError(f"the manifest's {what} is not a UTC time") from exc


def document_verify(document: object, root: Certificate, now: dt.datetime) -> dict:
    """The manifest of a release document whose signature, station credential and owner chain
    (to `root`) verify and which has not expired. Raises InstallerError saying which failed."""
    if not isinstance(document, dict) or not isinstance(document.get("manifest"), dict) \
            or not isinstance(document.get("credential"), dict):
        raise InstallerError("the release document lacks its manifest or credential")
    manifest, credential = document["manifest"], document["credential"]
    if manifest.get("format") != FORMAT:
        raise InstallerError(f"the manifest is not in the {FORMAT} format")
    station = manifest.get("station")
    if not isinstance(station, dict):
        raise InstallerError("the manifest names no station")
    public_key = _b64(station.get("publicKey"), "the station key")
    if len(public_key) != 32:
        raise InstallerError("the station key is not an Ed25519 key")
    signature = _b64(document.get("signature"), "the signature")
    if not ed25519_verify(public_key, signature, SIGNING_PREFIX + canonical(manifest)):
        raise InstallerError("the manifest's signature does not verify: it was changed after "
                             "it was signed (tampered or damaged). Nothing was installed.")
    station_id = hashlib.sha256(public_key).hexdigest()[:32]
    if station.get("stationId") != station_id or credential.get("stationId") != station_id \
            or credential.get("publicKey") != station.get("publicKey"):
        raise InstallerError("the credential belongs to another station than the signature")
    owners = load_pems(str(credential.get("certificate", "")))
    if not owners:
        raise InstallerError("the credential holds no owner certificate (PEM)")
    owner = owners[0]
    chain_texts = credential.get("chain") or []
    if not isinstance(chain_texts, list):
        raise InstallerError("the credential's chain is not a list of PEM certificates")
    chain = load_pems("".join(c for c in chain_texts if isinstance(c, str)))
    callsign = str(station.get("callsign", ""))
    names = owner.names.get(OID_CALLSIGN, []) + owner.names.get(OID_CN, [])
    if callsign.upper() not in {n.strip().upper() for n in names} \
            or str(credential.get("callsign", "")).upper() != callsign.upper():
        raise InstallerError(f"the owner's certificate is not for {callsign}")
    delegation = (f"meshsite-station-delegation-v1\nstation:{station_id}\n"
                  f"key:{station['publicKey']}\nnonce:{credential.get('nonce', '')}\n"
                  ).encode("ascii", "replace")
    if not owner.verify(_b64(credential.get("delegation"), "the delegation"), delegation):
        raise InstallerError(f"the station key was not delegated by {callsign}'s certificate")
    created = _time(manifest.get("created"), "created")
    chain_verify(owner, chain, root, created)
    expires = _time(manifest.get("expires"), "expires")
    if expires <= now:
        raise InstallerError(f"the release expired on {expires:%Y-%m-%d %H:%M} UTC: ask the "
                             "station's operator for a current one (manage.py release build)")
    files = manifest.get("files")
    if not isinstance(files, list) or not files or not all(isinstance(f, dict) for f in files):
        raise InstallerError("the manifest lists no files")
    if not isinstance(manifest.get("counter"), int):
        raise InstallerError("the manifest has no release counter")
    return manifest


# --- installing ------------------------------------------------------------------------------


def platform_key() -> str:
    machine = platform.machine().lower()
    if sys.platform.startswith("linux"):
        return "linux_aarch64" if machine in ("aarch64", "arm64") else f"linux_{machine}"
    if sys.platform == "darwin":
        return f"macos_{'arm64' if machine in ('arm64', 'aarch64') else machine}"
    if sys.platform == "win32":
        return "windows_amd64" if machine in ("amd64", "x86_64") else f"windows_{machine}"
    return f"{sys.platform}_{machine}"


def requirements(manifest: dict, target: str, python: str) -> tuple[str, list[str]]:
    """(requirements file text, notes on what is left out here) from the signed hashes."""
    left_out = {m.get("project"): m.get("instead", "") for m in manifest.get("missing", [])
                if isinstance(m, dict) and m.get("platform") == target
                and m.get("python") == python}
    projects: dict[tuple[str, str], list[str]] = {}
    for item in manifest["files"]:
        key = (str(item.get("project")), str(item.get("version")))
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", key[0]) or not re.fullmatch(
                r"[A-Za-z0-9_.!+]+", key[1]) or not re.fullmatch(r"[0-9a-f]{64}",
                                                                   str(item.get("sha256"))):
            raise InstallerError(f"the manifest lists a bad file {str(item.get('name'))[:80]!r}")
        if key[0] not in left_out:
            projects.setdefault(key, []).append(item["sha256"])
    lines = [f"{name}=={version} " + " ".join(f"--hash=sha256:{h}" for h in sorted(hashes))
             for (name, version), hashes in sorted(projects.items())]
    notes = [f"{name}: no wheel for {target} {python}; install {instead}"
             for name, instead in left_out.items()]
    return "\n".join(lines) + "\n", notes


def _fetch(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(  # noqa: S310 - --index is checked to be http(s)
        url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            data = response.read(MAX_DOCUMENT + 1)
    except urllib.error.HTTPError as exc:
        body = exc.read(4000).decode("utf-8", "replace")
        with contextlib.suppress(ValueError, AttributeError):
            body = json.loads(body).get("detail", body)
        raise InstallerError(f"the station answered {exc.code} for {url}: {body}", 2) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise InstallerError(f"cannot reach {url}: {exc}", 2) from exc
    if len(data) > MAX_DOCUMENT:
        raise InstallerError(f"{url} is larger than 1 MiB", 2)
    return data


def _check_token(index: str, project: str, callsign: str, token: str, timeout: float) -> None:
    """Ask the index once with the token, so a refused token is reported in the station's own
    words before anything is created (pip would only say it found no distribution)."""
    credentials = base64.b64encode(f"{callsign}:{token}".encode()).decode("ascii")
    request = urllib.request.Request(  # noqa: S310 - --index is checked to be http(s)
        f"{index}/simple/{project}/", headers={"Authorization": f"Basic {credentials}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310
            return
    except urllib.error.HTTPError as exc:
        body = exc.read(2000).decode("utf-8", "replace").strip()
        raise InstallerError(f"the station refused the download token ({exc.code}): {body}",
                             2) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise InstallerError(f"cannot reach {index}/simple/: {exc}", 2) from exc


def _default_state() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or (
        os.environ.get("LOCALAPPDATA") if sys.platform == "win32" else None) or str(
        Path.home() / ".local" / "state")
    return Path(base) / "meshsite" / "installed-releases.json"


def _read_state(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _ask(question: str) -> bool:
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _venv_python(directory: Path) -> Path:
    return directory / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="meshsite-install.py", description=__doc__.split("\n\n")[0],
        epilog="Get the token from the station's page /get/ (a proof of your license).")
    parser.add_argument("--index", required=True, help="The station: http://HOST:PORT")
    parser.add_argument("--callsign", required=True, help="Your callsign (the token's).")
    parser.add_argument("--token", required=True, help="Your download token.")
    parser.add_argument("--trust-root", type=Path, help="PEM file of the root certificate "
                        "you trust for licenses; without it the station's is shown to confirm.")
    parser.add_argument("--venv", type=Path, default=Path.home() / "meshsite",
                        help="Virtual environment to create (default ~/meshsite).")
    parser.add_argument("--yes", action="store_true", help="Do not ask (needs --trust-root).")
    parser.add_argument("--state-file", type=Path, default=None,
                        help="Where the highest installed release counter is kept (default "
                             f"{_default_state()}).")
    parser.add_argument("--timeout", type=float, default=60, help="Seconds per request.")
    args = parser.parse_args(argv)
    try:
        return _install(args)
    except InstallerError as exc:
        print(f"meshsite-install: REFUSED: {exc}" if exc.status == 3 else
              f"meshsite-install: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("meshsite-install: interrupted; nothing more was done", file=sys.stderr)
        return 5


def _install(args: argparse.Namespace) -> int:
    index = args.index.rstrip("/")
    parts = urllib.parse.urlsplit(index)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InstallerError(f"--index must be http://HOST:PORT, not {args.index!r}", 1)
    if args.yes and args.trust_root is None:
        raise InstallerError("--yes needs --trust-root: a root of trust is only taken by your "
                             "explicit choice", 1)
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    raw = _fetch(index + "/get/release.json", args.timeout)
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise InstallerError("the release document is not JSON") from exc
    if args.trust_root is not None:
        try:
            roots = load_pems(args.trust_root.read_text())
        except OSError as exc:
            raise InstallerError(f"cannot read --trust-root {args.trust_root}: {exc}", 1) from exc
        if not roots:
            raise InstallerError(f"{args.trust_root} holds no PEM certificate", 1)
        root = roots[0]
    else:
        offered = load_pems(_fetch(index + "/get/trust-roots.pem", args.timeout).decode(
            "ascii", "replace"))
        root = None
        for candidate in offered:
            try:
                document_verify(document, candidate, dt.datetime.now(dt.UTC))
                root = candidate
                break
            except InstallerError:
                continue
        if root is None:
            raise InstallerError("none of the station's trust roots anchors this release")
        print(f"The station names this trust root for the release:\n  {root.label}\n"
              f"  SHA-256 {root.fingerprint}\nCompare it with a copy you trust.")
        if not _ask("Trust this root?"):
            raise InstallerError("the trust root was not confirmed", 5)
    manifest = document_verify(document, root, dt.datetime.now(dt.UTC))
    project = str(manifest.get("project", "meshsite"))
    state_path = args.state_file or _default_state()
    state = _read_state(state_path)
    installed = state.get(project, {}).get("counter", 0) if isinstance(
        state.get(project), dict) else 0
    if manifest["counter"] < installed:
        raise InstallerError(f"rollback: this release has counter {manifest['counter']}, but "
                             f"counter {installed} was installed here before ({state_path})")
    if python not in manifest.get("python", []):
        raise InstallerError(f"the release is built for {', '.join(manifest.get('python', []))}"
                             f", not this Python ({python}): run the installer with one of "
                             "those", 1)
    target = platform_key()
    text, notes = requirements(manifest, target, python)
    total = sum(int(f.get("size", 0)) for f in manifest["files"])
    print(f"Release: {project} {manifest['version']}, counter {manifest['counter']}, expires "
          f"{manifest['expires']}\nSigned by: {manifest['station']['callsign']} (station "
          f"{manifest['station']['stationId']}), license chain to {root.label}\nFrom: {index}\n"
          f"Into: {args.venv}\nFiles: {len(manifest['files'])} in the release, "
          f"{total:,} bytes in all; {text.count(chr(10))} projects for {target} {python}")
    for note in notes:
        print(f"Note: {note}")
    if not args.yes and not _ask("Install it?"):
        raise InstallerError("declined; nothing was installed", 5)
    _check_token(index, project, args.callsign, args.token, args.timeout)
    if args.venv.exists() and any(args.venv.iterdir()) and not (args.venv /
                                                                 "pyvenv.cfg").exists():
        raise InstallerError(f"{args.venv} exists and is not a virtual environment", 1)
    print(f"Creating the virtual environment {args.venv} ...", flush=True)
    venv.EnvBuilder(with_pip=True).create(args.venv)
    requirements_path = args.venv / "meshsite-requirements.txt"
    requirements_path.write_text(text)
    host = parts.hostname
    netloc = (f"{urllib.parse.quote(args.callsign, safe='')}:"
              f"{urllib.parse.quote(args.token, safe='')}@{parts.netloc.rsplit('@', 1)[-1]}")
    index_url = urllib.parse.urlunsplit((parts.scheme, netloc, "/simple/", "", ""))
    # Only the station's index: no PIP_* variable and no pip configuration file (a site-wide
    # one may add other indexes or find-links) take part.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    print("Installing with pip (every file checked against the signed hashes) ...", flush=True)
    with tempfile.TemporaryDirectory() as cache:
        result = subprocess.run(
            [str(_venv_python(args.venv)), "-m", "pip", "install", "--no-input",
             "--disable-pip-version-check", "--require-hashes", "--only-binary=:all:",
             "--cache-dir", cache, "--index-url", index_url, "--trusted-host", host,
             "-r", str(requirements_path)], env=env, check=False,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        output = result.stdout.replace(args.token, "TOKEN")
        raise InstallerError(f"pip refused the installation (nothing of the release is "
                             f"installed):\n{output[-3000:]}", 4)
    check = subprocess.run([str(_venv_python(args.venv)), "-I", "-c",
                            f"import importlib.metadata as m; print(m.version({project!r}))"],
                           capture_output=True, text=True, check=False)
    if check.stdout.strip() != manifest["version"]:
        raise InstallerError(f"after pip, {project} is {check.stdout.strip() or 'missing'}, "
                             f"not {manifest['version']}", 4)
    state[project] = {"counter": manifest["counter"], "version": manifest["version"],
                      "installed": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps(state, indent=1) + "\n")
    scripts = "Scripts" if sys.platform == "win32" else "bin"
    print(f"Installed {project} {manifest['version']} (release counter {manifest['counter']}) "
          f"into {args.venv}.\nStart your station: {args.venv / scripts / 'meshsite'} "
          "runstation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
