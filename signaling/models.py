"""Signaling sessions: who connected, when, and how it ended (kept 24 h, then pruned)."""

from __future__ import annotations

from django.db import models


class SignalingSession(models.Model):
    """One WebSocket of `/ws/signal` or `/peerjs`, written at connect and at close (never per
    message). Sessions still `open` whose process died are closed as `lost` by the prune job."""

    class Protocol(models.TextChoices):
        NATIVE = "signal", "/ws/signal"
        PEERJS = "peerjs", "PeerJS"

    class Outcome(models.TextChoices):
        OPEN = "open", "open"
        CLOSED = "closed", "closed by the client"
        REJECTED = "rejected", "rejected at connect"
        TIMEOUT = "timeout", "timed out"
        ABUSE = "abuse", "closed for abuse"
        TOO_LARGE = "too_large", "message too large"
        DISCONNECTED = "disconnected", "disconnected by the operator"
        REPLACED = "replaced", "replaced by a re-attach"
        LOST = "lost", "process lost"

    connection_id = models.CharField(max_length=32, unique=True)
    protocol = models.CharField(max_length=8, choices=Protocol.choices)
    peer_id = models.CharField(max_length=128, blank=True, db_index=True)
    callsign = models.CharField(max_length=32, blank=True, db_index=True)
    licensed = models.BooleanField(default=False)
    room = models.CharField(max_length=64, blank=True)
    remote_addr = models.CharField(max_length=64, blank=True)
    process = models.CharField(max_length=128, blank=True)
    started_at = models.DateTimeField(db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.OPEN)
    detail = models.CharField(max_length=200, blank=True)
    messages_in = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["outcome", "started_at"])]

    def __str__(self) -> str:
        who = self.callsign or self.peer_id or "?"
        return f"{self.get_protocol_display()} {who} ({self.outcome})"
