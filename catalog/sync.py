"""CONTENT_SYNC over `/ws/coordinate`: catalog reconciliation, entry exchange and demand.

The mesh runs `catalog_link_sync` on every link meshd holds at each gossip round (registered in
`CatalogConfig.ready`). One round on a link:

1. Reconciliation (`catalog.reconcile`): CONTENT_SYNC requests carry one bounded message each
   way until both sides know the symmetric difference of their catalogs: `need` (entry ids the
   peer has and we lack) and `have` (ours it lacks). Cost grows with the differences.
2. CONTENT_ENTRIES: we pull the signed entries we need (with the credentials of their origin
   stations, so the entries can be checked, but those we name as known: a credential is
   kilobytes, minutes on the air) and push the ones the peer lacks (over RF without our own
   credential, which an RF neighbour holds already). Metadata only:
   bodies follow the replication policy (`catalog.tasks.replicate`).
3. CONTENT_DEMAND: request counts of priority-2 entries, so "popular" means popular across the
   mesh, not only here.

Everything that arrives is checked (`catalog.services.entries_ingest`): the entry id is the hash
of the canonical form, the origin signature verifies, and the origin station's credential chains
to a root this station trusts. Lists are bounded per message.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from catalog import selectors, services
from catalog.models import ContentEntry, OriginStation, Priority
from catalog.reconcile import ID_BYTES, MAX_MESSAGE_SIZE, ReconcileError, Reconciler
from mesh.registry import LinkContext, MeshHandlerError

logger = logging.getLogger(__name__)

CONTENT_SYNC = "CONTENT_SYNC"
CONTENT_ENTRIES = "CONTENT_ENTRIES"
CONTENT_DEMAND = "CONTENT_DEMAND"

MAX_ROUNDS = 200          # reconciliation round trips per session (a runaway peer stops here)
ENTRIES_PER_MESSAGE = 100  # signed entries per CONTENT_ENTRIES message
MAX_KNOWN_ORIGINS = 64  # origin stations a pull names as known (more: none are named)
DEMAND_PER_MESSAGE = 500


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _reconcile_message(payload: dict[str, Any]) -> bytes:
    text = payload.get("m")
    # The initiator's header sets the session's message size (up to the protocol's ceiling),
    # so stations configured with different sizes still reconcile.
    limit = MAX_MESSAGE_SIZE
    if not isinstance(text, str) or len(text) > 4 * (limit // 3 + 1):
        raise MeshHandlerError("bad_sync", f"m must be base64 of at most {limit} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MeshHandlerError("bad_sync", "m is not base64") from exc


def _entry_ids(value: Any, limit: int) -> list[str]:
    if not isinstance(value, list) or len(value) > limit:
        raise MeshHandlerError("bad_entries", f"want a list of at most {limit} entry ids")
    ids = []
    for item in value:
        if not isinstance(item, str) or len(item) != 2 * ID_BYTES:
            raise MeshHandlerError("bad_entries", "an entry id is 64 hex digits")
        try:
            bytes.fromhex(item)
        except ValueError as exc:
            raise MeshHandlerError("bad_entries", "an entry id is 64 hex digits") from exc
        ids.append(item.lower())
    return ids


# --- what we send --------------------------------------------------------------------------


def entries_payload(entry_ids: list[str], known: frozenset[str] = frozenset()
                    ) -> dict[str, Any]:
    """The signed entries named, with the credentials of their origin stations (but those
    the asking station says it holds already, `known`: each is kilobytes)."""
    from certificates.services import station_credential

    rows = list(ContentEntry.objects.filter(entry_id__in=entry_ids))
    origins: dict[str, dict[str, Any]] = {}
    own = station_credential()
    for row in rows:
        sid = row.origin_station_id
        if sid in origins or sid in known:
            continue
        if own and own["stationId"] == sid:
            origins[sid] = own
            continue
        origin = OriginStation.objects.filter(station_id=sid).first()
        if origin is not None and origin.credential:
            origins[sid] = origin.credential
    return {"entries": [services.entry_to_wire(row) for row in rows],
            "origins": list(origins.values())}


def entries_receive(payload: dict[str, Any], *, peer_station_id: str,
                    peer_callsign: str) -> dict[str, int]:
    """Accept origin credentials we lack, then ingest the entries (each checked)."""
    entries = payload.get("entries")
    origins = payload.get("origins") or []
    if not isinstance(entries, list) or len(entries) > ENTRIES_PER_MESSAGE:
        raise MeshHandlerError("bad_entries",
                               f"entries must be a list of at most {ENTRIES_PER_MESSAGE}")
    if not isinstance(origins, list) or len(origins) > ENTRIES_PER_MESSAGE:
        raise MeshHandlerError("bad_entries", "origins must be a list of credentials")
    known = dict(OriginStation.objects.values_list("station_id", "public_key"))
    for credential in origins:
        if not isinstance(credential, dict):
            continue
        sid = credential.get("stationId")
        if known.get(sid) == credential.get("publicKey"):
            continue
        try:
            services.origin_credential_accept(credential=credential)
        except services.CatalogError as exc:
            logger.warning("origin credential refused", extra={
                "origin": str(sid)[:32], "peer": peer_station_id, "reason": exc.detail})
    result = services.entries_ingest(entries=entries, received_from=peer_station_id,
                                     received_from_callsign=peer_callsign)
    if result.refused:
        services.peer_penalise(station_id=peer_station_id, callsign=peer_callsign,
                               reason=f"{len(result.refused)} bad entries, e.g. "
                                      f"{result.refused[0][1]}")
    if result.unknown_origins:
        logger.info("entries from unverified origins skipped", extra={
            "peer": peer_station_id, "origins": ",".join(sorted(result.unknown_origins))})
    return {"stored": len(result.created), "known": result.known,
            "refused": len(result.refused), "unknownOrigins": len(result.unknown_origins)}


def demand_local() -> dict[str, int]:
    rows = (ContentEntry.objects.filter(priority=Priority.POPULAR, is_current=True, demand__gt=0)
            .order_by("-demand").values_list("entry_id", "demand")[:DEMAND_PER_MESSAGE])
    return dict(rows)


def demand_receive(value: Any) -> int:
    """Remember the highest demand any peer reported for each popular entry."""
    if not isinstance(value, dict) or len(value) > DEMAND_PER_MESSAGE:
        raise MeshHandlerError("bad_demand", f"demand is an object of at most "
                                             f"{DEMAND_PER_MESSAGE} entry ids")
    changed = 0
    for entry_id, count in value.items():
        if not isinstance(entry_id, str) or len(entry_id) != 64 or not isinstance(count, int) \
                or isinstance(count, bool) or not 0 <= count < 2**31:
            continue
        changed += (ContentEntry.objects.filter(entry_id=entry_id, mesh_demand__lt=count)
                    .update(mesh_demand=count))
    return changed


# --- handlers (the side that was asked) ----------------------------------------------------


async def on_content_sync(link: LinkContext, payload: dict[str, Any]) -> dict[str, Any]:
    message = _reconcile_message(payload)
    catalog = await sync_to_async(selectors.sync_catalog)()
    responder = Reconciler(catalog, max_message_size=settings.CATALOG_SYNC_MESSAGE_SIZE)
    try:
        reply = responder.reconcile(message)
    except ReconcileError as exc:
        raise MeshHandlerError("bad_sync", str(exc)) from exc
    return {"m": _b64(reply) if reply is not None else ""}


async def on_content_entries(link: LinkContext, payload: dict[str, Any]) -> dict[str, Any]:
    if "want" in payload:
        ids = _entry_ids(payload["want"], ENTRIES_PER_MESSAGE)
        known = payload.get("known") or []
        if not isinstance(known, list) or len(known) > MAX_KNOWN_ORIGINS or not all(
                isinstance(item, str) and len(item) == 32 for item in known):
            raise MeshHandlerError("bad_entries", f"known must be a list of at most "
                                                  f"{MAX_KNOWN_ORIGINS} station ids")
        return await sync_to_async(entries_payload)(ids, frozenset(known))
    return await sync_to_async(entries_receive)(payload, peer_station_id=link.peer_station_id,
                                                peer_callsign=link.peer_callsign)


async def on_content_demand(link: LinkContext, payload: dict[str, Any]) -> dict[str, Any]:
    await sync_to_async(demand_receive)(payload.get("demand", {}))
    return {"demand": await sync_to_async(demand_local)()}


# --- the side that runs the round ----------------------------------------------------------


async def catalog_link_sync(link: Any) -> dict[str, int]:
    """Reconcile with the peer at the other end of `link`, pull what we lack, push what it
    lacks, and trade demand. Returns counts (for logs, tests and benchmarks)."""
    catalog = await sync_to_async(selectors.sync_catalog)()
    initiator = Reconciler(catalog, max_message_size=settings.CATALOG_SYNC_MESSAGE_SIZE)
    message: bytes | None = initiator.initiate()
    rounds = 0
    while message is not None:
        rounds += 1
        if rounds > MAX_ROUNDS:
            raise ReconcileError(f"no agreement with {link.peer_station_id} after "
                                 f"{MAX_ROUNDS} round trips")
        reply = await link.request(CONTENT_SYNC, {"m": _b64(message)})
        text = reply.get("m") if isinstance(reply, dict) else None
        if not text:
            break
        message = initiator.reconcile(_reconcile_message({"m": text}))
    counts = {"rounds": rounds, "bytes": initiator.bytes_out + initiator.bytes_in,
              "need": len(initiator.need), "have": len(initiator.have), "stored": 0,
              "refused": 0, "pushed": 0}
    need = sorted(item.id.hex() for item in initiator.need)
    known = await sync_to_async(selectors.known_origins)(MAX_KNOWN_ORIGINS) if need else []
    for start in range(0, len(need), ENTRIES_PER_MESSAGE):
        want: dict[str, Any] = {"want": need[start:start + ENTRIES_PER_MESSAGE]}
        if known:
            want["known"] = known  # their credentials need not come again
        reply = await link.request(CONTENT_ENTRIES, want)
        got = await sync_to_async(entries_receive)(reply, peer_station_id=link.peer_station_id,
                                                   peer_callsign=link.peer_callsign)
        counts["stored"] += got["stored"]
        counts["refused"] += got["refused"]
    have = sorted(item.id.hex() for item in initiator.have)
    # Over RF the neighbour verified our credential before it took a message of ours (it
    # cannot check one without it) and keeps it as an origin (`origin_known`): our own
    # entries go without it (a few seconds of air each time otherwise).
    local = getattr(link, "local", None)
    rf = getattr(link, "kind", "lan") == "rf"
    ours = frozenset({local.station_id}) if rf and local is not None else frozenset()
    for start in range(0, len(have), ENTRIES_PER_MESSAGE):
        payload = await sync_to_async(entries_payload)(have[start:start + ENTRIES_PER_MESSAGE],
                                                       ours)
        await link.request(CONTENT_ENTRIES, payload)
        counts["pushed"] += len(payload["entries"])
    reply = await link.request(CONTENT_DEMAND, {"demand": await sync_to_async(demand_local)()})
    await sync_to_async(demand_receive)(reply.get("demand", {}))
    if counts["need"] or counts["have"]:
        logger.info("catalog synced", extra={"peer": link.peer_station_id, **counts})
    return counts


def origin_known(credential: dict[str, Any]) -> None:
    """A station credential the mesh verified (heard on the air): kept as an origin, so a
    pull names it as known and its entries come without it."""
    services.origin_credential_accept(credential=credential)


def catalog_digest() -> bytes:
    """Six bytes naming the whole catalog (the reconciliation's range fingerprint), for the RF
    ID beacon: a station hearing its own digest has nothing to reconcile."""
    from catalog.selectors import sync_catalog

    catalog = sync_catalog()
    return catalog.fingerprint(0, len(catalog), b"")


def register() -> None:
    from mesh.registry import (
        register_credential_listener,
        register_handler,
        register_link_sync,
        register_presence_digest,
        register_sync_type,
    )

    register_presence_digest(catalog_digest)
    register_credential_listener(origin_known)
    register_handler(CONTENT_SYNC, on_content_sync)
    register_handler(CONTENT_ENTRIES, on_content_entries)
    register_handler(CONTENT_DEMAND, on_content_demand)
    register_link_sync("catalog", catalog_link_sync)
    for message_type in (CONTENT_SYNC, CONTENT_ENTRIES, CONTENT_DEMAND):
        register_sync_type(message_type)

