"""Releases of the station software as catalog content: building, publishing, importing,
verifying, choosing the one this station serves, and pruning.

Kept apart from `catalog.services` (content in general) because a release is many entries with
rules of their own; every write still goes through `services.content_publish` /
`content_delete`, so releases replicate, forward and are evicted like any content.

Catalog paths (under the publishing station's callsign):
    releases/<counter>/manifest.json   the signed document (`catalog.release`), byte for byte as
                                        its builder signed it (an imported release keeps the
                                        builder's signature; the entry only carries it)
    releases/files/<wheel>             each wheel
    releases/files/<wheel>.metadata    its core metadata (PEP 658)
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db.models import Q
from django.utils import timezone

from catalog import release as rel
from catalog.blobstore import CHUNK
from catalog.models import ContentEntry, Priority
from catalog.services import CatalogError, blob_store, content_delete, content_publish

logger = logging.getLogger(__name__)

MANIFEST_RE = re.compile(r"^releases/(\d{1,9})/manifest\.json$")
FILES_PREFIX = "releases/files/"
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# --- verified reads -------------------------------------------------------------------------


@dataclass
class VerifiedRelease:
    entry: ContentEntry
    document: dict[str, Any]
    raw: bytes

    @property
    def manifest(self) -> dict[str, Any]:
        return self.document["manifest"]

    @property
    def counter(self) -> int:
        return self.manifest["counter"]

    @property
    def expires(self) -> dt.datetime:
        return rel.parse_time(self.manifest["expires"], "expires")


def release_verify(*, document: dict[str, Any]) -> dict[str, Any]:
    """The document's manifest is signed by the station its credential names, and that
    credential chains to a root this station trusts, by an operator not blacklisted here.
    Raises CatalogError (`untrusted_release` with the certificate error's words, or
    `bad_release_signature`)."""
    from certificates.errors import CertificateError
    from certificates.services import station_credential_verify, station_public_verify

    manifest = rel.manifest_check(document.get("manifest"))
    credential = document.get("credential")
    try:
        verified = station_credential_verify(credential)  # type: ignore[arg-type]
    except CertificateError as exc:
        raise CatalogError("untrusted_release", f"the release's station credential is refused "
                                                f"here: {exc.code}: {exc.detail}", 403) from exc
    station = manifest["station"]
    if (station["stationId"] != verified.station_id
            or station["publicKey"] != credential["publicKey"]  # type: ignore[index]
            or station["callsign"] != verified.callsign):
        raise CatalogError("untrusted_release", "the manifest names another station than its "
                                                "credential", 403)
    try:
        signature = base64.b64decode(document["signature"], validate=True)
        station_public_verify(public_key_b64=station["publicKey"], signature=signature,
                              message=rel.signed_message(manifest))
    except (ValueError, CertificateError) as exc:
        raise CatalogError("bad_release_signature", "the manifest's signature does not verify "
                                                    "(tampered or damaged)", 403) from exc
    return manifest


def _read_body(entry: ContentEntry, fetch: bool) -> bytes | None:
    if not entry.has_body and fetch:
        from catalog.fetch import body_fetch

        fetched = body_fetch(entry=entry)
        if fetched is None:
            return None
        entry = fetched
    if not entry.has_body:
        return None
    try:
        with blob_store().open(entry.content_hash) as handle:
            return handle.read(rel.MAX_MANIFEST_SIZE + 1)
    except FileNotFoundError:
        return None


_verified_cache: dict[tuple[str, Any], tuple[float, Any]] = {}
_cache_lock = threading.Lock()
CACHE_SECONDS = 300.0


def _trust_stamp() -> Any:
    """Changes whenever the blacklist or the trust store does: a cached verdict is only reused
    under the same trust."""
    from django.db.models import Count, Max

    from certificates.models import BlacklistEntry, Certificate

    blacklist = BlacklistEntry.objects.aggregate(n=Count("pk"), created=Max("created_at"),
                                                 lifted=Max("lifted_at"))
    store = Certificate.objects.aggregate(n=Count("pk"), changed=Max("updated_at"))
    return (tuple(blacklist.values()), tuple(store.values()))


def _verified(entry: ContentEntry, fetch: bool,
              stamp: Any = None) -> VerifiedRelease | CatalogError | None:
    """The verified release an entry carries (cached per body hash while trust is unchanged:
    chain checks cost), the error that refused it, or None while its body is nowhere to be
    had."""
    now = time.monotonic()
    key = (entry.content_hash, stamp if stamp is not None else _trust_stamp())
    with _cache_lock:
        cached = _verified_cache.get(key)
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        result = cached[1]
        if isinstance(result, VerifiedRelease):
            return VerifiedRelease(entry, result.document, result.raw)
        return result
    raw = _read_body(entry, fetch)
    if raw is None:
        return None
    try:
        document = rel.document_parse(raw)
        release_verify(document=document)
        outcome: VerifiedRelease | CatalogError = VerifiedRelease(entry, document, raw)
    except rel.ReleaseError as exc:
        outcome = CatalogError(exc.code, exc.detail)
    except CatalogError as exc:
        outcome = exc
    with _cache_lock:
        if len(_verified_cache) > 256:
            _verified_cache.clear()
        _verified_cache[key] = (now, outcome)
    return outcome


def release_entries() -> list[ContentEntry]:
    """Current manifest entries of every origin, highest counter first."""
    rows = [row for row in ContentEntry.objects.filter(
        is_current=True, deleted=False, path__startswith="releases/",
        path__endswith="/manifest.json") if MANIFEST_RE.match(row.path)]
    rows.sort(key=lambda row: int(MANIFEST_RE.match(row.path).group(1)),  # type: ignore[union-attr]
              reverse=True)
    return rows


@dataclass
class ReleaseState:
    entry: ContentEntry
    release: VerifiedRelease | None
    problem: str


def releases_iter(*, fetch: bool = False) -> Iterator[ReleaseState]:
    """Every release this station knows of, highest counter first, with what is wrong with
    each (empty if usable); lazy, so a caller that stops early verifies no more."""
    now = timezone.now()
    stamp = _trust_stamp()
    for entry in release_entries():
        outcome = _verified(entry, fetch, stamp)
        if outcome is None:
            yield ReleaseState(entry, None, "body not held here")
        elif isinstance(outcome, CatalogError):
            yield ReleaseState(entry, None, f"{outcome.code}: {outcome.detail}")
        elif outcome.expires <= now:
            yield ReleaseState(entry, outcome, "expired")
        else:
            yield ReleaseState(entry, outcome, "")


def releases_known(*, fetch: bool = False) -> list[ReleaseState]:
    return list(releases_iter(fetch=fetch))


def release_current() -> VerifiedRelease | None:
    """The release this station serves: the highest counter that verifies and has not expired
    (bodies fetched through the mesh when needed)."""
    for state in releases_iter(fetch=True):
        if state.release is not None and not state.problem:
            return state.release
    return None


def release_refusals() -> list[str]:
    """Why the releases this station knows are not served (for error messages)."""
    return [f"{state.entry.origin_callsign}/{state.entry.path}: {state.problem}"
            for state in releases_known() if state.problem][:5]


def file_entry(sha256: str) -> ContentEntry | None:
    """An entry (any origin) whose body is the file with this hash, held ones first."""
    return (ContentEntry.objects.filter(content_hash=sha256, deleted=False,
                                        path__startswith=FILES_PREFIX)
            .order_by("-has_body", "-modified_packed").first())


# --- publishing -----------------------------------------------------------------------------


def _counter_next() -> int:
    highest = 0
    for path in ContentEntry.objects.filter(path__startswith="releases/",
                                            path__endswith="/manifest.json") \
            .values_list("path", flat=True):
        match = MANIFEST_RE.match(path)
        if match:
            highest = max(highest, int(match.group(1)))
    return highest + 1


def _publish_file(path: str, source: Path | bytes, priority: int) -> None:
    """Publish unless this station's current version of `path` already has this body."""
    from catalog.services import _own_identity

    callsign = _own_identity()[0]
    if isinstance(source, bytes):
        digest = hashlib.sha256(source).hexdigest()
        chunks: Any = iter([source])
    else:
        digest, _ = rel.file_digest(source)
        chunks = None
    current = ContentEntry.objects.filter(origin_callsign=callsign, path=path,
                                          is_current=True, deleted=False).first()
    if current is not None and current.content_hash == digest and current.has_body \
            and current.priority == priority:
        return
    if chunks is None:
        with open(source, "rb") as handle:  # type: ignore[arg-type]
            content_publish(path=path, chunks=iter(lambda: handle.read(CHUNK), b""),
                            priority=priority, content_type="application/octet-stream")
    else:
        content_publish(path=path, chunks=chunks, priority=priority,
                        content_type="text/plain; charset=utf-8")


def _file_record(path: Path) -> tuple[dict[str, Any], bytes]:
    wheel = rel.wheel_name(path.name)
    digest, size = rel.file_digest(path)
    metadata = rel.wheel_metadata(path)
    record = {
        "name": path.name, "project": wheel.project, "version": wheel.version,
        "sha256": digest, "size": size,
        "metadata": {"sha256": hashlib.sha256(metadata).hexdigest(),
                     "size": len(metadata)},
        "requiresPython": rel.requires_python(metadata),
    }
    return record, metadata


def release_publish(*, files: list[Path], expires: dt.datetime,
                    priority: int = Priority.POPULAR, missing: list[dict] | None = None,
                    platforms: list[str] | None = None, pythons: list[str] | None = None,
                    progress: Progress = _quiet) -> VerifiedRelease:
    """Sign a manifest of `files` (wheels, the project's own among them) and publish it with
    every file and its core metadata into the catalog."""
    from catalog.services import _own_identity
    from certificates.services import station_credential, station_sign

    callsign, station_id, public_key = _own_identity()
    now = timezone.now().replace(microsecond=0)
    if expires <= now:
        raise CatalogError("bad_expiry", f"the expiry {rel.utc_text(expires)} is not in the "
                                         "future")
    wheels = sorted({path.name: path for path in files}.values(), key=lambda p: p.name)
    if not wheels:
        raise CatalogError("no_files", "a release needs at least the project's wheel")
    records = []
    for index, path in enumerate(wheels, 1):
        try:
            record, metadata = _file_record(path)
        except rel.ReleaseError as exc:
            raise CatalogError(exc.code, exc.detail) from exc
        progress(f"[{index}/{len(wheels)}] publishing {path.name} ({record['size']:,} bytes)")
        _publish_file(FILES_PREFIX + path.name, path, priority)
        _publish_file(FILES_PREFIX + path.name + ".metadata", metadata, priority)
        records.append(record)
    own = [r for r in records if r["project"] == rel.PROJECT]
    if len(own) != 1:
        raise CatalogError("no_project_wheel", f"a release holds exactly one {rel.PROJECT} wheel "
                                               f"(found {len(own)})")
    manifest = {
        "format": rel.FORMAT, "project": rel.PROJECT, "version": own[0]["version"],
        "counter": _counter_next(), "created": rel.utc_text(now),
        "expires": rel.utc_text(expires), "python": pythons or rel.PYTHONS,
        "platforms": platforms or list(rel.TARGETS), "files": records,
        "missing": missing or [],
        "station": {"stationId": station_id, "callsign": callsign, "publicKey": public_key},
    }
    rel.manifest_check(manifest)
    signature = base64.b64encode(station_sign(rel.signed_message(manifest))).decode("ascii")
    document = {"manifest": manifest, "signature": signature,
                "credential": station_credential()}
    raw = json.dumps(document, indent=1, sort_keys=True).encode("utf-8") + b"\n"
    entry = content_publish(path=f"releases/{manifest['counter']}/manifest.json",
                            chunks=iter([raw]), priority=priority,
                            content_type="application/json")
    logger.info("release published", extra={"version": manifest["version"],
                                             "counter": manifest["counter"],
                                             "files": len(records)})
    return VerifiedRelease(entry, document, raw)


def release_import(*, folder: Path, priority: int = Priority.POPULAR,
                   progress: Progress = _quiet) -> VerifiedRelease:
    """Publish a release carried on a stick: `folder` holds manifest.json (the signed document,
    unchanged) and every file it lists. The signature and credential are checked first, and
    every file against its signed hash; the builder's signature is kept."""
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise CatalogError("no_manifest", f"{folder} holds no manifest.json")
    raw = manifest_path.read_bytes()
    try:
        document = rel.document_parse(raw)
    except rel.ReleaseError as exc:
        raise CatalogError(exc.code, exc.detail) from exc
    manifest = release_verify(document=document)
    for item in manifest["files"]:
        path = folder / item["name"]
        if not path.is_file():
            raise CatalogError("missing_file", f"{item['name']} is listed in the manifest but "
                                               f"not in {folder}")
        digest, size = rel.file_digest(path)
        if digest != item["sha256"] or size != item["size"]:
            raise CatalogError("hash_mismatch", f"{item['name']} does not match the signed "
                                                "hash: the copy is damaged or tampered with")
    for index, item in enumerate(manifest["files"], 1):
        path = folder / item["name"]
        progress(f"[{index}/{len(manifest['files'])}] importing {item['name']}")
        _publish_file(FILES_PREFIX + item["name"], path, priority)
        _publish_file(FILES_PREFIX + item["name"] + ".metadata", rel.wheel_metadata(path),
                      priority)
    entry = content_publish(path=f"releases/{manifest['counter']}/manifest.json",
                            chunks=iter([raw]), priority=priority,
                            content_type="application/json")
    return VerifiedRelease(entry, document, raw)


def release_export(*, release: VerifiedRelease, folder: Path) -> int:
    """Write a release (document and files) into `folder`, for `release import` elsewhere."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_bytes(release.raw)
    written = 0
    for item in release.manifest["files"]:
        entry = file_entry(item["sha256"])
        if entry is None or not entry.has_body:
            raise CatalogError("missing_file", f"this station does not hold {item['name']}")
        with blob_store().open(item["sha256"]) as src, open(folder / item["name"], "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        written += 1
    return written


def release_prune(*, keep: int = 2) -> list[str]:
    """Delete (tombstones that replicate) this station's own release manifests beyond the
    newest `keep`, and its own files no kept release lists. Returns the deleted paths."""
    from catalog.services import _own_identity

    callsign = _own_identity()[0]
    own = [e for e in release_entries() if e.origin_callsign == callsign]
    kept, dropped = own[:keep], own[keep:]
    needed: set[str] = set()
    for entry in kept:
        outcome = _verified(entry, False)
        if isinstance(outcome, VerifiedRelease):
            for item in outcome.manifest["files"]:
                needed.update({FILES_PREFIX + item["name"],
                               FILES_PREFIX + item["name"] + ".metadata"})
    deleted = []
    for entry in dropped:
        content_delete(path=entry.path)
        deleted.append(entry.path)
    if kept:
        for entry in ContentEntry.objects.filter(
                Q(path__startswith=FILES_PREFIX), origin_callsign=callsign, is_current=True,
                deleted=False):
            if entry.path not in needed:
                content_delete(path=entry.path)
                deleted.append(entry.path)
    return deleted


# --- building -------------------------------------------------------------------------------


def project_wheel_build(*, source: Path, out: Path, progress: Progress = _quiet) -> Path:
    """`pip wheel --no-deps SOURCE` into `out` (no build isolation, so no network is needed
    when setuptools and wheel are installed)."""
    progress(f"building the {rel.PROJECT} wheel from {source}")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                             "--no-build-isolation", "-q", "-w", str(out), str(source)],
                            capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        raise CatalogError("build_failed", f"pip wheel failed: {result.stderr[-1500:]}")
    built = sorted(out.glob(f"{rel.PROJECT}-*.whl"), key=lambda p: p.stat().st_mtime)
    if not built:
        raise CatalogError("build_failed", "pip wheel made no meshsite wheel")
    return built[-1]


def _requirements() -> list[str]:
    from importlib import metadata

    try:
        requires = metadata.requires(rel.PROJECT) or []
    except metadata.PackageNotFoundError as exc:
        raise CatalogError("not_installed", "the meshsite package metadata is missing: install "
                                            "the project (pip install -e .)") from exc
    return [req for req in requires if "extra ==" not in req]


_NO_MATCH_RE = re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)")


def wheels_download(*, out: Path, targets: list[str], pythons: list[str],
                    progress: Progress = _quiet) -> list[dict[str, str]]:
    """`pip download --only-binary=:all:` of the project's dependencies for every target
    platform and Python; a dependency without a wheel somewhere is left out there and
    reported (with what to install instead)."""
    missing: list[dict[str, str]] = []
    for target in targets:
        for python in pythons:
            requirements = _requirements()
            while True:
                progress(f"downloading wheels for {target} {python} ...")
                command = [sys.executable, "-m", "pip", "download", "-q", "-d", str(out),
                           "--only-binary=:all:", "--implementation", "cp",
                           "--python-version", python[2] + "." + python[3:],
                           "--abi", python]
                for platform in rel.TARGETS[target]:
                    command += ["--platform", platform]
                result = subprocess.run(command + requirements, capture_output=True, text=True,
                                        check=False, timeout=1800)
                if result.returncode == 0:
                    break
                match = _NO_MATCH_RE.search(result.stderr)
                if not match:
                    raise CatalogError("download_failed", f"pip download for {target} {python} "
                                                          f"failed: {result.stderr[-1500:]}")
                project = rel.normalize_project(match.group(1))
                kept = [r for r in requirements if rel.normalize_project(
                    re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) != project]
                if len(kept) == len(requirements):
                    raise CatalogError("download_failed", f"{project} (a dependency of a "
                                       f"dependency) has no wheel for {target} {python}")
                requirements = kept
                missing.append({"platform": target, "python": python, "project": project,
                                "instead": rel.INSTEAD.get(project, f"build {project} from "
                                                           "source or use your system's "
                                                           "package")})
                progress(f"  no {project} wheel for {target} {python}: left out")
    return missing


def release_build(*, wheels_dir: Path | None, source: Path | None, expires: dt.datetime,
                  priority: int = Priority.POPULAR, targets: list[str] | None = None,
                  pythons: list[str] | None = None,
                  progress: Progress = _quiet) -> VerifiedRelease:
    """Collect the wheels (from `wheels_dir`, or downloaded per target when there is none),
    build the project's own wheel unless the folder has it, and publish the release."""
    from catalog.services import _own_identity

    _own_identity()  # not claimed: say so before minutes of downloads
    targets = targets or list(rel.TARGETS)
    pythons = pythons or list(rel.PYTHONS)
    with tempfile.TemporaryDirectory(prefix="meshsite-release-") as tmp:
        work = Path(tmp)
        missing: list[dict[str, str]] = []
        if wheels_dir is not None:
            if not wheels_dir.is_dir():
                raise CatalogError("no_folder", f"{wheels_dir} is not a folder")
            files = sorted(wheels_dir.glob("*.whl"))
            if not files:
                raise CatalogError("no_files", f"{wheels_dir} holds no .whl files")
        else:
            missing = wheels_download(out=work, targets=targets, pythons=pythons,
                                      progress=progress)
            files = sorted(work.glob("*.whl"))
        if not any(rel.wheel_name(p.name).project == rel.PROJECT for p in files):
            if source is None or not (source / "pyproject.toml").is_file():
                raise CatalogError("no_project_wheel", "no meshsite wheel among the files and "
                                   "no source checkout to build one: add the wheel to --wheels")
            files.append(project_wheel_build(source=source, out=work / "project",
                                             progress=progress))
        return release_publish(files=files, expires=expires, priority=priority,
                               missing=missing, platforms=targets, pythons=pythons,
                               progress=progress)


# --- download tokens ------------------------------------------------------------------------

TOKEN_KEY = "catalog:download-token:"  # noqa: S105 - a Redis key prefix
TOKEN_RATE_KEY = "catalog:download-token-rate:"  # noqa: S105 - a Redis key prefix
INDEX_RATE_KEY = "catalog:index-rate:"
NONCE_PURPOSE = "download-token"


def download_token_message(*, station_id: str, nonce: str) -> bytes:
    """What an operator signs with their license key to get a download token."""
    return f"meshsite-download-token-v1\nstation:{station_id}\nnonce:{nonce}\n".encode("ascii")


def download_rate_check(*, address: str) -> None:
    """One slot of the per-address budget of nonces and tokens, or `rate_limited`."""
    from django.conf import settings

    from certificates.errors import CertificateError
    from meshsite.redisconn import rate_window_take

    retry = rate_window_take(key=TOKEN_RATE_KEY + address, window=60,
                             limit=settings.DOWNLOAD_TOKEN_RATE)
    if retry:
        raise CertificateError("rate_limited", f"More than {settings.DOWNLOAD_TOKEN_RATE} "
                               f"download-token requests a minute from {address}; try again "
                               f"in {retry} s.", retry_after=retry)


@dataclass
class DownloadToken:
    callsign: str
    token: str
    expires: dt.datetime


def download_token_issue(*, certificate: str, chain: list[str] | None, nonce: str,
                         signature: str) -> DownloadToken:
    """A download token for the licensed operator who signed `download_token_message` with
    the key of `certificate` (which must chain to our roots and not be blacklisted). Raises
    CertificateError with the codes of the claim."""
    import secrets

    from django.conf import settings

    from certificates.errors import CertificateError
    from certificates.selectors import station_get
    from certificates.services import license_verify, nonce_consume, signature_verify
    from certificates.x509tools import decode_signature
    from meshsite.redisconn import get_redis

    if not isinstance(nonce, str) or not nonce:
        raise CertificateError("bad_nonce", "A nonce from POST /api/download-token/nonce is "
                                            "required.")
    raw_signature = decode_signature(signature)
    verified = license_verify(certificate=certificate, chain=chain)
    if not nonce_consume(purpose=NONCE_PURPOSE, nonce=nonce):
        raise CertificateError("bad_nonce", "The nonce is unknown, expired or already used: get "
                                            "a fresh one from POST /api/download-token/nonce.")
    message = download_token_message(station_id=station_get().station_id, nonce=nonce)
    signature_verify(public_key=verified.public_key, signature=raw_signature, message=message)
    token = secrets.token_urlsafe(24)
    ttl = settings.DOWNLOAD_TOKEN_TTL
    get_redis().set(TOKEN_KEY + hashlib.sha256(token.encode()).hexdigest(),
                    json.dumps({"callsign": verified.callsign,
                                "fingerprint": verified.fingerprint}), ex=ttl)
    logger.info("download token issued", extra={"callsign": verified.callsign})
    return DownloadToken(verified.callsign, token,
                         timezone.now().replace(microsecond=0) + dt.timedelta(seconds=ttl))


def download_token_check(*, callsign: str, token: str) -> str | None:
    """Why CALLSIGN:TOKEN is refused, or None when it is a live token of that callsign (whose
    certificate is not blacklisted since). Takes one slot of the token's request budget."""
    from django.conf import settings

    from certificates.selectors import is_blacklisted
    from meshsite.redisconn import get_redis, rate_window_take

    key = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
    raw = get_redis().get(TOKEN_KEY + key) if token else None
    if raw is None:
        return "the download token is unknown or expired"
    data = json.loads(raw)
    if data["callsign"] != callsign.strip().upper():
        return f"the token belongs to another callsign than {callsign[:16]!r}"
    if is_blacklisted(data["fingerprint"]):
        return "the certificate this token was issued for is blacklisted"
    retry = rate_window_take(key=INDEX_RATE_KEY + key, window=60, limit=settings.INDEX_RATE)
    if retry:
        return (f"rate_limited: more than {settings.INDEX_RATE} requests a minute; retry in "
                f"{retry} s")
    return None
