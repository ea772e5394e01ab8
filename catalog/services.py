"""Writes of the catalog: publishing, ingesting signed entries from peers, storing bodies,
conflict resolution, replication policy and eviction."""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import mimetypes
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from catalog.blobstore import BlobError, BlobStore
from catalog.changes import content_changed_announce
from catalog.entries import (
    EntryError,
    EntryFields,
    callsign_clean,
    content_type_clean,
    path_clean,
    priority_clean,
    winner_key,
)
from catalog.errors import CodedError
from catalog.hlc import ClockError, HybridLogicalClock, Timestamp, wall_clock_ms
from catalog.models import ContentEntry, ContentReplica, OriginStation, PeerPenalty, Priority

logger = logging.getLogger(__name__)

class CatalogError(CodedError):
    """What went wrong, as an API code, a human message and an HTTP status."""

    def __init__(self, code: str, detail: str, status: int = 400) -> None:
        super().__init__(code, detail)
        self.status = status


_STATUS = {"too_large": 413, "not_claimed": 409, "not_found": 404, "not_own": 403}


def _as_catalog_error(exc: CodedError) -> CatalogError:
    return CatalogError(exc.code, exc.detail, _STATUS.get(exc.code, 400))


# --- shared pieces --------------------------------------------------------------------------


@functools.cache
def _blob_store(root: str) -> BlobStore:
    return BlobStore(root)


def blob_store() -> BlobStore:
    return _blob_store(str(settings.CATALOG_BLOB_DIR))


_clock: HybridLogicalClock | None = None


def _physical_ms() -> int:
    return wall_clock_ms() + settings.CATALOG_CLOCK_OFFSET_MS


def station_clock() -> HybridLogicalClock:
    """This process's HLC for content (one per process; publishing also merges the previous
    version's timestamp, so versions of a path always move forward across processes)."""
    global _clock
    from certificates.selectors import station_get

    node = station_get().station_id
    if _clock is None or _clock.node != node:
        _clock = HybridLogicalClock(node, max_skew_ms=settings.CATALOG_MAX_CLOCK_SKEW * 1000,
                                    physical=_physical_ms)
    return _clock


def _own_identity() -> tuple[str, str, str]:
    from certificates.selectors import station_get

    station = station_get()
    if station.state == "unclaimed" or not station.owner_callsign:
        raise CatalogError("not_claimed", "This station has no owner yet: claim it "
                                          "(POST /api/claim-station or manage.py claimstation) "
                                          "before publishing.", 409)
    from certificates.selectors import is_blacklisted

    if station.owner_fingerprint and is_blacklisted(station.owner_fingerprint):
        raise CatalogError("owner_blacklisted", "The owner's certificate of this station is "
                                                "blacklisted here: nothing can be signed for it "
                                                "until the entry is lifted.", 409)
    return callsign_clean(station.owner_callsign), station.station_id, station.public_key


def _sign(fields: EntryFields) -> str:
    from certificates.services import station_sign

    return base64.b64encode(station_sign(fields.canonical())).decode("ascii")


def entry_fields(entry: ContentEntry) -> EntryFields:
    return EntryFields(
        origin_callsign=entry.origin_callsign, origin_station_id=entry.origin_station_id,
        path=entry.path, content_hash=entry.content_hash, size=entry.size,
        content_type=entry.content_type, priority=entry.priority, created=entry.created,
        modified=entry.modified, supersedes=entry.supersedes, deleted=entry.deleted)


def _replica_record(entry: ContentEntry, station_id: str, callsign: str = "") -> None:
    """Note that `station_id` holds the body; a callsign once known is never blanked."""
    replica, created = ContentReplica.objects.get_or_create(
        entry=entry, station_id=station_id, defaults={"callsign": callsign})
    if not created:
        replica.callsign = callsign or replica.callsign
        replica.save(update_fields=["callsign", "seen_at"])


def path_resolve(*, origin_callsign: str, path: str) -> ContentEntry | None:
    """Recompute which version of a path wins here and whether the path is in conflict.

    Heads are versions no other version supersedes; the winner is the latest head by
    (HLC, station, entry id). More than one head that is not a tombstone is a conflict."""
    with transaction.atomic():
        versions = list(ContentEntry.objects.select_for_update()
                        .filter(origin_callsign=origin_callsign, path=path))
        if not versions:
            return None
        superseded = {v.supersedes for v in versions if v.supersedes}
        heads = [v for v in versions if v.entry_id not in superseded]
        heads.sort(key=lambda v: winner_key(v.modified_packed, v.modified, v.origin_station_id,
                                            v.entry_id), reverse=True)
        winner = heads[0]
        conflicting = len([h for h in heads if not h.deleted]) > 1
        for version in versions:
            is_current = version.pk == winner.pk
            conflict = conflicting and version in heads and not version.deleted
            if version.is_current != is_current or version.conflict != conflict:
                ContentEntry.objects.filter(pk=version.pk).update(is_current=is_current,
                                                                  conflict=conflict)
                version.is_current, version.conflict = is_current, conflict
        if conflicting:
            logger.info("content conflict", extra={
                "origin": origin_callsign, "path": path, "winner": winner.entry_id,
                "heads": ",".join(h.entry_id[:12] for h in heads)})
        return winner


# --- publishing -----------------------------------------------------------------------------


def content_publish(*, path: str, chunks: Iterable[bytes], priority: int | str,
                    content_type: str | None = None,
                    progress: Callable[[int], None] | None = None) -> ContentEntry:
    """Publish a body under `path` for this station's owner; a new version if the path exists.
    Without `content_type` the media type is guessed from the path.

    The body goes into the blob store first (atomically); only then is the signed entry
    committed, so a crash at any moment leaves either nothing or a complete entry."""
    try:
        path = path_clean(path)
        priority = priority_clean(priority)
        content_type = content_type_clean(content_type or mimetypes.guess_type(path)[0])
    except EntryError as exc:
        raise _as_catalog_error(exc) from exc
    callsign, station_id, public_key = _own_identity()
    try:
        blob = blob_store().write(chunks, max_size=settings.CATALOG_MAX_ENTRY_SIZE,
                                  progress=progress)
    except BlobError as exc:
        raise _as_catalog_error(exc) from exc
    entry = _publish_version(callsign=callsign, station_id=station_id, public_key=public_key,
                             path=path, content_hash=blob.hash, size=blob.size,
                             content_type=content_type, priority=priority, deleted=False)
    storage_enforce()
    return entry


def content_delete(*, path: str) -> ContentEntry:
    """Publish a tombstone for one of the owner's paths; it replicates like any version."""
    try:
        path = path_clean(path)
    except EntryError as exc:
        raise _as_catalog_error(exc) from exc
    callsign, station_id, public_key = _own_identity()
    current = ContentEntry.objects.filter(origin_callsign=callsign, path=path,
                                          is_current=True).first()
    if current is None or current.deleted:
        raise CatalogError("not_found", f"{callsign} has no content at {path!r} to delete", 404)
    return _publish_version(callsign=callsign, station_id=station_id, public_key=public_key,
                            path=path, content_hash="", size=0, content_type=current.content_type,
                            priority=current.priority, deleted=True)


def content_reprioritise(*, entry: ContentEntry, priority: int) -> ContentEntry:
    """Change an entry's priority: own content gets a new signed version (same body), content
    of others a local override that steers replication on this station only."""
    priority = priority_clean(priority)
    if entry.is_own and entry.is_current and not entry.deleted:
        callsign, station_id, public_key = _own_identity()
        return _publish_version(callsign=callsign, station_id=station_id, public_key=public_key,
                                path=entry.path, content_hash=entry.content_hash, size=entry.size,
                                content_type=entry.content_type, priority=priority,
                                deleted=False)
    ContentEntry.objects.filter(pk=entry.pk).update(local_priority=priority)
    entry.local_priority = priority
    return entry


def _publish_version(*, callsign: str, station_id: str, public_key: str, path: str,
                     content_hash: str, size: int, content_type: str, priority: int,
                     deleted: bool) -> ContentEntry:
    clock = station_clock()
    with transaction.atomic():
        # IMMEDIATE transactions (SQLite) / the row lock (PostgreSQL) serialise two publishes of
        # one path, so each supersedes the one before it.
        current = (ContentEntry.objects.select_for_update()
                   .filter(origin_callsign=callsign, path=path, is_current=True).first())
        if current is not None:
            clock.receive(Timestamp.parse(current.modified))
        stamp = clock.now()
        created = str(stamp) if current is None or current.deleted else current.created
        fields = EntryFields(origin_callsign=callsign, origin_station_id=station_id, path=path,
                             content_hash=content_hash, size=size, content_type=content_type,
                             priority=priority, created=created, modified=str(stamp),
                             supersedes=current.entry_id if current else "", deleted=deleted)
        fields.check()
        entry = ContentEntry.objects.create(
            entry_id=fields.entry_id(), origin_callsign=callsign, origin_station_id=station_id,
            origin_public_key=public_key, path=path, content_hash=content_hash, size=size,
            content_type=content_type, priority=priority, created=created, modified=str(stamp),
            modified_packed=stamp.packed, supersedes=fields.supersedes, deleted=deleted,
            signature=_sign(fields), has_body=not deleted, is_own=True,
            last_accessed=timezone.now(), verified_at=timezone.now())
        if not deleted:
            _replica_record(entry, station_id, callsign)
        path_resolve(origin_callsign=callsign, path=path)
        transaction.on_commit(content_changed_announce)
    entry.refresh_from_db()
    logger.info("content published", extra={"origin": callsign, "path": path,
                                             "entry": entry.entry_id, "deleted": deleted,
                                             "priority": priority, "size": size})
    return entry


# --- entries from other stations -----------------------------------------------------------


def entry_to_wire(entry: ContentEntry) -> dict[str, Any]:
    """The signed fields plus signature and origin key: what stations exchange."""
    return {
        "entryId": entry.entry_id, "origin": entry.origin_callsign,
        "stationId": entry.origin_station_id, "publicKey": entry.origin_public_key,
        "path": entry.path, "hash": entry.content_hash, "size": entry.size,
        "contentType": entry.content_type, "priority": entry.priority,
        "created": entry.created, "modified": entry.modified, "supersedes": entry.supersedes,
        "deleted": entry.deleted, "signature": entry.signature, "held": entry.has_body,
    }


def _wire_fields(data: Any) -> tuple[EntryFields, str, str]:
    if not isinstance(data, dict):
        raise EntryError("bad_entry", "an entry is a JSON object")
    try:
        fields = EntryFields(
            origin_callsign=data["origin"], origin_station_id=data["stationId"],
            path=data["path"], content_hash=data["hash"], size=data["size"],
            content_type=data["contentType"], priority=data["priority"],
            created=data["created"], modified=data["modified"],
            supersedes=data.get("supersedes", ""), deleted=bool(data["deleted"]))
        public_key, signature = data["publicKey"], data["signature"]
    except KeyError as exc:
        raise EntryError("bad_entry", f"the entry lacks {exc.args[0]!r}") from exc
    for name in ("origin_callsign", "origin_station_id", "path", "content_hash",
                 "content_type", "created", "modified", "supersedes"):
        if not isinstance(getattr(fields, name), str):
            raise EntryError("bad_entry", f"{name} must be a string")
    if not isinstance(public_key, str) or not isinstance(signature, str):
        raise EntryError("bad_entry", "publicKey and signature must be base64 strings")
    fields.check()
    return fields, public_key, signature


def _verify_origin(fields: EntryFields, public_key: str, signature: str) -> None:
    """The signature is by `public_key`, that key is the origin station's, and that station is
    known (by a credential we verified) to speak for the origin callsign."""
    from certificates.errors import CertificateError
    from certificates.selectors import station_get
    from certificates.services import station_public_verify
    from certificates.x509tools import station_id_for

    try:
        raw_key = base64.b64decode(public_key, validate=True)
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EntryError("bad_signature", "publicKey or signature is not base64") from exc
    if station_id_for(raw_key) != fields.origin_station_id:
        raise EntryError("bad_signature", "the origin station id does not belong to publicKey")
    try:
        station_public_verify(public_key_b64=public_key, signature=raw_signature,
                              message=fields.canonical())
    except CertificateError as exc:
        raise EntryError("bad_signature", "the origin signature does not verify") from exc
    own = station_get()
    if own.station_id == fields.origin_station_id:
        if callsign_clean(own.owner_callsign or "") != fields.origin_callsign:
            raise EntryError("bad_origin", "an entry in our name that we did not publish")
        return
    origin = OriginStation.objects.filter(station_id=fields.origin_station_id).first()
    if origin is None:
        raise EntryError("unknown_origin", f"no verified credential for origin station "
                                           f"{fields.origin_station_id}")
    if origin.public_key != public_key or origin.callsign != fields.origin_callsign:
        raise EntryError("bad_origin", f"station {fields.origin_station_id} speaks for "
                                       f"{origin.callsign}, not {fields.origin_callsign}")


def origin_credential_accept(*, credential: Any) -> OriginStation:
    """Verify another station's credential (owner certificate chain to our roots, delegation
    of its key) and remember that its key speaks for its callsign."""
    from certificates.errors import CertificateError
    from certificates.services import station_credential_verify

    try:
        verified = station_credential_verify(credential)
    except CertificateError as exc:
        raise CatalogError(exc.code, f"origin credential refused: {exc}") from exc
    origin, _ = OriginStation.objects.update_or_create(
        station_id=verified.station_id,
        defaults={"callsign": callsign_clean(verified.callsign),
                  "public_key": credential["publicKey"], "credential": credential})
    return origin


@dataclass
class IngestResult:
    created: list[ContentEntry]
    known: int
    refused: list[tuple[str, str]]  # (entry id or "?", reason)
    unknown_origins: set[str]


def entries_ingest(*, entries: Any, received_from: str = "",
                   received_from_callsign: str = "") -> IngestResult:
    """Store entries (metadata only) received from a peer after checking each one's fields and
    origin signature. Bad entries are refused one by one; entries whose origin station we have
    no verified credential for are reported in `unknown_origins` for the caller to fetch."""
    result = IngestResult([], 0, [], set())
    if not isinstance(entries, list):
        result.refused.append(("?", "entries must be a list"))
        return result
    clock = station_clock()
    touched: set[tuple[str, str]] = set()
    for data in entries:
        entry_id = data.get("entryId", "?") if isinstance(data, dict) else "?"
        try:
            fields, public_key, signature = _wire_fields(data)
            if fields.entry_id() != entry_id:
                raise EntryError("bad_entry", "entryId is not the SHA-256 of the canonical form")
            if ContentEntry.objects.filter(entry_id=entry_id).exists():
                result.known += 1
                if data.get("held") and received_from:
                    entry = ContentEntry.objects.get(entry_id=entry_id)
                    _replica_record(entry, received_from, received_from_callsign)
                continue
            _verify_origin(fields, public_key, signature)
        except EntryError as exc:
            if exc.code == "unknown_origin":
                result.unknown_origins.add(str(data.get("stationId", "")))
            else:
                logger.warning("content entry refused", extra={
                    "entry": str(entry_id)[:64], "peer": received_from, "reason": exc.detail})
                result.refused.append((str(entry_id)[:64], exc.detail))
            continue
        stamp = fields.modified_timestamp()
        received = clock.receive(stamp)
        if received.clamped:
            logger.warning("remote content timestamp clamped", extra={
                "entry": entry_id, "origin": fields.origin_callsign, "skew_ms": received.skew_ms,
                "max_skew_ms": clock.max_skew_ms})
        try:
            with transaction.atomic():
                entry = ContentEntry.objects.create(
                    entry_id=entry_id, origin_callsign=fields.origin_callsign,
                    origin_station_id=fields.origin_station_id, origin_public_key=public_key,
                    path=fields.path, content_hash=fields.content_hash, size=fields.size,
                    content_type=fields.content_type, priority=fields.priority,
                    created=fields.created, modified=fields.modified,
                    modified_packed=stamp.packed, supersedes=fields.supersedes,
                    deleted=fields.deleted, signature=signature, received_from=received_from,
                    verified_at=timezone.now(),
                    has_body=bool(fields.content_hash) and blob_store().exists(
                        fields.content_hash))
                if data.get("held") and received_from:
                    _replica_record(entry, received_from, received_from_callsign)
        except IntegrityError:
            result.known += 1
            continue
        result.created.append(entry)
        touched.add((fields.origin_callsign, fields.path))
    for origin_callsign, path in touched:
        path_resolve(origin_callsign=origin_callsign, path=path)
    if result.created:
        transaction.on_commit(content_changed_announce)
    return result


# --- bodies ---------------------------------------------------------------------------------


def peer_penalise(*, station_id: str, callsign: str = "", reason: str) -> None:
    logger.warning("peer penalised", extra={"peer": station_id, "callsign": callsign,
                                            "reason": reason})
    with transaction.atomic():
        row, _ = PeerPenalty.objects.select_for_update().get_or_create(
            station_id=station_id, defaults={"callsign": callsign})
        row.count += 1
        row.last_reason = reason[:200]
        row.save()


def body_store(*, entry: ContentEntry, chunks: Iterable[bytes], source_station_id: str = "",
               source_callsign: str = "") -> ContentEntry:
    """Store a body fetched for `entry`: it must hash to the entry's signed hash (and the entry
    itself was signature-checked on arrival). A wrong body is not stored and its source is
    penalised."""
    from certificates.selectors import station_get

    if entry.deleted or not entry.content_hash:
        raise CatalogError("no_body", "a tombstone has no body")
    try:
        blob_store().write(chunks, max_size=entry.size, expected_hash=entry.content_hash)
    except BlobError as exc:
        if source_station_id:
            peer_penalise(station_id=source_station_id, callsign=source_callsign,
                          reason=f"{exc.code}: {exc.detail}")
        raise _as_catalog_error(exc) from exc
    # Every version sharing this body has it now.
    ContentEntry.objects.filter(content_hash=entry.content_hash).update(has_body=True)
    # Arrival counts as the last access for LRU: a body just fetched is not the first to go.
    ContentEntry.objects.filter(pk=entry.pk).update(last_accessed=timezone.now())
    own = station_get()
    for version in ContentEntry.objects.filter(content_hash=entry.content_hash):
        _replica_record(version, own.station_id, own.owner_callsign)
        if source_station_id:
            _replica_record(version, source_station_id, source_callsign)
    entry.refresh_from_db()
    return entry


def entry_touch(*, entry: ContentEntry) -> None:
    """A request for this entry: LRU time and demand."""
    from django.db.models import F

    ContentEntry.objects.filter(pk=entry.pk).update(last_accessed=timezone.now(),
                                                    demand=F("demand") + 1)


def entry_pin(*, entry: ContentEntry, pinned: bool = True) -> None:
    ContentEntry.objects.filter(pk=entry.pk).update(pinned=pinned)


def entry_evict(*, entry: ContentEntry, force: bool = False) -> bool:
    """Drop the body of an entry (the metadata stays, so the catalog still lists it). Own
    content, priority 1 and pinned entries are kept unless `force`."""
    from certificates.selectors import station_get

    if not entry.has_body:
        return False
    if not force and (entry.is_own or entry.effective_priority == Priority.ESSENTIAL
                      or entry.pinned):
        return False
    # One body may serve several versions: keep it while any of them must stay.
    keepers = (Q(is_own=True) | Q(pinned=True) | Q(local_priority=Priority.ESSENTIAL)
               | Q(priority=Priority.ESSENTIAL, local_priority__isnull=True))
    others = ContentEntry.objects.filter(content_hash=entry.content_hash).exclude(pk=entry.pk)
    if not force and others.filter(keepers).exists():
        return False
    ContentEntry.objects.filter(content_hash=entry.content_hash).update(has_body=False)
    ContentReplica.objects.filter(entry__content_hash=entry.content_hash,
                                  station_id=station_get().station_id).delete()
    blob_store().delete(entry.content_hash)
    logger.info("content evicted", extra={"entry": entry.entry_id, "path": entry.path,
                                          "size": entry.size})
    return True


def storage_used() -> int:
    """Bytes of distinct bodies held."""
    from django.db.models import Max

    rows = (ContentEntry.objects.filter(has_body=True).values("content_hash")
            .annotate(size=Max("size")))
    return sum(row["size"] for row in rows)


def storage_enforce(*, budget: int | None = None) -> list[ContentEntry]:
    """Evict cached bodies, least recently used first, until the bodies fit the storage
    budget. Only cache (priorities 2 and 3 of others, unpinned) is evicted."""
    budget = settings.CATALOG_STORAGE_BUDGET if budget is None else budget
    used = storage_used()
    evicted: list[ContentEntry] = []
    if used <= budget:
        return evicted
    candidates = (ContentEntry.objects.filter(has_body=True, is_own=False, pinned=False)
                  .exclude(priority=Priority.ESSENTIAL, local_priority__isnull=True)
                  .exclude(local_priority=Priority.ESSENTIAL)
                  # Bodies replicated but never asked for here go first, on every database.
                  .order_by(F("last_accessed").asc(nulls_first=True), "pk"))
    for entry in candidates:
        if used <= budget:
            break
        if entry.effective_priority not in (Priority.POPULAR, Priority.STANDARD,
                                            Priority.PERSONAL):
            continue
        if entry_evict(entry=entry):
            used -= entry.size
            evicted.append(entry)
    if used > budget:
        logger.warning("storage budget exceeded by content that is never evicted",
                       extra={"used": used, "budget": budget})
    return evicted


def entry_reverify(*, entry: ContentEntry) -> tuple[bool, str]:
    """Check the signature again and re-hash the body; a damaged body is dropped."""
    try:
        fields = entry_fields(entry).check()
        if fields.entry_id() != entry.entry_id:
            return False, "the entry id does not match its fields"
        _verify_origin(fields, entry.origin_public_key, entry.signature)
    except EntryError as exc:
        return False, exc.detail
    if entry.has_body and not blob_store().verify(entry.content_hash):
        ContentEntry.objects.filter(content_hash=entry.content_hash).update(has_body=False)
        blob_store().delete(entry.content_hash)
        return False, "the stored body was damaged and has been dropped"
    ContentEntry.objects.filter(pk=entry.pk).update(verified_at=timezone.now())
    return True, "signature and body verified"


def clock_parse(text: str) -> Timestamp:
    try:
        return Timestamp.parse(text)
    except ClockError as exc:
        raise CatalogError("bad_timestamp", str(exc)) from exc


def blobs_orphaned_delete(*, older_than: float = 3600) -> int:
    """Delete bodies no entry holds: left when a process died between writing a body and
    committing its entry. Only blobs older than `older_than` seconds, so a publish in progress
    (body written, entry not yet committed) is never touched."""
    store = blob_store()
    held = set(ContentEntry.objects.filter(has_body=True).values_list("content_hash", flat=True))
    removed = 0
    for blob_hash in list(store.hashes()):
        if blob_hash not in held and store.age(blob_hash) > older_than:
            removed += store.delete(blob_hash)
    if removed:
        logger.info("orphaned bodies deleted", extra={"count": removed})
    return removed


def demand_decay() -> int:
    """Halve every demand count (hourly, from the prune job): "popular" means asked for lately,
    so a body whose demand fades becomes cache again and may be evicted."""
    # Integer columns: the division truncates on SQLite and PostgreSQL alike.
    return (ContentEntry.objects.filter(Q(demand__gt=0) | Q(mesh_demand__gt=0))
            .update(demand=F("demand") / 2, mesh_demand=F("mesh_demand") / 2))
