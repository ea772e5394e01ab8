"""The mailbox across the mesh (docs/mailbox.md).

Home records: where each operator's mailbox lives. The home station signs `{callsign,
stationId, issuedAt, proof}` with its station key; `proof` is the operator's own device
registration there (certificate, chain, nonce, and the license key's signature over
`meshsite-mailbox-device-v1\\nstation:<stationId>\\nnonce:<nonce>\\n`), so no station can claim
to be the home of an operator who never registered with it. Records travel by gossip
(`MAILBOX_HOMES` on every link at each gossip round: a summary `{callsign: issuedAt}` one way,
the newer records and a want-list back); the newest `issuedAt` per callsign wins.

Forwarding (mesh.forwarding, kinds registered `lan_only`: every station on the way takes the
LAN/IP-only route, never an RF hop):

- `mailbox_bundle`: a bundle request for an operator homed elsewhere; the home station takes the
  keys and answers with the bundle (or the refusal, status and all) in the FORWARD reply.
- `mailbox_deliver`: the sending station offers a batch it keeps (`MailboxOutbound`): recipient,
  device and registration ids, size and SHA-256. The home station checks the devices at once
  (404/409/410 go back to the sender as they would locally), gives the envelope ids, and its
  worker fetches the batch (`mailbox_batch`, chunked, hash checked) and stores it under those
  ids; then it tells the sending station (`mailbox_stored`), which forgets the batch. Until
  then the sending station offers it again (beat, with back-off, within its expiry): after a
  relay died mid-way, after a lost answer; a repeated offer is answered from what the home
  station remembers of the batch (Redis), and the ids are unique in its database, so nothing is
  stored twice. No handler ever waits on another forwarded request (a handler runs in the
  process holding the link, whose one thread for sync code a nested wait would block).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from meshsite.redisconn import get_redis
from signaling import mailbox
from signaling.mailbox import Envelope, MailboxError, b64
from signaling.models import MailboxDevice, MailboxHome, MailboxOperator, MailboxOutbound

logger = logging.getLogger(__name__)

HOME_PREFIX = b"meshsite-mailbox-home-v1\n"
MAILBOX_HOMES = "MAILBOX_HOMES"
KIND_BUNDLE = "mailbox_bundle"
KIND_DELIVER = "mailbox_deliver"
KIND_BATCH = "mailbox_batch"
KIND_STORED = "mailbox_stored"
BATCH_PREFIX = "meshsite:mailbox:batch:"
MAX_RECORDS = 200
MAX_SKEW_MS = 10 * 60 * 1000
RETRY_MAX = 60


# -- home records -------------------------------------------------------------------------------

def _home_body(callsign: str, station_id: str, issued_at: int, proof: dict[str, Any]) -> bytes:
    from mesh import protocol

    return HOME_PREFIX + protocol.canonical_json({
        "callsign": callsign, "stationId": station_id, "issuedAt": issued_at, "proof": proof})


def home_announce(*, callsign: str, proof: dict[str, Any]) -> MailboxHome:
    """Record, signed, that `callsign`'s mailbox lives here (after a device registration);
    gossip carries it from the next round on."""
    from mesh import protocol, trust

    local = trust.local_station()
    issued = protocol.now_ms()
    signature = ""
    if local.credential is not None:
        signature = b64(trust.sign(_home_body(callsign, local.station_id, issued, proof)))
    home, _ = MailboxHome.objects.update_or_create(callsign=callsign, defaults={
        "station_id": local.station_id, "issued_at": issued, "proof": proof,
        "credential": local.credential or {}, "signature": signature})
    return home


def _record(home: MailboxHome) -> dict[str, Any]:
    return {"callsign": home.callsign, "stationId": home.station_id, "issuedAt": home.issued_at,
            "proof": home.proof, "credential": home.credential, "signature": home.signature}


def home_verify(record: Any) -> dict[str, Any]:
    """The fields of a gossiped home record once every signature checks; MailboxError
    ("bad_home", why) otherwise."""
    from certificates.errors import CertificateError
    from certificates.services import license_verify, signature_verify
    from mesh import protocol, trust

    if not isinstance(record, dict):
        raise MailboxError("bad_home", "a home record is an object")
    callsign, station_id = record.get("callsign"), record.get("stationId")
    issued, proof = record.get("issuedAt"), record.get("proof")
    if not isinstance(callsign, str) or not isinstance(station_id, str) or not isinstance(
            issued, int) or isinstance(issued, bool) or not isinstance(proof, dict):
        raise MailboxError("bad_home", "callsign, stationId, issuedAt and proof are required")
    if issued > protocol.now_ms() + MAX_SKEW_MS:
        raise MailboxError("bad_home", f"{callsign}: issuedAt is in the future")
    try:
        proven = trust.verify_credential(record.get("credential"))
        if proven.station_id != station_id:
            raise MailboxError("bad_home", f"{callsign}: the credential is not {station_id}'s")
        trust.verify_station_signature(
            proven.public_key_b64, protocol.b64decode(record.get("signature"), "signature"),
            _home_body(callsign, station_id, issued, proof))
        verified = license_verify(certificate=proof.get("certificate"),
                                  chain=proof.get("chain") or [], callsign=callsign)
        signature_verify(public_key=verified.public_key,
                         signature=mailbox.decode_b64(proof.get("signature"), "proof.signature"),
                         message=mailbox.device_message(station_id=station_id,
                                                        nonce=str(proof.get("nonce"))))
    except (trust.TrustRefused, CertificateError, protocol.ProtocolError) as exc:
        raise MailboxError("bad_home", f"{callsign}: {exc}") from exc
    return {"callsign": callsign.upper(), "station_id": station_id, "issued_at": issued,
            "proof": proof, "credential": record["credential"],
            "signature": record["signature"]}


def homes_summary() -> dict[str, int]:
    return dict(MailboxHome.objects.exclude(signature="").values_list("callsign", "issued_at"))


def homes_newer_than(summary: dict[str, int]) -> tuple[list[dict[str, Any]], list[str]]:
    """(our records newer than `summary`'s or missing from it, callsigns it has newer)."""
    ours = {home.callsign: home for home in MailboxHome.objects.exclude(signature="")}
    records = [_record(home) for callsign, home in ours.items()
               if summary.get(callsign, -1) < home.issued_at][:MAX_RECORDS]
    want = [callsign for callsign, issued in summary.items()
            if isinstance(issued, int) and (callsign not in ours
                                            or ours[callsign].issued_at < issued)]
    return records, want[:MAX_RECORDS]


def homes_import(records: Any) -> int:
    """Store the records that are newer than ours and verify; how many were stored."""
    if not isinstance(records, list):
        return 0
    stored = 0
    for record in records[:MAX_RECORDS]:
        callsign = record.get("callsign") if isinstance(record, dict) else None
        if not isinstance(callsign, str):
            continue
        current = MailboxHome.objects.filter(callsign=callsign.upper()).first()
        if current is not None and current.issued_at >= (record.get("issuedAt") or 0):
            continue
        try:
            fields = home_verify(record)
        except MailboxError as exc:
            logger.warning("mailbox home refused", extra={"callsign": callsign[:32],
                                                          "detail": exc.detail})
            continue
        MailboxHome.objects.update_or_create(callsign=fields.pop("callsign"), defaults=fields)
        stored += 1
    return stored


def homes_records(callsigns: list[str]) -> list[dict[str, Any]]:
    return [_record(home) for home in MailboxHome.objects.filter(
        callsign__in=callsigns[:MAX_RECORDS]).exclude(signature="")]


async def on_mailbox_homes(link: Any, payload: dict[str, Any]) -> dict[str, Any]:
    if "records" in payload:
        return {"stored": await sync_to_async(homes_import)(payload["records"])}
    summary = payload.get("summary")
    if not isinstance(summary, dict):
        return {"records": [], "want": []}
    records, want = await sync_to_async(homes_newer_than)(summary)
    return {"records": records, "want": want}


async def homes_link_sync(link: Any) -> None:
    """One exchange of home records over a link (run by the mesh at each gossip round)."""
    reply = await link.request(MAILBOX_HOMES, {"summary": await sync_to_async(homes_summary)()})
    await sync_to_async(homes_import)(reply.get("records"))
    want = reply.get("want")
    if isinstance(want, list) and want:
        records = await sync_to_async(homes_records)([w for w in want if isinstance(w, str)])
        if records:
            await link.request(MAILBOX_HOMES, {"records": records})


def home_of(callsign: str) -> str | None:
    """The station id of `callsign`'s home when it is another station, else None."""
    from mesh import trust

    home = MailboxHome.objects.filter(callsign=callsign.upper()).first()
    if home is None or home.station_id == trust.local_station().station_id:
        return None
    return home.station_id


# -- routes -------------------------------------------------------------------------------------

def lan_route_problem(station_id: str) -> MailboxError | None:
    """Why mailbox traffic cannot go to `station_id` now, or None when a LAN/IP route exists."""
    from mesh import selectors

    route = selectors.route_to(station_id)
    if route is None:
        return MailboxError("no_route", f"no route to the home station {station_id[:12]} at "
                                        "the moment; try again later or send with "
                                        "waitForRoute", status=503)
    if not route.lan_next_hop:
        return MailboxError("no_lan_route", f"the only route to the home station "
                            f"{route.callsign or station_id[:12]} has an RF hop, and mailbox "
                            "traffic never goes on the air (Part 97: it is encrypted); try "
                            "again when a LAN/IP route exists, or send with waitForRoute",
                            status=503)
    return None


def _forward(home: str, kind: str, request: dict[str, Any]) -> dict[str, Any]:
    from mesh.forwarding import ForwardError, fetch_sync

    try:
        meta, _ = fetch_sync(home, kind, request)
    except ForwardError as exc:
        status = 503 if exc.code in ("no_route", "no_lan_route") else 502
        raise MailboxError(exc.code, f"through the mesh: {exc.detail}", status=status) from exc
    error = meta.get("error")
    if isinstance(error, dict):
        raise MailboxError(str(error.get("code")), str(error.get("detail")),
                           status=int(error.get("status") or 502),
                           extra=error.get("extra") or {},
                           retry_after=error.get("retryAfter"))
    result = meta.get("result")
    if not isinstance(result, dict):
        raise MailboxError("bad_answer", "the home station's answer has no result", status=502)
    return result


def _as_reply(exc: MailboxError) -> dict[str, Any]:
    return {"size": 0, "error": {"code": exc.code, "detail": exc.detail, "status": exc.status,
                                 "extra": exc.extra, "retryAfter": exc.retry_after}}


# -- bundles ------------------------------------------------------------------------------------

def bundle_take(*, callsign: str, device: str, requester: str) -> dict[str, Any]:
    """A bundle of a local operator, or through the mesh (LAN/IP only) from their home."""
    from mesh import trust

    callsign = callsign.upper()
    if MailboxOperator.objects.filter(callsign=callsign).exists():
        return mailbox.bundle_take(callsign=callsign, device=device, requester=requester)
    home = home_of(callsign)
    if home is None:
        raise MailboxError("unknown_operator", f"{callsign} has no mailbox here and no known "
                                               "home station", status=404)
    problem = lan_route_problem(home)
    if problem is not None:
        raise problem
    local = trust.local_station()
    return _forward(home, KIND_BUNDLE, {"home": home, "callsign": callsign,
                                        "device": str(device)[:12],
                                        "requester": f"{requester}@{local.station_id[:12]}"})


class BundleSource:
    def describe(self, request: dict[str, Any]) -> dict[str, Any] | None:
        from mesh import trust

        if request.get("home") != trust.local_station().station_id:
            return None  # a relay: send it on
        try:
            bundle = mailbox.bundle_take(callsign=str(request.get("callsign")),
                                         device=str(request.get("device")),
                                         requester=str(request.get("requester"))[:80])
        except MailboxError as exc:
            return _as_reply(exc)
        return {"size": 0, "result": bundle}

    def read(self, request: dict[str, Any], offset: int, length: int) -> bytes:
        return b""


# -- envelopes ----------------------------------------------------------------------------------

def _batch_body(outbound: MailboxOutbound) -> bytes:
    return json.dumps(outbound.payload, sort_keys=True, separators=(",", ":")).encode()


def messages_send(*, callsign: str, envelopes: list[Envelope], timestamp: int, source: str,
                  source_device: int, wait: bool = False) -> dict[str, Any]:
    """Store envelopes for a local operator. For one homed elsewhere, keep them here as a batch
    and offer it to the home station now if a LAN/IP route exists: 200 with the ids it gave
    (`forwarded`: accepted), or its 404/409/410 refusal; if it cannot be reached, 202 (kept,
    retried); with no LAN/IP route, 503, or 202 kept for later when `wait`."""
    callsign = callsign.upper()
    if MailboxOperator.objects.filter(callsign=callsign).exists():
        ids = mailbox.messages_store(callsign=callsign, envelopes=envelopes,
                                     timestamp=timestamp, source=source,
                                     source_device=source_device)
        return {"ids": ids}
    home = home_of(callsign)
    if home is None:
        raise MailboxError("unknown_operator", f"{callsign} has no mailbox here and no known "
                                               "home station", status=404)
    problem = lan_route_problem(home)
    if problem is not None and not wait:
        raise problem
    now = timezone.now()
    outbound = MailboxOutbound.objects.create(
        batch_id=uuid.uuid4().hex, callsign=callsign, home_station=home,
        payload={"timestamp": timestamp, "messages": [
            {"deviceId": e.device_id, "registrationId": e.registration_id,
             "type": e.message_type, "content": b64(e.content)} for e in envelopes]},
        source=source.upper(), source_device=source_device,
        state=MailboxOutbound.State.PENDING if problem is None
        else MailboxOutbound.State.WAITING_LAN,
        last_error="" if problem is None else problem.detail[:300],
        next_attempt_at=now + dt.timedelta(seconds=settings.MAILBOX_FORWARD_INTERVAL),
        expires_at=now + dt.timedelta(seconds=settings.MAILBOX_MESSAGE_TTL))
    if problem is None:
        ids = outbound_attempt(outbound=outbound)
        if ids is not None:
            return {"ids": ids, "forwarded": "accepted"}
    return {"ids": [], "forwarded": "queued", "batch": outbound.batch_id}


def outbound_attempt(*, outbound: MailboxOutbound) -> list[str] | None:
    """Offer one kept batch to its home station (`mailbox_deliver`). Its envelope ids once the
    home station accepted it (the batch stays here until the home station says it stored
    it: then it is deleted); None when it could not get there (kept, retried later);
    MailboxError when the home station refused it for good (404, 409, 410, 413: deleted here,
    the sender's device told)."""
    from mesh import trust

    problem = lan_route_problem(outbound.home_station)
    if problem is not None:
        _retry_later(outbound, problem.detail, MailboxOutbound.State.WAITING_LAN)
        return None
    body = _batch_body(outbound)
    local = trust.local_station()
    request = {"home": outbound.home_station, "callsign": outbound.callsign,
               "batch": outbound.batch_id, "origin": local.station_id, "size": len(body),
               "sha256": hashlib.sha256(body).hexdigest(), "source": outbound.source,
               "sourceDevice": outbound.source_device,
               "devices": [[m["deviceId"], m["registrationId"]]
                           for m in outbound.payload["messages"]],
               "expiresAt": int(outbound.expires_at.timestamp())}
    try:
        result = _forward(outbound.home_station, KIND_DELIVER, request)
    except MailboxError as exc:
        if exc.status in (502, 503):
            _retry_later(outbound, f"{exc.code}: {exc.detail}", outbound.state)
            return None
        MailboxOutbound.objects.filter(pk=outbound.pk).delete()
        _tell_sender(outbound, {"type": "mailbox.forward_failed", "batch": outbound.batch_id,
                                "error": exc.code, "detail": exc.detail, **exc.extra})
        raise
    ids = [str(i) for i in result.get("ids") or []]
    if result.get("stored"):
        outbound_stored(batch=outbound.batch_id, ids=ids)
    else:
        MailboxOutbound.objects.filter(pk=outbound.pk).update(
            state=MailboxOutbound.State.ACCEPTED, ids=ids, attempts=outbound.attempts + 1,
            last_error="", next_attempt_at=timezone.now() + dt.timedelta(
                seconds=settings.MAILBOX_FORWARD_INTERVAL * 3))
    return ids


def outbound_stored(*, batch: str, ids: list[str]) -> bool:
    """The home station stored the batch: it is no longer kept here; the sender is told."""
    outbound = MailboxOutbound.objects.filter(batch_id=batch).first()
    if outbound is None:
        return False
    MailboxOutbound.objects.filter(pk=outbound.pk).delete()
    _tell_sender(outbound, {"type": "mailbox.forwarded", "batch": batch, "ids": ids})
    logger.info("mailbox batch stored at its home", extra={
        "callsign": outbound.callsign, "batch": batch, "attempts": outbound.attempts + 1})
    return True


def _retry_later(outbound: MailboxOutbound, why: str, state: str) -> None:
    # A short back-off (at most four intervals): a healed route is used within a few beats.
    delay = min(RETRY_MAX, settings.MAILBOX_FORWARD_INTERVAL * 2 ** min(outbound.attempts, 2))
    MailboxOutbound.objects.filter(pk=outbound.pk).update(
        state=state, attempts=outbound.attempts + 1, last_error=why[:300],
        next_attempt_at=timezone.now() + dt.timedelta(seconds=delay))
    logger.info("mailbox batch kept for later", extra={"callsign": outbound.callsign,
                                                       "batch": outbound.batch_id,
                                                       "why": why[:200]})


def _tell_sender(outbound: MailboxOutbound, event: dict[str, Any]) -> None:
    device = MailboxDevice.objects.filter(operator__callsign=outbound.source,
                                          device_id=outbound.source_device).first()
    if device is not None:
        mailbox.ring_on_commit(device.pk, event)


def outbound_forward_due(*, limit: int = 50) -> dict[str, int]:
    """Offer again the kept batches whose time has come (the beat runs this); each is claimed
    by a conditional update of its next attempt, so two runners never send one at once."""
    now = timezone.now()
    accepted = kept = refused = 0
    due = list(MailboxOutbound.objects.filter(next_attempt_at__lte=now, expires_at__gt=now)
               .order_by("next_attempt_at")[:limit])
    for outbound in due:
        claimed = MailboxOutbound.objects.filter(
            pk=outbound.pk, next_attempt_at=outbound.next_attempt_at).update(
            next_attempt_at=now + dt.timedelta(seconds=RETRY_MAX))
        if claimed != 1:
            continue
        try:
            ids = outbound_attempt(outbound=outbound)
        except MailboxError:
            refused += 1
            continue
        if ids is None:
            kept += 1
        else:
            accepted += 1
    return {"accepted": accepted, "kept": kept, "refused": refused}


# -- at the home station --------------------------------------------------------------------------

def _batch_state(batch: str) -> dict[str, Any] | None:
    raw = get_redis().get(BATCH_PREFIX + batch)
    return None if raw is None else json.loads(raw)


def _batch_state_put(batch: str, state: dict[str, Any]) -> None:
    left = int(state["request"].get("expiresAt") or 0) - int(time.time())
    get_redis().set(BATCH_PREFIX + batch, json.dumps(state),
                    ex=max(3600, min(left, 400 * 86400)))


class DeliverSource:
    """At the home station: accept a batch offered by the station keeping it (devices checked
    at once, ids given), then fetch it in the worker (`batch_pull`)."""

    def describe(self, request: dict[str, Any]) -> dict[str, Any] | None:
        from mesh import trust

        if request.get("home") != trust.local_station().station_id:
            return None
        batch = request.get("batch")
        if not isinstance(batch, str) or len(batch) != 32:
            return _as_reply(MailboxError("invalid", "batch: 32 hex digits"))
        state = _batch_state(batch)
        if state is None:
            try:
                state = self._accept(request, batch)
            except MailboxError as exc:
                return _as_reply(exc)
        if state.get("error"):
            return {"size": 0, "error": state["error"]}
        if state["state"] == "pending":
            from signaling.tasks import pull_mailbox_batch

            pull_mailbox_batch.delay(batch)
        return {"size": 0, "result": {"ids": state["ids"],
                                      "stored": state["state"] == "stored"}}

    def _accept(self, request: dict[str, Any], batch: str) -> dict[str, Any]:
        devices = request.get("devices")
        size = request.get("size")
        limit = settings.MAILBOX_MAX_DEVICES * (mailbox.MAX_CONTENT_BYTES * 4 // 3 + 1024)
        if not isinstance(size, int) or not 0 < size <= limit:
            raise MailboxError("too_large", f"a batch is at most {limit} bytes", status=413)
        if not isinstance(devices, list) or not all(
                isinstance(d, list) and len(d) == 2 and all(isinstance(n, int) for n in d)
                for d in devices):
            raise MailboxError("invalid", "devices: [[deviceId, registrationId], ...]")
        envelopes = [Envelope(device_id=d, registration_id=r, message_type=0, content=b"")
                     for d, r in devices]
        mailbox.devices_check(callsign=str(request.get("callsign")), envelopes=envelopes,
                              source=str(request.get("source")),
                              source_device=int(request.get("sourceDevice") or 0))
        state = {"state": "pending", "ids": [uuid.uuid4().hex for _ in devices],
                 "request": request}
        if not get_redis().set(BATCH_PREFIX + batch, json.dumps(state), nx=True, ex=3600):
            return _batch_state(batch) or state  # another offer of it won the race
        _batch_state_put(batch, state)
        return state

    def read(self, request: dict[str, Any], offset: int, length: int) -> bytes:
        return b""


def batch_pull(*, batch: str) -> str:
    """At the home station (the worker): fetch an accepted batch from the station keeping it,
    check it against its hash, store its envelopes under the ids given, and tell that station
    it may forget it. The envelope ids are unique: a second run stores nothing twice."""
    from django.db import IntegrityError

    from mesh.forwarding import ForwardError, fetch_sync
    from mesh.registry import MeshHandlerError

    state = _batch_state(batch)
    if state is None or state["state"] != "pending":
        return "nothing to do"
    if not get_redis().set(f"{BATCH_PREFIX}pulling:{batch}", b"1", nx=True, ex=60):
        return "already being pulled"
    request = state["request"]
    origin = str(request.get("origin"))
    try:
        _meta, chunks = fetch_sync(origin, KIND_BATCH, {"holder": origin, "batch": batch})
        body = b"".join(chunks)
    except (ForwardError, MeshHandlerError) as exc:
        get_redis().delete(f"{BATCH_PREFIX}pulling:{batch}")
        return f"not fetched ({exc}); the next offer tries again"
    try:
        if len(body) != request["size"] or hashlib.sha256(body).hexdigest() != request["sha256"]:
            raise MailboxError("bad_batch", "the batch does not match its hash")
        data = json.loads(body)
        envelopes, timestamp = mailbox.envelopes_parse(data.get("messages"),
                                                       data.get("timestamp"))
        left = int(request.get("expiresAt") or 0) - int(time.time())
        mailbox.messages_store(
            callsign=str(request.get("callsign")), envelopes=envelopes, timestamp=timestamp,
            source=str(request.get("source"))[:32],
            source_device=int(request.get("sourceDevice") or 0), server_ids=state["ids"],
            ttl=max(60, min(left, settings.MAILBOX_MESSAGE_TTL)))
        state["state"] = "stored"
    except IntegrityError:
        state["state"] = "stored"  # stored by an earlier run
    except (MailboxError, ValueError) as exc:
        code, detail = (exc.code, exc.detail) if isinstance(exc, MailboxError) else (
            "bad_batch", str(exc))
        state["state"] = "failed"
        state["error"] = {"code": code, "detail": detail,
                          "status": getattr(exc, "status", 400),
                          "extra": getattr(exc, "extra", {})}
    _batch_state_put(batch, state)
    get_redis().delete(f"{BATCH_PREFIX}pulling:{batch}")
    if state["state"] == "stored":
        try:
            fetch_sync(origin, KIND_STORED, {"holder": origin, "batch": batch,
                                             "ids": state["ids"]})
        except (ForwardError, MeshHandlerError) as exc:
            return f"stored; the sender's station learns it at its next offer ({exc})"
    return state["state"]


class BatchSource:
    """At the sending station: serve a kept batch to its home station."""

    def describe(self, request: dict[str, Any]) -> dict[str, Any] | None:
        from mesh import trust

        if request.get("holder") != trust.local_station().station_id:
            return None
        outbound = MailboxOutbound.objects.filter(batch_id=str(request.get("batch"))).first()
        if outbound is None:
            return None
        return {"size": len(_batch_body(outbound))}

    def read(self, request: dict[str, Any], offset: int, length: int) -> bytes:
        from mesh.registry import MeshHandlerError

        outbound = MailboxOutbound.objects.filter(batch_id=str(request.get("batch"))).first()
        if outbound is None:
            raise MeshHandlerError("gone", "the batch was delivered or expired meanwhile")
        return _batch_body(outbound)[offset:offset + length]


class StoredSource:
    """At the sending station: the home station stored a batch; forget it."""

    def describe(self, request: dict[str, Any]) -> dict[str, Any] | None:
        from mesh import trust

        if request.get("holder") != trust.local_station().station_id:
            return None
        ids = request.get("ids") if isinstance(request.get("ids"), list) else []
        done = outbound_stored(batch=str(request.get("batch")), ids=[str(i) for i in ids])
        return {"size": 0, "result": {"forgotten": done}}

    def read(self, request: dict[str, Any], offset: int, length: int) -> bytes:
        return b""


def register() -> None:
    from mesh.registry import (
        register_forward_source,
        register_handler,
        register_lan_only_type,
        register_link_sync,
    )

    register_handler(MAILBOX_HOMES, on_mailbox_homes)
    register_lan_only_type(MAILBOX_HOMES)
    register_link_sync("mailbox", homes_link_sync, lan_only=True)
    register_forward_source(KIND_BUNDLE, BundleSource(), lan_only=True)
    register_forward_source(KIND_DELIVER, DeliverSource(), lan_only=True)
    register_forward_source(KIND_BATCH, BatchSource(), lan_only=True)
    register_forward_source(KIND_STORED, StoredSource(), lan_only=True)
