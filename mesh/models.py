"""Peers, their links, the network mode log, blacklist entries heard from the mesh and meshd's
routing table."""

from __future__ import annotations

from datetime import datetime

from django.db import models

from mesh import membership


class Peer(models.Model):
    """Another station this station knows of."""

    class Method(models.TextChoices):
        MDNS = "mdns", "mDNS"
        MANUAL = "manual", "manual"
        RF = "rf", "RF beacon"
        PEER = "peer", "learnt from a peer"

    class State(models.TextChoices):
        ACTIVE = membership.ACTIVE
        SUSPECT = membership.SUSPECT
        UNREACHABLE = membership.UNREACHABLE
        UNKNOWN = membership.UNKNOWN

    station_id = models.CharField(max_length=64, unique=True, null=True, blank=True,
                                  help_text="Derived from the station key; empty until heard.")
    callsign = models.CharField(max_length=16, blank=True, db_index=True)
    endpoint = models.CharField(max_length=300, blank=True, db_index=True,
                                help_text="Base URL, e.g. http://10.0.0.5:8080")
    capabilities = models.JSONField(default=list, blank=True)
    version = models.CharField(max_length=64, blank=True)
    fingerprint = models.CharField(max_length=128, blank=True,
                                   help_text="Owner certificate fingerprint from mDNS or the link.")
    discovery_method = models.CharField(max_length=8, choices=Method.choices)
    learnt_from = models.CharField(max_length=64, blank=True,
                                   help_text="Station id of the peer that told us (method peer).")
    state = models.CharField(max_length=12, choices=State.choices, default=State.UNKNOWN,
                             db_index=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    last_contact = models.DateTimeField(null=True, blank=True, db_index=True)
    rtt_ms = models.FloatField(null=True, blank=True)
    authenticated = models.BooleanField(default=False,
                                        help_text="A /ws/coordinate link has been proven.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["callsign", "endpoint"]

    def __str__(self) -> str:
        return f"{self.callsign or '?'} {self.endpoint or self.station_id or ''}".strip()


class Link(models.Model):
    """One way of reaching a peer (a LAN address now, an RF port later)."""

    class Kind(models.TextChoices):
        LAN = "lan", "LAN/IP"
        RF = "rf", "RF"

    peer = models.ForeignKey(Peer, on_delete=models.CASCADE, related_name="links")
    kind = models.CharField(max_length=4, choices=Kind.choices, default=Kind.LAN)
    address = models.CharField(max_length=300)
    state = models.CharField(max_length=12, choices=Peer.State.choices,
                             default=Peer.State.UNKNOWN)
    last_heard = models.DateTimeField(null=True, blank=True)
    rtt_ms = models.FloatField(null=True, blank=True)
    connected = models.BooleanField(default=False, help_text="A /ws/coordinate link is open.")
    detail = models.CharField(max_length=300, blank=True,
                              help_text="Why the last link attempt failed or was refused.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["peer", "kind", "address"],
                                               name="mesh_link_unique_address")]

    def __str__(self) -> str:
        return f"{self.kind} {self.address} ({self.state})"


class NetworkModeChange(models.Model):
    """Every change of the network mode, for the admin and the operator's log."""

    mode = models.CharField(max_length=10)
    previous = models.CharField(max_length=10)
    detail = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.previous} -> {self.mode}"


class MeshBlacklistEntry(models.Model):
    """A blacklist entry as it travels the mesh: signed by the station that issued it.

    `status` says what this station did with it: applied (the signer's certificate chains to a
    root we trust, or issued the blacklisted certificate) or report (kept for the owner to review
    in the admin: unsigned, bad signature, untrusted signer)."""

    class Status(models.TextChoices):
        APPLIED = "applied"
        REPORT = "report"

    fingerprint = models.CharField(max_length=128, db_index=True)
    reason = models.TextField(blank=True)
    timestamp = models.BigIntegerField(help_text="ms since the epoch, set by the signer")
    signer_station_id = models.CharField(max_length=64, blank=True)
    signer_credential = models.JSONField(null=True, blank=True)
    signature = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, db_index=True)
    status_detail = models.TextField(blank=True)
    received_from = models.CharField(max_length=64, blank=True,
                                     help_text="Station id of the link it came on; empty: ours.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(
            fields=["fingerprint", "signer_station_id", "timestamp"],
            name="mesh_blacklist_entry_unique")]
        ordering = ["-created_at"]
        verbose_name_plural = "mesh blacklist entries"

    def __str__(self) -> str:
        return f"{self.fingerprint[:16]} by {self.signer_station_id[:12] or 'unsigned'}"


class Route(models.Model):
    """meshd's routing table as it last stored it: the selected route to each station it can
    reach through the mesh. It belongs to meshd, which replaces it whole on every change
    (`services.routes_store`); everything else only reads it."""

    destination = models.CharField(max_length=64, unique=True,
                                   help_text="Station id of the station this route reaches.")
    callsign = models.CharField(max_length=16, blank=True,
                                help_text="The destination's callsign as meshd knew it; empty: "
                                          "unknown to meshd (read from the peer list instead).")
    next_hop = models.CharField(max_length=64,
                                help_text="Station id of the linked neighbour traffic for the "
                                          "destination is handed to.")
    next_hop_callsign = models.CharField(max_length=16, blank=True,
                                         help_text="The next hop's callsign as meshd knew it; "
                                                   "empty: unknown to meshd.")
    cost = models.PositiveIntegerField(
        help_text="Route metric: the sum of the link costs along the way (lower is better; "
                  "65535 is unreachable).")
    hops = models.PositiveSmallIntegerField(help_text="Links between this station and the "
                                                      "destination (1: a direct neighbour).")
    seqno = models.PositiveIntegerField(help_text="The destination's sequence number this route "
                                                  "carries (16-bit, wraps around).")
    refreshed_at = models.DateTimeField(help_text="When an update from the next hop last "
                                                  "refreshed this route.")
    lan_next_hop = models.CharField(max_length=64, blank=True,
                                    help_text="Next hop of the best route over LAN/IP links "
                                              "only (no hop on the air); empty: none.")
    lan_cost = models.PositiveIntegerField(null=True, blank=True,
                                           help_text="Metric of the LAN/IP-only route; empty: "
                                                     "none.")
    lan_hops = models.PositiveSmallIntegerField(null=True, blank=True,
                                                help_text="Hops of the LAN/IP-only route; empty: "
                                                          "none.")
    updated_at = models.DateTimeField(auto_now=True,
                                      help_text="When meshd last changed this row.")

    class Meta:
        ordering = ["cost", "callsign", "destination"]

    def __str__(self) -> str:
        return f"{self.callsign or self.destination} via {self.next_hop_callsign or self.next_hop}"

    def age_at(self, now: datetime) -> float:
        """Seconds since the route was last refreshed, one decimal (never negative)."""
        return round(max(0.0, (now - self.refreshed_at).total_seconds()), 1)
