"""Trust store, blacklist, issuance audit, the station itself and its owner's tokens."""

from __future__ import annotations

from django.db import models


class TrustLevel(models.TextChoices):
    ROOT = "root", "root (trust anchor)"
    INTERMEDIATE = "intermediate", "intermediate (may issue)"
    PEER = "peer", "peer (end entity)"


class CertificateState(models.TextChoices):
    PENDING = "pending", "pending"
    VERIFIED = "verified", "verified"
    TRUSTED = "trusted", "trusted"
    BLACKLISTED = "blacklisted", "blacklisted"


class CertificateSource(models.TextChoices):
    CONSOLE = "console", "console"
    API = "api", "API"
    ADMIN = "admin", "admin"
    CLAIM = "claim", "station claim"
    ISSUED = "issued", "issued here"
    MESH = "mesh", "mesh"
    SETTINGS = "settings", "settings file"


class Certificate(models.Model):
    """One X.509 certificate this station knows, with its parsed fields (read-only copies)."""

    fingerprint = models.CharField(max_length=64, unique=True,
                                   help_text="SHA-256 of the DER encoding, hex.")
    serial = models.CharField(max_length=64)
    subject = models.TextField()
    issuer = models.TextField()
    callsign = models.CharField(max_length=20, blank=True, db_index=True)
    license_class = models.CharField(max_length=40, blank=True)
    can_issue = models.BooleanField(default=False)
    is_ca = models.BooleanField(default=False)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    qso_not_before = models.DateField(null=True, blank=True)
    qso_not_after = models.DateField(null=True, blank=True)
    dxcc = models.IntegerField(null=True, blank=True)
    pem = models.TextField()
    issuer_certificate = models.ForeignKey("self", null=True, blank=True,
                                           on_delete=models.SET_NULL, related_name="issued")
    trust_level = models.CharField(max_length=12, choices=TrustLevel.choices, db_index=True)
    state = models.CharField(max_length=12, choices=CertificateState.choices,
                             default=CertificateState.PENDING, db_index=True)
    source = models.CharField(max_length=10, choices=CertificateSource.choices,
                              default=CertificateSource.API)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.callsign or self.subject[:40]} ({self.trust_level}, {self.fingerprint[:12]})"


class BlacklistEntry(models.Model):
    """A certificate fingerprint this station refuses. Permanent until an operator lifts it.

    Entries heard from the mesh take effect (`effective`) only when signed by a station whose
    certificate chains to a root or issued the blacklisted certificate; otherwise they are kept
    as reports."""

    fingerprint = models.CharField(max_length=64, db_index=True)
    reason = models.TextField(blank=True)
    created_by = models.CharField(max_length=150, blank=True,
                                  help_text="Callsign or user that added it.")
    source = models.CharField(max_length=10, choices=CertificateSource.choices,
                              default=CertificateSource.API)
    signed_by_station = models.CharField(max_length=64, blank=True)
    signature = models.TextField(blank=True, help_text="Base64 station signature, if any.")
    effective = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "blacklist entries"

    def __str__(self) -> str:
        return f"{self.fingerprint[:16]}: {self.reason[:40]}"


class IssuedCertificate(models.Model):
    """Audit record of every certificate this station's CA issued."""

    fingerprint = models.CharField(max_length=64, unique=True)
    serial = models.CharField(max_length=64)
    callsign = models.CharField(max_length=20, db_index=True)
    license_class = models.CharField(max_length=40, blank=True)
    can_issue = models.BooleanField(default=False)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    ca_fingerprint = models.CharField(max_length=64)
    proof_fingerprint = models.CharField(max_length=64,
                                         help_text="The license certificate that asked.")
    requested_by = models.CharField(max_length=150, blank=True)
    remote_addr = models.CharField(max_length=64, blank=True)
    pem = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.callsign} {self.serial[:16]}"


class StationState(models.TextChoices):
    UNCLAIMED = "unclaimed", "unclaimed"
    CLAIMED = "claimed", "claimed"
    ACTIVE = "active", "active"


class Station(models.Model):
    """This station (a single row): its id, public key, owner and the owner's delegation."""

    station_id = models.CharField(max_length=32, unique=True)
    public_key = models.CharField(max_length=64, help_text="Raw Ed25519 public key, base64.")
    state = models.CharField(max_length=10, choices=StationState.choices,
                             default=StationState.UNCLAIMED)
    owner_callsign = models.CharField(max_length=20, blank=True)
    owner_certificate = models.TextField(blank=True, help_text="PEM of the owner's certificate.")
    owner_chain = models.JSONField(default=list, blank=True, help_text="PEM list.")
    owner_fingerprint = models.CharField(max_length=64, blank=True)
    delegation_nonce = models.CharField(max_length=128, blank=True)
    delegation_signature = models.TextField(blank=True, help_text="Base64, by the owner's key.")
    metadata = models.JSONField(default=dict, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    ca_certificate = models.TextField(blank=True, help_text="PEM of the CA-capable certificate.")
    ca_chain = models.JSONField(default=list, blank=True)
    ca_fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"station {self.station_id} ({self.state}, {self.owner_callsign or 'no owner'})"


class OwnerToken(models.Model):
    """A bearer token of the station owner; only its SHA-256 is stored."""

    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise it.")
    callsign = models.CharField(max_length=20)
    label = models.CharField(max_length=60, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "active"
        return f"{self.prefix}… {self.callsign} ({state})"
