"""The mailbox's writes: devices registered by license proof, prekeys, bundles taken exactly
once, envelopes stored until the recipient device acks them (docs/mailbox.md).

The station never decrypts: identity keys, prekeys and envelope contents are opaque bytes here;
the only cryptography is the license proof (certificates app) and the XEdDSA check of signed
prekeys (`signaling.signal_keys`). Every write that a connected device should hear about rings
its doorbell after the commit (`transaction.on_commit` + the channel layer): the database is
the truth, the doorbell only says "look".
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from meshsite.redisconn import rate_window_take
from signaling.models import MailboxDevice, MailboxMessage, MailboxOperator, OneTimePreKey
from signaling.signal_keys import KeyFormatError, decode_public_key, xeddsa_verify

logger = logging.getLogger(__name__)

NONCE_PURPOSE = "mailbox-device"
DEVICE_PREFIX = b"meshsite-mailbox-device-v1\n"
TOKEN_PREFIX = "mbx_"  # noqa: S105 - a prefix, not a secret
MAX_CONTENT_BYTES = 96 * 1024
MAX_PREKEYS_PER_UPLOAD = 100
KEY_ID_LIMIT = 2**24
RATE_PREFIX = "meshsite:mailbox:rate:"
GROUP_PREFIX = "mailbox.d"


class MailboxError(Exception):
    """A refused mailbox request: a machine `code`, a human `detail`, the HTTP status, and
    fields the answer carries (`missingDevices`, ...)."""

    def __init__(self, code: str, detail: str, *, status: int = 400,
                 extra: dict[str, Any] | None = None, retry_after: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status
        self.extra = extra or {}
        self.retry_after = retry_after


# -- input checks ---------------------------------------------------------------------------------

def decode_b64(value: Any, name: str) -> bytes:
    """Standard or URL-safe base64, padded or not; MailboxError naming `name` otherwise."""
    if not isinstance(value, str) or not value:
        raise MailboxError("invalid", f"{name}: a base64 string")
    text = value.strip()
    altchars = b"-_" if ("-" in text or "_" in text) else None
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MailboxError("invalid", f"{name}: not valid base64") from exc


def b64(data: bytes) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < high:
        raise MailboxError("invalid", f"{name}: an integer from {low} to {high - 1}")
    return value


def _public_key(value: Any, name: str) -> bytes:
    raw = decode_b64(value, name)
    try:
        decode_public_key(raw)
    except KeyFormatError as exc:
        raise MailboxError("invalid", f"{name}: {exc}") from exc
    return raw


@dataclass
class SignedPreKey:
    key_id: int
    public_key: bytes
    signature: bytes


def _signed_prekey(value: Any, identity_key: bytes) -> SignedPreKey:
    if not isinstance(value, dict):
        raise MailboxError("invalid", "signedPreKey: an object {keyId, publicKey, signature}")
    key_id = _int(value.get("keyId"), "signedPreKey.keyId", 0, KEY_ID_LIMIT)
    public_key = _public_key(value.get("publicKey"), "signedPreKey.publicKey")
    signature = decode_b64(value.get("signature"), "signedPreKey.signature")
    if len(signature) != 64:
        raise MailboxError("invalid", f"signedPreKey.signature: 64 bytes, got {len(signature)}")
    if not xeddsa_verify(identity_key, public_key, signature):
        raise MailboxError("bad_signature", "signedPreKey.signature is not an XEdDSA signature "
                           "of signedPreKey.publicKey (its 33-byte encoding) by the identity "
                           "key", status=422)
    return SignedPreKey(key_id, public_key, signature)


def _one_time_prekeys(value: Any) -> list[tuple[int, bytes]]:
    if not isinstance(value, list):
        raise MailboxError("invalid", "oneTimePreKeys: a list of {keyId, publicKey}")
    if len(value) > MAX_PREKEYS_PER_UPLOAD:
        raise MailboxError("too_many_prekeys", f"oneTimePreKeys: at most "
                           f"{MAX_PREKEYS_PER_UPLOAD} per upload, got {len(value)}")
    out: dict[int, bytes] = {}
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise MailboxError("invalid", f"oneTimePreKeys[{index}]: an object {{keyId, "
                                          "publicKey}")
        key_id = _int(item.get("keyId"), f"oneTimePreKeys[{index}].keyId", 1, KEY_ID_LIMIT)
        if key_id in out:
            raise MailboxError("invalid", f"oneTimePreKeys[{index}].keyId: {key_id} appears "
                                          "twice")
        out[key_id] = _public_key(item.get("publicKey"), f"oneTimePreKeys[{index}].publicKey")
    return list(out.items())


def rate_take(kind: str, who: str, limit: int, what: str) -> None:
    """One slot of `limit` per MAILBOX_RATE_WINDOW for `kind` by `who`, or 429."""
    if limit <= 0:
        return
    window = settings.MAILBOX_RATE_WINDOW
    retry = rate_window_take(key=f"{RATE_PREFIX}{kind}:{who}", window=window, limit=limit)
    if retry:
        raise MailboxError("rate_limited", f"More than {limit} {what} in {window} s; try again "
                           f"in {retry} s.", status=429, retry_after=retry)


# -- doorbell -----------------------------------------------------------------------------------

def device_group(device_pk: int) -> str:
    return f"{GROUP_PREFIX}{device_pk}"


def _ring(device_pk: int, event: dict[str, Any]) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(device_group(device_pk), event)
    except Exception:  # the doorbell is a hint: the device reads the database on connect
        logger.warning("mailbox doorbell failed", exc_info=True, extra={"device": device_pk})


def ring_on_commit(device_pk: int, event: dict[str, Any] | None = None) -> None:
    """After this transaction commits, tell the device's connection (if any) to look."""
    transaction.on_commit(lambda: _ring(device_pk, event or {"type": "mailbox.doorbell"}))


# -- devices ------------------------------------------------------------------------------------

def device_message(*, station_id: str, nonce: str) -> bytes:
    """What a device registration's license key signs."""
    return DEVICE_PREFIX + f"station:{station_id}\nnonce:{nonce}\n".encode()


def device_nonce_issue() -> dict[str, Any]:
    from certificates.selectors import station_get
    from certificates.services import nonce_issue

    nonce = nonce_issue(purpose=NONCE_PURPOSE)
    station_id = station_get().station_id
    return {"nonce": nonce, "stationId": station_id,
            "message": b64(device_message(station_id=station_id, nonce=nonce)),
            "expiresIn": settings.MESHSITE_NONCE_TTL}


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class RegisteredDevice:
    callsign: str
    device_id: int
    token: str
    device: MailboxDevice
    replaced_devices: list[int] = field(default_factory=list)


def device_register(*, certificate: Any, chain: Any, nonce: Any, signature: Any,
                    identity_key: Any, signed_prekey: Any, registration_id: Any,
                    one_time_prekeys: Any) -> RegisteredDevice:
    """Register a device for the operator whose license key signed `device_message(nonce)`.

    An identity key other than the operator's current one starts the operator afresh (as a
    Signal re-registration does): the other devices and their queues go, since their signed
    prekeys were signed by the old key. Raises MailboxError (certificate problems carry the
    certificates app's code)."""
    from certificates.errors import CertificateError
    from certificates.selectors import station_get
    from certificates.services import license_verify, nonce_consume, signature_verify

    if not isinstance(certificate, str) or not certificate.strip():
        raise MailboxError("invalid", "certificate: your license certificate as PEM text")
    if chain is None:
        chain = []
    if not isinstance(chain, list) or not all(isinstance(item, str) for item in chain):
        raise MailboxError("invalid", "chain: a list of PEM certificates")
    if not isinstance(nonce, str) or not nonce:
        raise MailboxError("invalid", "nonce: from POST /api/mailbox/devices/nonce")
    proof_bytes = decode_b64(signature, "signature")
    identity = _public_key(identity_key, "identityKey")
    spk = _signed_prekey(signed_prekey, identity)
    registration = _int(registration_id, "registrationId", 1, 2**31)
    prekeys = _one_time_prekeys(one_time_prekeys if one_time_prekeys is not None else [])
    if not nonce_consume(purpose=NONCE_PURPOSE, nonce=nonce):
        raise MailboxError("bad_nonce", "The nonce is unknown, used or expired: get a fresh one "
                                        "from POST /api/mailbox/devices/nonce.")
    try:
        verified = license_verify(certificate=certificate, chain=chain)
        signature_verify(public_key=verified.public_key, signature=proof_bytes,
                         message=device_message(station_id=station_get().station_id,
                                                nonce=nonce))
    except CertificateError as exc:
        status = 422 if exc.code in ("bad_proof", "bad_signature") else exc.http_status()
        raise MailboxError(exc.code, exc.detail, status=status) from exc
    callsign = verified.callsign.upper()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        operator, _ = MailboxOperator.objects.get_or_create(
            callsign=callsign, defaults={"identity_key": identity,
                                         "certificate_fingerprint": verified.fingerprint})
        # The lock orders registrations of one operator: device ids come from max + 1.
        operator = MailboxOperator.objects.select_for_update().get(pk=operator.pk)
        replaced: list[int] = []
        if bytes(operator.identity_key) != identity:
            replaced = list(operator.devices.values_list("pk", flat=True))
            operator.devices.all().delete()
            operator.identity_key = identity
        operator.certificate_fingerprint = verified.fingerprint
        operator.save(update_fields=["identity_key", "certificate_fingerprint", "updated_at"])
        if operator.devices.count() >= settings.MAILBOX_MAX_DEVICES:
            raise MailboxError("too_many_devices", f"{callsign} has "
                               f"{settings.MAILBOX_MAX_DEVICES} devices "
                               "(MESHSITE_MAILBOX_MAX_DEVICES) already", status=403)
        last = operator.devices.order_by("-device_id").values_list("device_id", flat=True).first()
        device = MailboxDevice.objects.create(
            operator=operator, device_id=(last or 0) + 1, registration_id=registration,
            signed_prekey_id=spk.key_id, signed_prekey=spk.public_key,
            signed_prekey_signature=spk.signature, token_hash=_hash_token(token))
        OneTimePreKey.objects.bulk_create([OneTimePreKey(device=device, key_id=key_id,
                                                         public_key=public)
                                           for key_id, public in prekeys])
        for device_pk in replaced:
            ring_on_commit(device_pk, {"type": "mailbox.close", "code": 4001,
                                       "reason": "the operator registered a new identity key"})
        proof = {"certificate": certificate, "chain": chain, "nonce": nonce,
                 "signature": b64(proof_bytes)}
        transaction.on_commit(lambda: _home_changed(callsign, proof))
    logger.info("mailbox device registered", extra={"callsign": callsign,
                                                    "device": device.device_id})
    return RegisteredDevice(callsign, device.device_id, token, device, replaced)


def _home_changed(callsign: str, proof: dict[str, Any]) -> None:
    from signaling import mailbox_mesh

    try:
        mailbox_mesh.home_announce(callsign=callsign, proof=proof)
    except Exception:  # the device is registered; the home record follows at the next one
        logger.exception("mailbox home record not written", extra={"callsign": callsign})


def device_authenticate(token: Any) -> MailboxDevice | None:
    """The device a token belongs to (with its operator), or None."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    device = (MailboxDevice.objects.select_related("operator")
              .filter(token_hash=_hash_token(token)).first())
    if device is not None and (device.last_seen_at is None or timezone.now()
                               - device.last_seen_at > dt.timedelta(minutes=1)):
        MailboxDevice.objects.filter(pk=device.pk).update(last_seen_at=timezone.now())
    return device


def keys_update(*, device: MailboxDevice, signed_prekey: Any = None,
                one_time_prekeys: Any = None) -> int:
    """A new signed prekey (checked against the operator's identity key) and/or a new set of
    one-time prekeys (a non-empty list replaces the stored ones). The count stored after."""
    spk = (None if signed_prekey is None
           else _signed_prekey(signed_prekey, bytes(device.operator.identity_key)))
    prekeys = None if one_time_prekeys is None else _one_time_prekeys(one_time_prekeys)
    with transaction.atomic():
        if spk is not None:
            MailboxDevice.objects.filter(pk=device.pk).update(
                signed_prekey_id=spk.key_id, signed_prekey=spk.public_key,
                signed_prekey_signature=spk.signature)
        if prekeys:
            OneTimePreKey.objects.filter(device=device).delete()
            OneTimePreKey.objects.bulk_create([OneTimePreKey(device=device, key_id=key_id,
                                                             public_key=public)
                                               for key_id, public in prekeys])
            MailboxDevice.objects.filter(pk=device.pk).update(low_keys_notified=False)
        return OneTimePreKey.objects.filter(device=device).count()


# -- bundles ------------------------------------------------------------------------------------

def _take_one(device: MailboxDevice) -> OneTimePreKey | None:
    """One one-time prekey of `device`, removed so that no other taker gets it, or None.

    The race: takers read the same first row; the DELETE that still finds it wins (count 1),
    the others see 0 and try the next row. Works alike on SQLite and PostgreSQL."""
    for _ in range(64):
        candidate = OneTimePreKey.objects.filter(device=device).order_by("key_id").first()
        if candidate is None:
            return None
        deleted, _ = OneTimePreKey.objects.filter(pk=candidate.pk).delete()
        if deleted == 1:
            return candidate
    return None


def _low_keys_check(device: MailboxDevice) -> None:
    count = OneTimePreKey.objects.filter(device=device).count()
    if count > settings.MAILBOX_LOW_PREKEYS:
        return
    # Once per fall below the mark: the update that flips the flag sends the event.
    if MailboxDevice.objects.filter(pk=device.pk, low_keys_notified=False).update(
            low_keys_notified=True) == 1:
        _ring(device.pk, {"type": "mailbox.keys_low", "count": count})


def bundle_take(*, callsign: str, device: str, requester: str) -> dict[str, Any]:
    """The prekey bundle of `callsign`'s device `device` (a number, or "*" for all), each with
    one one-time prekey taken for good, or null when none is left. 404 for an unknown operator
    or device; 429 over the per-requester or per-target rate."""
    callsign = callsign.upper()
    operator = MailboxOperator.objects.filter(callsign=callsign).first()
    if operator is None:
        raise MailboxError("unknown_operator", f"{callsign} has no mailbox on this station",
                           status=404)
    rate_take("bundle", requester, settings.MAILBOX_BUNDLE_RATE, "bundle requests")
    rate_take("bundle-target", callsign, settings.MAILBOX_BUNDLE_TARGET_RATE,
              f"bundle requests for {callsign}")
    devices = list(operator.devices.order_by("device_id"))
    if device != "*":
        try:
            wanted = int(device)
        except ValueError as exc:
            raise MailboxError("invalid", "deviceId: a number or *") from exc
        devices = [d for d in devices if d.device_id == wanted]
        if not devices:
            raise MailboxError("unknown_device", f"{callsign} has no device {wanted}",
                               status=404)
    out = []
    for item in devices:
        prekey = _take_one(item)
        _low_keys_check(item)
        out.append({
            "deviceId": item.device_id, "registrationId": item.registration_id,
            "signedPreKey": {"keyId": item.signed_prekey_id,
                             "publicKey": b64(item.signed_prekey),
                             "signature": b64(item.signed_prekey_signature)},
            "oneTimePreKey": None if prekey is None else {"keyId": prekey.key_id,
                                                          "publicKey": b64(prekey.public_key)},
        })
    return {"callsign": callsign, "identityKey": b64(operator.identity_key), "devices": out}


# -- messages -----------------------------------------------------------------------------------

@dataclass
class Envelope:
    device_id: int
    registration_id: int
    message_type: int
    content: bytes


def envelopes_parse(messages: Any, timestamp: Any) -> tuple[list[Envelope], int]:
    """The sender's messages, checked (413 for content over 96 KiB, naming the device)."""
    if not isinstance(messages, list):
        raise MailboxError("invalid", "messages: a list of {deviceId, registrationId, type, "
                                      "content}")
    ts = _int(timestamp, "timestamp", 0, 2**53)
    out: list[Envelope] = []
    seen: set[int] = set()
    for index, item in enumerate(messages):
        if not isinstance(item, dict):
            raise MailboxError("invalid", f"messages[{index}]: an object")
        device_id = _int(item.get("deviceId"), f"messages[{index}].deviceId", 1, 2**31)
        if device_id in seen:
            raise MailboxError("invalid", f"messages[{index}].deviceId: {device_id} twice")
        seen.add(device_id)
        content = item.get("content")
        if isinstance(content, str) and len(content) > (MAX_CONTENT_BYTES * 4) // 3 + 8:
            raise MailboxError("too_large", f"messages[{index}].content is over "
                               f"{MAX_CONTENT_BYTES} bytes", status=413)
        raw = decode_b64(content, f"messages[{index}].content")
        if len(raw) > MAX_CONTENT_BYTES:
            raise MailboxError("too_large", f"messages[{index}].content is {len(raw)} bytes, "
                               f"over {MAX_CONTENT_BYTES}", status=413)
        out.append(Envelope(
            device_id=device_id,
            registration_id=_int(item.get("registrationId"),
                                 f"messages[{index}].registrationId", 0, 2**31),
            message_type=_int(item.get("type"), f"messages[{index}].type", 0, 256),
            content=raw))
    return out, ts


def devices_check(*, callsign: str, envelopes: list[Envelope], source: str,
                  source_device: int) -> dict[int, MailboxDevice]:
    """The recipient's devices by id when the envelopes name exactly them (less the sender's
    own when writing to oneself) with their current registration ids; else 404/409/410."""
    callsign = callsign.upper()
    operator = MailboxOperator.objects.filter(callsign=callsign).first()
    if operator is None:
        raise MailboxError("unknown_operator", f"{callsign} has no mailbox on this station",
                           status=404)
    devices = {d.device_id: d for d in operator.devices.all()}
    if callsign == source.upper():
        devices.pop(source_device, None)
    given = {e.device_id for e in envelopes}
    missing, extra = sorted(set(devices) - given), sorted(given - set(devices))
    if missing or extra:
        raise MailboxError("mismatched_devices", f"{callsign}'s devices are {sorted(devices)}: "
                           f"missing {missing}, extra {extra}", status=409,
                           extra={"missingDevices": missing, "extraDevices": extra})
    stale = sorted(e.device_id for e in envelopes
                   if devices[e.device_id].registration_id != e.registration_id)
    if stale:
        raise MailboxError("stale_devices", f"registration ids changed for {callsign}'s "
                           f"devices {stale}: fetch their bundles again", status=410,
                           extra={"staleDevices": stale})
    return devices


def messages_store(*, callsign: str, envelopes: list[Envelope], timestamp: int, source: str,
                   source_device: int, ttl: int | None = None,
                   server_ids: list[str] | None = None) -> list[str]:
    """Store one envelope per device of `callsign` (a local operator); their server ids in
    the order given. 409 {missingDevices, extraDevices} unless the envelopes name exactly the
    operator's devices (less the sender's own when writing to oneself); 410 {staleDevices}
    for a registration id that is not the device's. Each device keeps at most
    MAILBOX_QUEUE_CAP envelopes: the oldest go first. `server_ids`: ids given beforehand (a
    forwarded batch); storing them twice fails on their uniqueness (IntegrityError)."""
    expires = timezone.now() + dt.timedelta(seconds=ttl or settings.MAILBOX_MESSAGE_TTL)
    ids = server_ids or [uuid.uuid4().hex for _ in envelopes]
    with transaction.atomic():
        devices = devices_check(callsign=callsign, envelopes=envelopes, source=source,
                                source_device=source_device)
        rows = [MailboxMessage(server_id=server_id, device=devices[e.device_id],
                               source=source.upper(), source_device=source_device,
                               message_type=e.message_type, timestamp=timestamp,
                               content=e.content, expires_at=expires)
                for server_id, e in zip(ids, envelopes, strict=True)]
        MailboxMessage.objects.bulk_create(rows)
        for row in rows:
            over = list(MailboxMessage.objects.filter(device=row.device).order_by("-pk")
                        .values_list("pk", flat=True)[settings.MAILBOX_QUEUE_CAP:])
            if over:
                MailboxMessage.objects.filter(pk__in=over).delete()
                logger.info("mailbox queue cap: oldest dropped", extra={
                    "device": str(row.device), "dropped": len(over)})
            ring_on_commit(row.device.pk)
    return [row.server_id for row in rows]


def message_ack(*, device_pk: int, server_id: str) -> bool:
    """Delete an envelope on its recipient device's ack; another device's ack changes nothing."""
    deleted, _ = MailboxMessage.objects.filter(device_id=device_pk, server_id=server_id).delete()
    return deleted > 0


def messages_prune(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete expired envelopes (never delivered after expiry anyway) and expired outbound
    batches that never reached their home station."""
    from signaling.models import MailboxOutbound

    now = now or timezone.now()
    deleted, _ = MailboxMessage.objects.filter(expires_at__lte=now).delete()
    outbound, _ = MailboxOutbound.objects.filter(expires_at__lte=now).delete()
    return {"messages": deleted, "outbound": outbound}
