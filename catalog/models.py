"""Content entries (one row per signed version), who holds their bodies, and origin stations.

An entry's identity is `entry_id`, the SHA-256 of its canonical form (`catalog.entries`); the
origin station signs that canonical form. The body lives in the blob store under its own SHA-256
(`content_hash`); `has_body` is only ever set after the blob is durably in place.
"""

from __future__ import annotations

from django.db import models


class Priority(models.IntegerChoices):
    ESSENTIAL = 1, "1 essential (every station)"
    POPULAR = 2, "2 popular (by demand)"
    STANDARD = 3, "3 standard (cached on access)"
    PERSONAL = 4, "4 personal (origin only)"


class ContentEntry(models.Model):
    """One signed version of a path published by an origin callsign."""

    entry_id = models.CharField(max_length=64, unique=True,
                                help_text="SHA-256 (hex) of the canonical form.")
    origin_callsign = models.CharField(max_length=16, db_index=True)
    origin_station_id = models.CharField(max_length=32, db_index=True)
    origin_public_key = models.CharField(max_length=64, help_text="Raw Ed25519 key, base64.")
    path = models.CharField(max_length=255)
    content_hash = models.CharField(max_length=64, blank=True, db_index=True,
                                    help_text="SHA-256 of the body; empty for a tombstone.")
    size = models.BigIntegerField(default=0)
    content_type = models.CharField(max_length=255, blank=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, db_index=True)
    created = models.CharField(max_length=96, help_text="HLC when the path was first published.")
    modified = models.CharField(max_length=96, help_text="HLC of this version.")
    modified_packed = models.BigIntegerField(db_index=True,
                                             help_text="The 64-bit HLC, for ordering and sync.")
    supersedes = models.CharField(max_length=64, blank=True,
                                  help_text="entry_id of the version the publisher replaced.")
    deleted = models.BooleanField(default=False, help_text="A tombstone: the path was deleted.")
    signature = models.CharField(max_length=100, help_text="Ed25519 by the origin, base64.")

    # Local state: never signed, never synced.
    is_current = models.BooleanField(default=False, db_index=True,
                                     help_text="The winning version of its path here.")
    conflict = models.BooleanField(default=False, db_index=True,
                                   help_text="Another head version of this path exists.")
    has_body = models.BooleanField(default=False, db_index=True)
    is_own = models.BooleanField(default=False, db_index=True,
                                 help_text="Published by this station.")
    pinned = models.BooleanField(default=False, help_text="Never evicted.")
    local_priority = models.PositiveSmallIntegerField(
        choices=Priority.choices, null=True, blank=True,
        help_text="Operator override of the replication priority on this station.")
    demand = models.PositiveIntegerField(default=0, help_text="Requests seen for this entry.")
    mesh_demand = models.PositiveIntegerField(
        default=0, help_text="Highest demand a peer reported for this entry (priority 2).")
    last_accessed = models.DateTimeField(null=True, blank=True, db_index=True)
    received_from = models.CharField(max_length=32, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "content entries"
        ordering = ["origin_callsign", "path", "-modified_packed"]
        indexes = [models.Index(fields=["origin_callsign", "path"])]
        constraints = [models.CheckConstraint(condition=models.Q(priority__gte=1, priority__lte=4),
                                              name="catalog_priority_1_to_4")]

    def __str__(self) -> str:
        mark = " (deleted)" if self.deleted else ""
        return f"{self.origin_callsign}/{self.path}{mark} @{self.modified}"

    @property
    def effective_priority(self) -> int:
        return self.local_priority or self.priority

    @property
    def url_path(self) -> str:
        return f"/c/{self.origin_callsign}/{self.path}"


class ContentReplica(models.Model):
    """A station known to hold the body of an entry (ourselves included)."""

    entry = models.ForeignKey(ContentEntry, on_delete=models.CASCADE, related_name="replicas")
    station_id = models.CharField(max_length=32)
    callsign = models.CharField(max_length=16, blank=True)
    seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entry", "station_id"],
                                               name="catalog_replica_once")]

    def __str__(self) -> str:
        return f"{self.entry_id} at {self.callsign or self.station_id}"


class OriginStation(models.Model):
    """A station whose credential we verified: its key speaks for its callsign."""

    station_id = models.CharField(max_length=32, unique=True)
    callsign = models.CharField(max_length=16, db_index=True)
    public_key = models.CharField(max_length=64)
    credential = models.JSONField(default=dict, blank=True)
    verified_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.callsign} ({self.station_id[:8]})"


class PeerPenalty(models.Model):
    """Bad bodies or signatures served by a peer: fetches prefer peers with fewer."""

    station_id = models.CharField(max_length=32, unique=True)
    callsign = models.CharField(max_length=16, blank=True)
    count = models.PositiveIntegerField(default=0)
    last_reason = models.CharField(max_length=200, blank=True)
    last_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.callsign or self.station_id}: {self.count}"
