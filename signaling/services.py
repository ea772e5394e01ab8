"""Writes of the signaling app: session records, pruning, operator disconnects."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from meshsite.redisconn import get_redis
from signaling.hub import KEY_PREFIX, US
from signaling.models import SignalingSession
from signaling.selectors import alive_processes, client_find


def sessions_write(*, creates: list[dict[str, Any]],
                   updates: list[tuple[str, dict[str, Any]]]) -> None:
    """Store a batch of session starts and ends (the relay flushes them about once a second)."""
    with transaction.atomic():
        if creates:
            SignalingSession.objects.bulk_create(
                [SignalingSession(**fields) for fields in creates], ignore_conflicts=True)
        for connection_id, fields in updates:
            SignalingSession.objects.filter(connection_id=connection_id).update(**fields)


def sessions_prune(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete sessions that ended more than SIGNALING_SESSION_RETENTION ago; close as `lost`
    the open sessions of processes that no longer run."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.SIGNALING_SESSION_RETENTION)
    deleted, _ = SignalingSession.objects.filter(ended_at__lt=cutoff).delete()
    alive = alive_processes()
    grace = now - dt.timedelta(seconds=settings.SIGNALING_PRESENCE_TTL * 2)
    lost = (SignalingSession.objects.filter(outcome=SignalingSession.Outcome.OPEN,
                                            started_at__lt=grace)
            .exclude(process__in=alive)
            .update(outcome=SignalingSession.Outcome.LOST, ended_at=now))
    return {"deleted": deleted, "lost": lost}


def client_disconnect(*, protocol: str, peer_id: str, connection_id: str | None = None,
                      code: int = 1008) -> bool:
    """Close a live client wherever it is connected (through its process's Redis channel).
    False when no process holds that id (or holds it on another connection than
    `connection_id`, when given)."""
    found = client_find(protocol=protocol, peer_id=peer_id)
    if found is None or (connection_id and found["connectionId"] != connection_id):
        return False
    get_redis().publish(f"{KEY_PREFIX}p:{found['process']}",
                        US.join(("K", found["connectionId"], str(code))))
    return True


def peerjs_token_issue(*, callsign: str, ttl: int = 86400) -> str:
    """A PeerJS token bound to a licensed `callsign` (for MESHSITE_PEERJS_ID_BINDING): ids that
    name that callsign are accepted with it for `ttl` seconds."""
    token = secrets.token_urlsafe(24)
    get_redis().set(f"{KEY_PREFIX}pjtok:{token}", callsign.upper(), ex=ttl)
    return token
