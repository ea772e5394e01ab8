"""The mesh's own message handlers and the sync run on every new link and gossip round.

PEER_ANNOUNCE {server: {stationId, callsign, endpoint, capabilities, version}}
PEER_LIST     {peers: [{stationId, callsign, endpoint, capabilities}]}   (bounded, method peer)
CERT_SYNC     request {have: [fingerprint]}   -> reply {certificates: [...the asker lacks],
                                                        want: [fingerprints we lack]}
              request {certificates: [{fingerprint, certificate, chain}]} -> reply {added}
BLACKLIST_UPDATE request {have: [key]}  -> reply {blacklist: [...], want: [key]}
              request {blacklist: [{fingerprint, reason, timestamp, signer, credential,
                                    signature}]} -> reply {applied, reports}
PING          request {} -> reply {}   (round trip of the link)

Only what the other side lacks travels (by digest: certificate fingerprints, blacklist entry
keys). Every item is checked again by the receiver: certificates must validate against its own
roots, blacklist entries must be signed by a trusted station or by the verified issuer of the
blacklisted certificate (else they become reports).
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from mesh import protocol, registry, selectors, services, trust
from mesh.models import Peer
from mesh.registry import LinkContext, MeshHandlerError

logger = logging.getLogger(__name__)
MAX_ITEMS = 500


def _str_list(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MeshHandlerError("malformed", f"{what} must be a list of strings")
    return value[:10_000]


async def on_peer_announce(link: LinkContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    server = payload.get("server")
    if not isinstance(server, dict):
        raise MeshHandlerError("malformed", "PEER_ANNOUNCE needs a 'server' object")
    endpoint = server.get("endpoint") if isinstance(server.get("endpoint"), str) else ""
    if getattr(link, "role", "client") == "server":
        # A station that dialled us: the endpoints it stated in its AUTH are checked by meshd
        # connecting back before one is recorded; an announce alone proves no address.
        endpoint = ""
    caps = server.get("capabilities")

    def record() -> None:
        try:
            services.peer_seen(station_id=link.peer_station_id, endpoint=endpoint,
                               method=Peer.Method.PEER, callsign=link.peer_callsign,
                               capabilities=caps if isinstance(caps, list) else None,
                               version=str(server.get("version") or ""),
                               fingerprint=link.peer_fingerprint)
        except services.MeshError:
            services.peer_seen(station_id=link.peer_station_id, endpoint="",
                               method=Peer.Method.PEER, callsign=link.peer_callsign,
                               fingerprint=link.peer_fingerprint)
        Peer.objects.filter(station_id=link.peer_station_id).update(authenticated=True)

    await sync_to_async(record)()
    if hasattr(link, "peer_announce"):
        link.peer_announce = server  # type: ignore[attr-defined]
    return None


async def on_peer_list(link: LinkContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    peers = payload.get("peers")
    if not isinstance(peers, list):
        raise MeshHandlerError("malformed", "PEER_LIST needs a 'peers' list")
    local = await sync_to_async(trust.local_station)()
    learnt = await sync_to_async(services.peers_learn)(
        learnt_from=link.peer_station_id, entries=peers, own_station_id=local.station_id)
    return {"learnt": learnt}


async def on_cert_sync(link: LinkContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    if "certificates" in payload:
        added = await sync_to_async(services.certificates_receive)(
            items=payload["certificates"], received_from=link.peer_station_id)
        return {"added": added}
    have = set(_str_list(payload.get("have"), "CERT_SYNC 'have'"))
    mine = await sync_to_async(trust.certificates_for_sync)()
    return {"certificates": [item for fp, item in mine.items() if fp not in have][:MAX_ITEMS],
            "want": sorted(set(have) - set(mine))[:MAX_ITEMS]}


async def on_blacklist_update(link: LinkContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    if "blacklist" in payload:
        entries = payload["blacklist"]
        if not isinstance(entries, list):
            raise MeshHandlerError("malformed", "BLACKLIST_UPDATE 'blacklist' must be a list")

        def receive() -> dict[str, int]:
            counts = {"applied": 0, "reports": 0}
            for entry in entries[:MAX_ITEMS]:
                record = services.blacklist_entry_receive(entry=entry,
                                                          received_from=link.peer_station_id)
                if record is not None:
                    counts["applied" if record.status == "applied" else "reports"] += 1
            return counts

        return await sync_to_async(receive)()
    have = set(_str_list(payload.get("have"), "BLACKLIST_UPDATE 'have'"))
    mine = await sync_to_async(selectors.blacklist_for_sync)()
    return {"blacklist": [item for key, item in mine.items() if key not in have][:MAX_ITEMS],
            "want": sorted(have - set(mine))[:MAX_ITEMS]}


async def on_ping(link: LinkContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    return {"pong": protocol.now_ms()}


def register_builtin_handlers() -> None:
    registry.register_handler(protocol.PEER_ANNOUNCE, on_peer_announce)
    registry.register_handler(protocol.PEER_LIST, on_peer_list)
    registry.register_handler(protocol.CERT_SYNC, on_cert_sync)
    registry.register_handler(protocol.BLACKLIST_UPDATE, on_blacklist_update)
    registry.register_handler(protocol.PING, on_ping)
    for message_type in (protocol.CERT_SYNC, protocol.BLACKLIST_UPDATE, protocol.PEER_LIST):
        registry.register_sync_type(message_type)
    from mesh import distance_vector, forwarding, router

    registry.register_handler(distance_vector.UPDATE_TYPE, router.on_routing_message)
    registry.register_handler(distance_vector.SEQNO_REQUEST_TYPE, router.on_routing_message)
    forwarding.register_handlers()


# -- what a link does -------------------------------------------------------------------------

async def announce(link: Any) -> None:
    server = await sync_to_async(selectors.own_announcement)()
    await link.send(protocol.PEER_ANNOUNCE, {"server": server})


async def sync_link(link: Any, *, peers: bool = True, timeout: float = 10.0) -> dict[str, int]:
    """Bring the other side and us to the same certificates and blacklist (by digest), and
    tell it our peers. Either side can run it; meshd runs it on every link it dials."""
    counts = {"certs_in": 0, "certs_out": 0, "blacklist_in": 0, "blacklist_out": 0}
    mine = await sync_to_async(trust.certificates_for_sync)()
    reply = await link.request(protocol.CERT_SYNC, {"have": sorted(mine)}, timeout)
    counts["certs_in"] = await sync_to_async(services.certificates_receive)(
        items=reply.get("certificates") or [], received_from=link.peer_station_id)
    wanted = [mine[fp] for fp in reply.get("want") or [] if fp in mine]
    if wanted:
        await link.request(protocol.CERT_SYNC, {"certificates": wanted}, timeout)
        counts["certs_out"] = len(wanted)

    await sync_to_async(services.blacklist_local_sign)()
    entries = await sync_to_async(selectors.blacklist_for_sync)()
    reply = await link.request(protocol.BLACKLIST_UPDATE, {"have": sorted(entries)}, timeout)
    incoming = reply.get("blacklist") or []

    def receive() -> int:
        return sum(1 for entry in incoming[:MAX_ITEMS]
                   if services.blacklist_entry_receive(entry=entry,
                                                       received_from=link.peer_station_id))

    counts["blacklist_in"] = await sync_to_async(receive)()
    wanted = [entries[key] for key in reply.get("want") or [] if key in entries]
    if wanted:
        await link.request(protocol.BLACKLIST_UPDATE, {"blacklist": wanted}, timeout)
        counts["blacklist_out"] = len(wanted)
    if peers:
        listing = await sync_to_async(selectors.peers_for_gossip)(
            exclude=link.peer_station_id, limit=settings.MESH_MAX_LEARNT_PEERS)
        if listing:
            await link.send(protocol.PEER_LIST, {"peers": listing})
    return counts


async def sync_apps(link: Any) -> None:
    """The link syncs other apps registered (`registry.register_link_sync`); one failing does
    not stop the others."""
    for name, sync in registry.link_syncs(rf=getattr(link, "kind", "lan") == "rf"):
        try:
            await sync(link)
        except Exception as exc:
            logger.info("app link sync failed", extra={"app": name, "peer": link.peer_station_id,
                                                       "error": f"{type(exc).__name__}: {exc}"})


async def sync_round(link: Any, *, peers: bool = True) -> dict[str, int]:
    """One gossip round on one link: trust first (an app's data may need the certificates),
    then every app's sync."""
    counts = await sync_link(link, peers=peers)
    await sync_apps(link)
    return counts


async def on_link_established(link: Any) -> None:
    try:
        await announce(link)
        if link.role == "client":
            await sync_round(link)
    except Exception as exc:
        logger.info("mesh link sync failed", extra={"peer": link.peer_station_id,
                                                    "error": f"{type(exc).__name__}: {exc}"})


async def on_link_closed(link: Any) -> None:
    if link.peer_station_id:
        await sync_to_async(services.peer_link_connected)(station_id=link.peer_station_id,
                                                          connected=False)
