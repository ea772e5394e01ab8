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


# --- the mailbox ---------------------------------------------------------------------------------


class MailboxOperator(models.Model):
    """A licensed operator whose mailbox lives on this station (their home station). One identity
    key per operator, as in Signal: every device of the operator publishes it."""

    callsign = models.CharField(max_length=32, unique=True)
    identity_key = models.BinaryField(max_length=33, help_text="0x05 + X25519 public key.")
    certificate_fingerprint = models.CharField(max_length=64, blank=True,
                                               help_text="The license certificate last proven.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["callsign"]

    def __str__(self) -> str:
        return self.callsign


class MailboxDevice(models.Model):
    """One device of an operator: its signed prekey, its token (only the SHA-256 is kept)."""

    operator = models.ForeignKey(MailboxOperator, on_delete=models.CASCADE,
                                 related_name="devices")
    device_id = models.PositiveIntegerField()
    registration_id = models.PositiveIntegerField()
    signed_prekey_id = models.PositiveIntegerField()
    signed_prekey = models.BinaryField(max_length=33)
    signed_prekey_signature = models.BinaryField(max_length=64)
    token_hash = models.CharField(max_length=64, unique=True)
    low_keys_notified = models.BooleanField(
        default=False, help_text="The owner was told the one-time keys run low (reset by an "
                                 "upload).")
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["operator__callsign", "device_id"]
        constraints = [models.UniqueConstraint(fields=["operator", "device_id"],
                                               name="mailbox_device_unique_id")]

    def __str__(self) -> str:
        return f"{self.operator.callsign}.{self.device_id}"


class OneTimePreKey(models.Model):
    """A one-time prekey, handed out once: the row that a conditional delete removes."""

    device = models.ForeignKey(MailboxDevice, on_delete=models.CASCADE, related_name="prekeys")
    key_id = models.PositiveIntegerField()
    public_key = models.BinaryField(max_length=33)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "key_id"],
                                               name="mailbox_prekey_unique_id")]

    def __str__(self) -> str:
        return f"prekey {self.key_id}"


class MailboxMessage(models.Model):
    """An opaque envelope waiting for one device: deleted on that device's ack or at expiry.
    Delivery order is the primary key's."""

    server_id = models.CharField(max_length=32, unique=True)
    device = models.ForeignKey(MailboxDevice, on_delete=models.CASCADE, related_name="messages")
    source = models.CharField(max_length=32)
    source_device = models.PositiveIntegerField()
    message_type = models.PositiveSmallIntegerField()
    timestamp = models.BigIntegerField(help_text="The sender's timestamp (ms since the epoch).")
    content = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["device", "id"], name="mailbox_msg_device_order")]

    def __str__(self) -> str:
        return f"envelope {self.server_id}"


class MailboxHome(models.Model):
    """Where an operator's mailbox lives, as the home station signed it and the mesh gossips it
    (this station's own operators included). Newest `issued_at` wins."""

    callsign = models.CharField(max_length=32, unique=True)
    station_id = models.CharField(max_length=64)
    issued_at = models.BigIntegerField(help_text="The home station's clock (ms) at signing.")
    proof = models.JSONField(help_text="The operator's device registration there: certificate, "
                                       "chain, nonce and the license key's signature over the "
                                       "home station's id and that nonce.")
    credential = models.JSONField(help_text="The home station's credential (empty: unclaimed, "
                                            "not gossiped).")
    signature = models.CharField(max_length=128, blank=True,
                                 help_text="The home station's signature over the record.")
    received_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["callsign"]

    def __str__(self) -> str:
        return f"{self.callsign} @ {self.station_id[:12]}"


class MailboxOutbound(models.Model):
    """Envelopes this station accepted for an operator homed elsewhere, kept until the home
    station acknowledged them (`mailbox.mesh` sends them)."""

    class State(models.TextChoices):
        PENDING = "pending", "not yet accepted by the home station"
        WAITING_LAN = "waiting_lan", "waiting for a LAN/IP route"
        ACCEPTED = "accepted", "accepted, the home station is fetching it"

    batch_id = models.CharField(max_length=32, unique=True)
    callsign = models.CharField(max_length=32, db_index=True)
    home_station = models.CharField(max_length=64)
    payload = models.JSONField(help_text="The sender's messages and timestamp (contents stay "
                                         "encrypted; never shown).")
    source = models.CharField(max_length=32)
    source_device = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    ids = models.JSONField(default=list, blank=True,
                           help_text="The envelope ids the home station gave on acceptance.")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    next_attempt_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"to {self.callsign} ({self.state})"
