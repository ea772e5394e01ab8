"""Writes of the mesh app: peers, membership, network mode, blacklist entries from the mesh."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import secrets
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from mesh import membership, protocol, trust
from mesh.models import Link, MeshBlacklistEntry, NetworkModeChange, Peer, Route
from meshsite.redisconn import get_redis

logger = logging.getLogger(__name__)

COMMAND_CHANNEL = "meshsite:mesh:commands"
REQUEST_QUEUE = "meshsite:mesh:requests"
MODE_KEY = "meshsite:mesh:network-mode"
MEMBERS_KEY = "meshsite:mesh:members"
# Links other stations dialled to us (held by daphne): station id -> {"t": last heard (unix),
# "endpoints": what the peer stated, "channel": the consumer holding it}. meshd reads it to keep
# those peers active and to check their endpoints by connecting back.
ACCEPTED_KEY = "meshsite:mesh:accepted"
MAX_CALLSIGN = 16


class MeshError(Exception):
    """A request the mesh cannot carry out; `code` is machine-readable."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


# -- peers ------------------------------------------------------------------------------------

def endpoint_normalize(endpoint: Any) -> str:
    """`http(s)://host[:port]` with no path; raise MeshError('bad_endpoint') saying why."""
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise MeshError("bad_endpoint", "endpoint must be a URL like http://10.0.0.5:8080")
    text = endpoint.strip()
    if len(text) > 300:
        raise MeshError("bad_endpoint", "endpoint is longer than 300 characters")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise MeshError("bad_endpoint", f"{text!r}: the scheme must be http or https")
    if not parts.hostname:
        raise MeshError("bad_endpoint", f"{text!r}: no host name or address")
    try:
        port = parts.port
    except ValueError as exc:
        raise MeshError("bad_endpoint", f"{text!r}: the port is not a number from 1 to 65535"
                        ) from exc
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise MeshError("bad_endpoint",
                        f"{text!r}: give only scheme, host and port (no path, query or user)")
    host = parts.hostname
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        if not all(part and len(part) < 64 and part.replace("-", "").isalnum()
                   for part in host.split(".")):
            raise MeshError("bad_endpoint", f"{text!r}: {host!r} is not a valid host name"
                            ) from None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _callsign_clean(callsign: Any) -> str:
    if callsign in (None, ""):
        return ""
    if not isinstance(callsign, str) or len(callsign) > MAX_CALLSIGN or not all(
            c.isalnum() or c in "/-" for c in callsign):
        raise MeshError("bad_callsign", "callsign must be up to 16 letters, digits, / or -")
    return callsign.upper()


def peer_add(*, endpoint: str, callsign: str | None = None,
             method: str = Peer.Method.MANUAL) -> Peer:
    """Add (or refresh) a peer by its endpoint, as the operator does by hand."""
    endpoint = endpoint_normalize(endpoint)
    callsign = _callsign_clean(callsign)
    with transaction.atomic():
        peer = Peer.objects.filter(endpoint=endpoint).first()
        if peer is None:
            peer = Peer.objects.create(endpoint=endpoint, callsign=callsign,
                                       discovery_method=method)
        else:
            if callsign and not peer.callsign:
                peer.callsign = callsign
            if method == Peer.Method.MANUAL:
                peer.discovery_method = method  # the operator's word outranks discovery
            peer.save()
        Link.objects.get_or_create(peer=peer, kind=Link.Kind.LAN, address=endpoint)
    mesh_poke(command="peers_changed")
    return peer


_METHOD_RANK = {Peer.Method.MANUAL: 3, Peer.Method.MDNS: 2, Peer.Method.RF: 2,
                Peer.Method.PEER: 1}


def _peer_for_station(station_id: str, endpoint: str) -> Peer | None:
    peer = Peer.objects.filter(station_id=station_id).first()
    if peer is None and endpoint:
        peer = Peer.objects.filter(endpoint=endpoint, station_id__isnull=True).first()
    return peer


def peer_seen(*, station_id: str, endpoint: str, method: str, callsign: str = "",
              capabilities: list[str] | None = None, version: str = "", fingerprint: str = "",
              learnt_from: str = "") -> Peer:
    """Record a station found by mDNS, a link announce or a peer's list (upsert by id)."""
    if endpoint:
        endpoint = endpoint_normalize(endpoint)
    with transaction.atomic():
        peer = _peer_for_station(station_id, endpoint)
        created = peer is None
        if peer is None:
            peer = Peer(station_id=station_id, discovery_method=method, learnt_from=learnt_from)
        peer.station_id = station_id
        if endpoint and (method != Peer.Method.PEER or not peer.endpoint):
            peer.endpoint = endpoint
        if callsign:
            peer.callsign = _callsign_clean(callsign)
        if capabilities is not None:
            peer.capabilities = [str(c)[:32] for c in capabilities][:16]
        if version:
            peer.version = version[:64]
        if fingerprint:
            peer.fingerprint = fingerprint[:128]
        # A better method sticks: manual > mdns > peer.
        if not created and _METHOD_RANK.get(method, 0) > _METHOD_RANK.get(
                peer.discovery_method, 0):
            peer.discovery_method = method
        # Another row may hold the same endpoint without an id (a manual add before contact,
        # while this station's own announce made a row by id): this row takes its place and
        # its method, or the operator's manual add would be lost (and meshd stop dialling it).
        twins = Peer.objects.filter(endpoint=peer.endpoint, station_id__isnull=True).exclude(
            pk=peer.pk) if peer.endpoint else Peer.objects.none()
        for twin in twins:
            if _METHOD_RANK.get(twin.discovery_method, 0) > _METHOD_RANK.get(
                    peer.discovery_method, 0):
                peer.discovery_method = twin.discovery_method
            peer.callsign = peer.callsign or twin.callsign
        peer.save()
        if peer.endpoint:
            twins.delete()
            Link.objects.get_or_create(peer=peer, kind=Link.Kind.LAN, address=peer.endpoint)
    if created:
        logger.info("mesh peer found", extra={"station": station_id, "callsign": peer.callsign,
                                              "endpoint": peer.endpoint, "method": method})
        mesh_poke(command="peers_changed")
    return peer


def peer_identify(*, peer_id: int, station_id: str) -> None:
    """A peer known by endpoint answered our probe with its station id: record it (or merge
    into the row that already has that id)."""
    if not station_id or len(station_id) > 64:
        return
    with transaction.atomic():
        peer = Peer.objects.filter(pk=peer_id).first()
        if peer is None or peer.station_id:
            return
        if Peer.objects.filter(station_id=station_id).exists():
            return
        Peer.objects.filter(pk=peer_id).update(station_id=station_id)


def peers_learn(*, learnt_from: str, entries: Any, own_station_id: str) -> int:
    """Peers from another station's PEER_LIST (method `peer`), bounded in number."""
    if not isinstance(entries, list):
        return 0
    learnt = 0
    budget = settings.MESH_MAX_LEARNT_PEERS - Peer.objects.filter(
        discovery_method=Peer.Method.PEER).count()
    for entry in entries[:100]:
        if not isinstance(entry, dict):
            continue
        station_id, endpoint = entry.get("stationId"), entry.get("endpoint")
        if not isinstance(station_id, str) or not station_id or station_id == own_station_id:
            continue
        if len(station_id) > 64 or not isinstance(endpoint, str):
            continue
        known = Peer.objects.filter(station_id=station_id).exists()
        if not known and budget <= 0:
            continue
        try:
            peer_seen(station_id=station_id, endpoint=endpoint, method=Peer.Method.PEER,
                      callsign=entry.get("callsign") or "",
                      capabilities=entry.get("capabilities") if isinstance(
                          entry.get("capabilities"), list) else None,
                      learnt_from=learnt_from)
        except MeshError:
            continue
        if not known:
            budget -= 1
            learnt += 1
    return learnt


def peer_state_record(*, peer_id: int, state: str, rtt_ms: float | None = None,
                      heard: bool = False) -> None:
    """Store what meshd measured: the state (on change), last contact and round trip."""
    now = timezone.now()
    peer = Peer.objects.filter(pk=peer_id).first()
    if peer is None:
        return
    fields: dict[str, Any] = {}
    if heard:
        fields["last_contact"] = now
    if rtt_ms is not None:
        fields["rtt_ms"] = round(rtt_ms, 2)
    if state != peer.state:
        fields["state"] = state
        fields["state_changed_at"] = now
        logger.info("mesh peer state", extra={"peer": str(peer), "station": peer.station_id,
                                              "old": peer.state, "new": state})
    if fields:
        Peer.objects.filter(pk=peer_id).update(**fields)
        link_fields = {k: v for k, v in fields.items() if k in ("state", "rtt_ms")}
        if heard:
            link_fields["last_heard"] = now
        if link_fields:
            Link.objects.filter(peer_id=peer_id, kind=Link.Kind.LAN).update(**link_fields)


def peer_heard_on_air(*, station_id: str, callsign: str, fingerprint: str,
                      address: str) -> tuple[Peer, bool]:
    """A station's signed ID beacon was heard on the air (`address`: its AX.25 CALL-SSID): it
    is a peer (method `rf`, no endpoint) with an RF link. Returns (peer, whether it is new)."""
    existed = Peer.objects.filter(station_id=station_id).exists()
    peer = peer_seen(station_id=station_id, endpoint="", method=Peer.Method.RF,
                     callsign=callsign, fingerprint=fingerprint)
    link, _ = Link.objects.get_or_create(peer=peer, kind=Link.Kind.RF, address=address[:300])
    Link.objects.filter(pk=link.pk).update(last_heard=timezone.now(), state=Peer.State.ACTIVE)
    return peer, not existed


def peer_authenticated_on_air(*, station_id: str, callsign: str, fingerprint: str,
                              address: str) -> None:
    """A station heard on the air proved its credential: its RF link carries mesh messages.
    (Its credential may come before any beacon of its was heard: the peer is recorded now.)"""
    peer_heard_on_air(station_id=station_id, callsign=callsign, fingerprint=fingerprint,
                      address=address)
    Peer.objects.filter(station_id=station_id).update(authenticated=True)
    Link.objects.filter(peer__station_id=station_id, kind=Link.Kind.RF).update(connected=True)


def peer_link_connected(*, station_id: str, connected: bool) -> None:
    Link.objects.filter(peer__station_id=station_id, kind=Link.Kind.LAN).update(
        connected=connected)
    if connected:
        Peer.objects.filter(station_id=station_id).update(authenticated=True)


def link_accepted(*, station_id: str, callsign: str, fingerprint: str, endpoints: list[str],
                  channel: str) -> None:
    """A station dialled us and proved itself: it is a peer (learnt from the link itself, with
    no endpoint until meshd has connected back to one it stated), and its link is up."""
    clean = []
    for endpoint in endpoints:
        try:
            clean.append(endpoint_normalize(endpoint))
        except MeshError:
            continue
    peer_seen(station_id=station_id, endpoint="", method=Peer.Method.PEER, callsign=callsign,
              fingerprint=fingerprint, learnt_from=station_id)
    Peer.objects.filter(station_id=station_id).update(authenticated=True)
    peer_link_connected(station_id=station_id, connected=True)
    accepted_link_heard(station_id=station_id, endpoints=clean, channel=channel)
    logger.info("mesh link accepted", extra={"station": station_id, "callsign": callsign,
                                             "endpoints": ",".join(clean) or "-"})


def accepted_link_heard(*, station_id: str, endpoints: list[str] | None, channel: str) -> None:
    """The accepted link of `station_id` carried a message just now (for meshd's membership)."""
    client = get_redis()
    if endpoints is None:
        raw = client.hget(ACCEPTED_KEY, station_id)
        endpoints = json.loads(raw).get("endpoints", []) if raw else []
    client.hset(ACCEPTED_KEY, station_id, json.dumps({"t": time.time(), "endpoints": endpoints,
                                                      "channel": channel}))


def link_accepted_closed(*, station_id: str, channel: str) -> None:
    """The accepted link held by `channel` closed (another may have replaced it since)."""
    client = get_redis()
    raw = client.hget(ACCEPTED_KEY, station_id)
    if raw and json.loads(raw).get("channel") == channel:
        client.hdel(ACCEPTED_KEY, station_id)
        peer_link_connected(station_id=station_id, connected=False)


def membership_sweep(*, now: Any = None) -> int:
    """Apply the LAN timeouts to `last_contact` in the database: the safety net when meshd is
    not running to do it live. Returns how many peers changed state."""
    from mesh.selectors import daemon_alive

    if daemon_alive():
        return 0  # meshd keeps the states live; last_contact is only written every few seconds
    now = now or timezone.now()
    changed = 0
    suspect = now - timedelta(seconds=settings.MESH_SUSPECT_AFTER)
    unreachable = now - timedelta(seconds=settings.MESH_UNREACHABLE_AFTER)
    changed += Peer.objects.filter(
        Q(last_contact__lt=unreachable) | Q(last_contact__isnull=True,
                                            created_at__lt=unreachable),
    ).exclude(state=Peer.State.UNREACHABLE).update(state=Peer.State.UNREACHABLE,
                                                   state_changed_at=now)
    changed += Peer.objects.filter(last_contact__lt=suspect, last_contact__gte=unreachable,
                                   state=Peer.State.ACTIVE).update(state=Peer.State.SUSPECT,
                                                                   state_changed_at=now)
    return changed


def peers_prune(*, now: Any = None) -> int:
    """Forget discovered (not manual) peers unheard for MESHSITE_MESH_PRUNE_AFTER seconds."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.MESH_PRUNE_AFTER)
    stale = Peer.objects.exclude(discovery_method=Peer.Method.MANUAL).filter(
        Q(last_contact__lt=cutoff) | Q(last_contact__isnull=True, created_at__lt=cutoff))
    count, _ = stale.delete()
    return count


# -- meshd commands ---------------------------------------------------------------------------

def mesh_poke(*, command: str, **data: Any) -> None:
    """Tell meshd to do something now (gossip, refresh mDNS, reload peers). Best effort."""
    try:
        get_redis().publish(COMMAND_CHANNEL, json.dumps({"command": command, **data}))
    except Exception as exc:
        logger.debug("mesh poke failed", extra={"error": str(exc)})


def peer_request(peer_station_id: str, type_: str, payload: dict[str, Any],
                 timeout: float = 10.0) -> dict[str, Any]:
    """Send a request over the authenticated link to a peer and wait for its reply.

    Works from any process (Celery tasks, views): the request goes to meshd through Redis and
    meshd sends it on its link. Raises MeshError: `no_daemon` (meshd not running), `no_link`
    (no authenticated link to that station), `timeout`, or the peer's error code."""
    if not isinstance(payload, dict):
        raise MeshError("bad_payload", "payload must be a dict")
    reply_key = f"meshsite:mesh:reply:{secrets.token_hex(8)}"
    message = json.dumps({"peer": peer_station_id, "type": type_, "payload": payload,
                          "timeout": timeout, "reply": reply_key,
                          "expires": time.time() + timeout})
    client = get_redis()
    if not client.exists("meshsite:mesh:daemon"):
        raise MeshError("no_daemon", "the mesh daemon (meshd) is not running")
    client.rpush(REQUEST_QUEUE, message)
    answer = client.blpop([reply_key], timeout=max(1, int(timeout + 1.5)))
    if answer is None:
        raise MeshError("timeout", f"no reply from {peer_station_id} within {timeout}s")
    result = json.loads(answer[1])
    if "error" in result:
        raise MeshError(result["error"], result.get("detail", ""))
    return result["payload"]


# -- network mode -----------------------------------------------------------------------------

TARGETS_HINT = ("set MESHSITE_CONNECTIVITY_TARGETS to one or more servers beyond your LAN "
                "that you trust to answer (HOST:PORT for a TCP connect, or "
                "http(s)://HOST/PATH), so the station can tell online from offline")


def network_mode_record(*, results: list[tuple[str, bool, str]],
                        unprobed: tuple[str, str] | None = None) -> dict[str, Any]:
    """Turn one round of probe results into the network mode; log and push a change.
    `unprobed` is (mode, why) when the mode was decided without probing (no targets)."""
    from mesh.probe import network_mode

    client = get_redis()
    raw = client.get(MODE_KEY)
    current = json.loads(raw) if raw else {"mode": "unknown", "failures": 0}
    oks = [ok for _, ok, _ in results]
    failures = current.get("failures", 0) + 1 if results and not any(oks) else 0
    if unprobed is not None:
        mode, detail = unprobed
    else:
        mode = network_mode(oks, failures, settings.CONNECTIVITY_FAILURES, current["mode"])
        detail = "; ".join(d for _, _, d in results)
    state = {"mode": mode, "failures": failures, "checkedAt": time.time(), "detail": detail,
             "since": current.get("since") if mode == current["mode"] else time.time(),
             "targets": [{"target": t, "ok": ok, "detail": d} for t, ok, d in results]}
    client.set(MODE_KEY, json.dumps(state))
    if mode != current["mode"]:
        NetworkModeChange.objects.create(mode=mode, previous=current["mode"], detail=detail[:2000])
        logger.warning("network mode changed", extra={"old": current["mode"], "new": mode,
                                                      "detail": detail})
        _push_network_mode(mode, current["mode"])
    return state


def _push_network_mode(mode: str, previous: str) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)("mesh-network", {"type": "network.mode", "mode": mode,
                                                         "previous": previous})
    except Exception as exc:
        logger.warning("network mode push failed", extra={"error": str(exc)})


def connectivity_check() -> dict[str, Any]:
    """Probe the operator's targets (MESHSITE_CONNECTIVITY_TARGETS) once and record the mode."""
    import asyncio

    from mesh.probe import parse_target, probe_target

    targets = []
    results: list[tuple[str, bool, str]] = []
    for text in settings.CONNECTIVITY_TARGETS:
        try:
            targets.append(parse_target(text))
        except ValueError as exc:
            results.append((text, False, f"bad target: {exc}"))

    async def run() -> list:
        return await asyncio.gather(*(probe_target(t, settings.CONNECTIVITY_TIMEOUT)
                                      for t in targets))

    if not settings.CONNECTIVITY_TARGETS:
        return network_mode_record(results=[], unprobed=_mode_without_targets())
    if targets:
        for target, result in zip(targets, asyncio.run(run()), strict=True):
            results.append((target.label, result.ok, result.detail))
    return network_mode_record(results=results)


def _mode_without_targets() -> tuple[str, str]:
    """No targets configured: never probe anything the operator did not name. A host with no
    default route is offline; with one, the mode is unknown until targets are set."""
    from mesh.probe import host_default_route

    route = host_default_route()
    if route is False:
        return "offline", f"this host has no default route (no way beyond the LAN); {TARGETS_HINT}"
    if route is None:
        return "unknown", f"the routing table cannot be read here; {TARGETS_HINT}"
    return "unknown", f"this host has a default route but no probe targets: {TARGETS_HINT}"


# -- blacklist entries over the mesh ----------------------------------------------------------

def blacklist_entry_message(*, fingerprint: str, reason: str, timestamp: int,
                            signer: str) -> bytes:
    """The canonical bytes a station signs to vouch for a blacklist entry."""
    return protocol.canonical_json({"fingerprint": fingerprint, "reason": reason,
                                    "signer": signer, "timestamp": timestamp,
                                    "what": "meshsite-blacklist-v1"})


def blacklist_local_sign() -> int:
    """Sign, with our station key, every entry of our own blacklist that has no mesh record
    yet, so gossip can carry it. Does nothing while the station is unclaimed."""
    local = trust.local_station()
    if local.credential is None:
        return 0
    made = 0
    known = set(MeshBlacklistEntry.objects.filter(status=MeshBlacklistEntry.Status.APPLIED)
                .values_list("fingerprint", flat=True))
    for fingerprint, reason in trust.blacklist_local():
        if fingerprint in known:
            continue
        timestamp = protocol.now_ms()
        signature = trust.sign(blacklist_entry_message(
            fingerprint=fingerprint, reason=reason, timestamp=timestamp, signer=local.station_id))
        try:
            MeshBlacklistEntry.objects.create(
                fingerprint=fingerprint, reason=reason, timestamp=timestamp,
                signer_station_id=local.station_id, signer_credential=local.credential,
                signature=protocol.b64encode(signature), status=MeshBlacklistEntry.Status.APPLIED,
                status_detail="issued by this station")
        except IntegrityError:
            continue
        made += 1
    return made


def _entry_verdict(entry: dict[str, Any]) -> tuple[str, str]:
    """Decide: (applied | report, why)."""
    fingerprint, signer = entry["fingerprint"], entry.get("signer") or ""
    signature, credential = entry.get("signature"), entry.get("credential")
    if not signature or not signer or not isinstance(credential, dict):
        return MeshBlacklistEntry.Status.REPORT, "unsigned: no signer, signature or credential"
    try:
        raw = protocol.b64decode(signature, "signature")
    except protocol.ProtocolError as exc:
        return MeshBlacklistEntry.Status.REPORT, exc.detail
    message = blacklist_entry_message(fingerprint=fingerprint, reason=entry["reason"],
                                      timestamp=entry["timestamp"], signer=signer)
    public_key = credential.get("publicKey")
    try:
        trust.verify_station_signature(public_key if isinstance(public_key, str) else "", raw,
                                       message)
    except trust.TrustRefused:
        return MeshBlacklistEntry.Status.REPORT, "bad signature: the signer's key does not verify"
    try:
        proven = trust.verify_credential(credential)
    except trust.TrustRefused as exc:
        refusal = trust.credential_issued(credential, fingerprint, signer)
        if refusal is None:
            return MeshBlacklistEntry.Status.APPLIED, "signed by the issuer of the certificate"
        logger.info("mesh blacklist signer is neither trusted nor the issuer", extra={
            "fingerprint": fingerprint, "signer": signer, "trust": f"{exc.code}: {exc.detail}",
            "issuer": refusal})
        return MeshBlacklistEntry.Status.REPORT, (f"signer not trusted ({exc.code}: {exc.detail})"
                                                  f" and not the issuer ({refusal})")
    if proven.station_id != signer:
        return MeshBlacklistEntry.Status.REPORT, "credential is not the signer's"
    return MeshBlacklistEntry.Status.APPLIED, f"signed by {proven.callsign} ({signer})"


def blacklist_entry_receive(*, entry: Any, received_from: str) -> MeshBlacklistEntry | None:
    """Take an entry from the mesh: apply it when its signer is trusted (chains to a root, or
    issued the blacklisted certificate), otherwise keep it as a report for the owner."""
    if not isinstance(entry, dict):
        return None
    fingerprint, reason, timestamp = entry.get("fingerprint"), entry.get("reason", ""), \
        entry.get("timestamp")
    if not isinstance(fingerprint, str) or len(fingerprint) != 64 or any(
            c not in "0123456789abcdef" for c in fingerprint.lower()):
        return None
    if not isinstance(reason, str) or not isinstance(timestamp, int) or isinstance(
            timestamp, bool):
        return None
    entry = {**entry, "reason": reason[:2000], "fingerprint": fingerprint.lower()}
    signer = entry.get("signer") if isinstance(entry.get("signer"), str) else ""
    existing = MeshBlacklistEntry.objects.filter(fingerprint=entry["fingerprint"],
                                                 signer_station_id=signer[:64],
                                                 timestamp=timestamp).first()
    if existing is not None:
        return existing
    status, detail = _entry_verdict(entry)
    try:
        record = MeshBlacklistEntry.objects.create(
            fingerprint=entry["fingerprint"], reason=entry["reason"], timestamp=timestamp,
            signer_station_id=signer[:64],
            signer_credential=entry.get("credential") if isinstance(
                entry.get("credential"), dict) else None,
            signature=entry.get("signature") if isinstance(entry.get("signature"), str) else "",
            status=status, status_detail=detail, received_from=received_from)
    except IntegrityError:
        return None
    trust.blacklist_apply(entry["fingerprint"], f"{entry['reason']} (mesh: {detail})",
                          signer=signer[:64], signature=record.signature[:500],
                          effective=status == MeshBlacklistEntry.Status.APPLIED,
                          created_by=f"mesh:{received_from}"[:150])
    if status == MeshBlacklistEntry.Status.APPLIED:
        logger.warning("mesh blacklist entry applied", extra={
            "fingerprint": entry["fingerprint"], "from": received_from, "why": detail})
        mesh_poke(command="changed")
    else:
        logger.warning("mesh blacklist entry kept as a report", extra={
            "fingerprint": entry["fingerprint"], "from": received_from, "why": detail})
    return record


def certificates_receive(*, items: Any, received_from: str) -> int:
    """Certificates from a peer's CERT_SYNC: each is added only if it validates here."""
    if not isinstance(items, list):
        return 0
    added = 0
    for item in items[:500]:
        if isinstance(item, dict) and trust.certificate_import(item):
            added += 1
    if added:
        logger.info("mesh certificates added", extra={"count": added, "from": received_from})
        mesh_poke(command="changed")
    return added


def membership_publish(*, members: dict[str, Any]) -> None:
    """meshd's live view for /api/peers (state, last heard, rtt), with a short expiry."""
    get_redis().set(MEMBERS_KEY, json.dumps(members), ex=30)


STATE_NAMES = membership.STATES


# -- routing table (meshd's, for the operator) ------------------------------------------------

# A station id is the first 16 bytes of SHA-256 over the station key, in lowercase hex
# (certificates.x509tools.station_id_for).
STATION_ID_RE = re.compile(r"[0-9a-f]{32}")
ROUTE_KEYS = frozenset({"destination", "callsign", "next_hop", "next_hop_callsign", "cost",
                        "hops", "seqno", "refreshed_at", "lan_next_hop", "lan_cost", "lan_hops"})
_ROUTE_UPDATED = [*sorted(ROUTE_KEYS - {"destination"}), "updated_at"]  # what a store rewrites
ROUTE_METRIC_MAX = 0xFFFF  # mesh.link_cost.INFINITY: unreachable
ROUTE_HOPS_MAX = 255
ROUTE_SEQNO_MAX = 0xFFFF
_ROUTE_BATCH = 500  # ids per DELETE ... IN (...): well within every backend's parameter limit


def _route_station_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not STATION_ID_RE.fullmatch(value):
        raise ValueError(f"{where}: a station id is 32 lowercase hex digits, got {value!r}")
    return value


def _route_integer(value: Any, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{where}: an integer from {low} to {high}, got {value!r}")
    return value


def _route_callsign(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: a callsign string (\"\" when unknown), got {value!r}")
    try:
        return _callsign_clean(value)
    except MeshError as exc:
        raise ValueError(f"{where}: {exc.detail}, got {value!r}") from exc


def _route_clean(row: Any, index: int, self_station_id: str) -> dict[str, Any]:
    """One row of meshd's table as the Route fields, or ValueError naming the bad field."""
    if not isinstance(row, dict):
        raise ValueError(f"rows[{index}]: a route is a dict, got {type(row).__name__}")
    missing, unknown = ROUTE_KEYS - row.keys(), row.keys() - ROUTE_KEYS
    if missing or unknown:
        raise ValueError(f"rows[{index}]: missing {', '.join(sorted(missing)) or 'nothing'}; "
                         f"unknown {', '.join(sorted(map(str, unknown))) or 'nothing'}")
    at = f"rows[{index}]."
    destination = _route_station_id(row["destination"], at + "destination")
    if destination == self_station_id:
        raise ValueError(f"{at}destination: {destination} is this station itself; "
                         f"meshd stores no route to itself")
    next_hop = _route_station_id(row["next_hop"], at + "next_hop")
    if next_hop == self_station_id:
        raise ValueError(f"{at}next_hop: {next_hop} is this station itself; a next hop is a "
                         f"linked neighbour")
    refreshed_at = row["refreshed_at"]
    if not isinstance(refreshed_at, datetime) or timezone.is_naive(refreshed_at):
        raise ValueError(f"{at}refreshed_at: an aware datetime, got {refreshed_at!r}")
    clean = {
        "destination": destination, "next_hop": next_hop, "refreshed_at": refreshed_at,
        "callsign": _route_callsign(row["callsign"], at + "callsign"),
        "next_hop_callsign": _route_callsign(row["next_hop_callsign"], at + "next_hop_callsign"),
        "cost": _route_integer(row["cost"], at + "cost", 0, ROUTE_METRIC_MAX),
        "hops": _route_integer(row["hops"], at + "hops", 1, ROUTE_HOPS_MAX),
        "seqno": _route_integer(row["seqno"], at + "seqno", 0, ROUTE_SEQNO_MAX),
        "lan_next_hop": "", "lan_cost": None, "lan_hops": None,
    }
    if row["lan_next_hop"] == "":
        for key in ("lan_cost", "lan_hops"):
            if row[key] is not None:
                raise ValueError(f"{at}{key}: must be None when lan_next_hop is empty (no "
                                 f"LAN/IP-only route), got {row[key]!r}")
        return clean
    clean["lan_next_hop"] = _route_station_id(row["lan_next_hop"], at + "lan_next_hop")
    if clean["lan_next_hop"] == self_station_id:
        raise ValueError(f"{at}lan_next_hop: {self_station_id} is this station itself; a next "
                         f"hop is a linked neighbour")
    clean["lan_cost"] = _route_integer(row["lan_cost"], at + "lan_cost", 0, ROUTE_METRIC_MAX)
    clean["lan_hops"] = _route_integer(row["lan_hops"], at + "lan_hops", 1, ROUTE_HOPS_MAX)
    return clean


def routes_store(rows: list[dict[str, Any]], *, self_station_id: str) -> dict[str, int]:
    """Replace the stored routing table with meshd's `rows` (the operator's view of it).

    Each row is a dict with exactly the keys of `ROUTE_KEYS`: destination, next_hop and
    lan_next_hop ("" for none) station ids; callsign and next_hop_callsign ("" when unknown);
    cost (0-65535), hops (1-255), seqno (0-65535); refreshed_at an aware datetime; lan_cost and
    lan_hops None exactly when lan_next_hop is "". Every row is checked before anything is
    written: a bad one raises ValueError naming it and its field (`rows[3].cost: ...`) and the
    stored table stays as it was. A route to `self_station_id` is refused the same way.

    In one transaction, destinations no longer present are deleted, changed rows updated and
    new ones created, in bulk. Returns the counts: {"created", "updated", "deleted"}."""
    _route_station_id(self_station_id, "self_station_id")
    if not isinstance(rows, list | tuple):
        raise ValueError(f"rows: a list of route dicts, got {type(rows).__name__}")
    wanted: dict[str, dict[str, Any]] = {}
    for index, row in enumerate(rows):
        clean = _route_clean(row, index, self_station_id)
        if clean["destination"] in wanted:
            raise ValueError(f"rows[{index}].destination: {clean['destination']} appears twice; "
                             f"a table has one route per destination")
        wanted[clean["destination"]] = clean
    now = timezone.now()
    with transaction.atomic():
        # Only meshd writes this table and one meshd runs, but an old one may not be gone yet:
        # the row locks (PostgreSQL; SQLite's IMMEDIATE transaction locks the whole database)
        # keep two diffs from interleaving. Two stores creating the same new destination at
        # once still collide on the unique index: IntegrityError, and meshd stores again.
        stored = {route.destination: route for route in Route.objects.select_for_update()}
        gone = [route.pk for destination, route in stored.items() if destination not in wanted]
        for start in range(0, len(gone), _ROUTE_BATCH):
            Route.objects.filter(pk__in=gone[start:start + _ROUTE_BATCH]).delete()
        changed, new = [], []
        for destination, fields in wanted.items():
            route = stored.get(destination)
            if route is None:
                new.append(Route(**fields, updated_at=now))
            elif any(getattr(route, key) != value for key, value in fields.items()):
                for key, value in fields.items():
                    setattr(route, key, value)
                route.updated_at = now  # bulk_update does not apply auto_now
                changed.append(route)
        Route.objects.bulk_update(changed, _ROUTE_UPDATED, batch_size=_ROUTE_BATCH)
        Route.objects.bulk_create(new, batch_size=_ROUTE_BATCH)
    return {"created": len(new), "updated": len(changed), "deleted": len(gone)}


def routes_clear() -> int:
    """Forget the stored routing table (meshd starts with an empty one). Returns the count."""
    deleted, _ = Route.objects.all().delete()
    return deleted
