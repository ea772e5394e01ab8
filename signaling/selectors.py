"""Reads of the signaling app: live clients and counts, from the presence in Redis."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from meshsite.redisconn import get_redis
from signaling.hub import KEY_PREFIX, NATIVE, PEERJS, US

PROTOCOL_NS = {"signal": NATIVE, "peerjs": PEERJS}


def alive_processes() -> list[str]:
    """Signaling processes whose presence is fresh."""
    cutoff = time.time() - settings.SIGNALING_PRESENCE_TTL
    return [p.decode() for p in get_redis().zrangebyscore(f"{KEY_PREFIX}procs", cutoff, "+inf")]


def clients_connected() -> int:
    """Registered clients of both endpoints, across every process."""
    pipe = get_redis().pipeline(transaction=False)
    pipe.hlen(f"{KEY_PREFIX}c:{NATIVE}")
    pipe.hlen(f"{KEY_PREFIX}c:{PEERJS}")
    return sum(pipe.execute())


def _parse(protocol: str, peer_id: str, raw: bytes) -> dict[str, Any]:
    fields = raw.decode().split(US)
    fields += [""] * (7 - len(fields))
    return {
        "protocol": protocol,
        "peerId": peer_id,
        "process": fields[0],
        "connectionId": fields[1],
        "room": fields[3],
        "callsign": fields[4],
        "licensed": fields[5] == "1",
        "since": int(fields[6] or 0),
    }


def clients_live() -> list[dict[str, Any]]:
    """Every registered client on a live process, oldest first."""
    alive = set(alive_processes())
    out = []
    for protocol, ns in PROTOCOL_NS.items():
        for peer_id, raw in get_redis().hgetall(f"{KEY_PREFIX}c:{ns}").items():
            client = _parse(protocol, peer_id.decode(), raw)
            if client["process"] in alive:
                out.append(client)
    out.sort(key=lambda client: client["since"])
    return out


def client_find(*, protocol: str, peer_id: str) -> dict[str, Any] | None:
    ns = PROTOCOL_NS.get(protocol)
    if ns is None:
        return None
    raw = get_redis().hget(f"{KEY_PREFIX}c:{ns}", peer_id)
    return None if raw is None else _parse(protocol, peer_id, raw)


def peerjs_ids() -> list[str]:
    """Ids connected to the PeerJS endpoint (for `/peers` when discovery is allowed)."""
    return sorted(key.decode() for key in get_redis().hkeys(f"{KEY_PREFIX}c:{PEERJS}"))


def live_connection_ids() -> set[str]:
    return {client["connectionId"] for client in clients_live()}


def peerjs_token_callsign(*, token: str) -> str | None:
    """The licensed callsign a PeerJS token was issued to (MESHSITE_PEERJS_ID_BINDING)."""
    raw = get_redis().get(f"{KEY_PREFIX}pjtok:{token}")
    return None if raw is None else raw.decode()


# -- the mailbox ---------------------------------------------------------------------------------

def mailbox_prekey_count(*, device_pk: int) -> int:
    from signaling.models import OneTimePreKey

    return OneTimePreKey.objects.filter(device_id=device_pk).count()


def mailbox_pending(*, device_pk: int, after_pk: int = 0, limit: int = 100) -> list[Any]:
    """Envelopes for a device not yet sent on this connection, oldest first; expired ones are
    never returned (whether or not the prune has run)."""
    from django.utils import timezone

    from signaling.models import MailboxMessage

    return list(MailboxMessage.objects.filter(device_id=device_pk, pk__gt=after_pk,
                                              expires_at__gt=timezone.now())
                .order_by("pk")[:limit])


def mailbox_queue_size(*, device_pk: int) -> int:
    from signaling.models import MailboxMessage

    return MailboxMessage.objects.filter(device_id=device_pk).count()
