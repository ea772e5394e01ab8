from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from mesh import selectors, services
from mesh.models import Link, MeshBlacklistEntry, NetworkModeChange, Peer, Route


class LinkInline(admin.TabularInline):
    model = Link
    extra = 0
    readonly_fields = ["kind", "address", "state", "connected", "last_heard", "rtt_ms", "detail"]


@admin.register(Peer)
class PeerAdmin(admin.ModelAdmin):
    list_display = ["callsign", "endpoint", "state", "discovery_method", "last_contact", "rtt_ms",
                    "authenticated", "station_id"]
    list_filter = ["state", "discovery_method", "authenticated"]
    search_fields = ["callsign", "endpoint", "station_id"]
    readonly_fields = ["station_id", "state", "state_changed_at", "last_contact", "rtt_ms",
                       "authenticated", "learnt_from", "fingerprint", "version", "created_at",
                       "updated_at"]
    inlines = [LinkInline]
    actions = ["gossip_now"]

    def save_model(self, request: HttpRequest, obj: Peer, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        if not change:
            obj.endpoint = services.endpoint_normalize(obj.endpoint)
        super().save_model(request, obj, form, change)
        if obj.endpoint:
            Link.objects.get_or_create(peer=obj, kind=Link.Kind.LAN, address=obj.endpoint)
        services.mesh_poke(command="peers_changed")

    def changelist_view(self, request: HttpRequest, extra_context=None):  # type: ignore[no-untyped-def]
        rf = selectors.rf_status()
        if rf["configured"]:
            text = f"Radio: TNC {rf['url']} is {rf['state']}"
            if rf.get("lastError"):
                text += f" (last error: {rf['lastError']})"
            heard = ", ".join(h["source"] for h in rf.get("heard", [])[:10])
            self.message_user(request, text + (f"; heard on the air: {heard}" if heard else ""),
                              messages.INFO if rf["state"] == "connected" else messages.WARNING)
        return super().changelist_view(request, extra_context)

    @admin.action(description="Sync certificates and blacklist with every linked peer now")
    def gossip_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        services.mesh_poke(command="gossip")
        self.message_user(request, "meshd asked to sync every link"
                          + ("" if selectors.daemon_alive() else " (but meshd is not running)"),
                          messages.INFO)


@admin.register(MeshBlacklistEntry)
class MeshBlacklistEntryAdmin(admin.ModelAdmin):
    list_display = ["fingerprint", "status", "signer_station_id", "received_from", "reason",
                    "created_at"]
    list_filter = ["status"]
    search_fields = ["fingerprint", "signer_station_id", "reason"]
    readonly_fields = [f.name for f in MeshBlacklistEntry._meta.fields]


@admin.register(NetworkModeChange)
class NetworkModeChangeAdmin(admin.ModelAdmin):
    list_display = ["at", "previous", "mode", "detail"]
    list_filter = ["mode"]
    readonly_fields = ["at", "previous", "mode", "detail"]

    def changelist_view(self, request: HttpRequest, extra_context=None):  # type: ignore[no-untyped-def]
        mode = selectors.network_mode_get()
        detail = mode.get("detail") or ""
        self.message_user(request, f"Current network mode: {mode['mode']}"
                          + (f" ({detail})" if detail else ""), messages.INFO)
        return super().changelist_view(request, extra_context)


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    """meshd's routing table, read-only: meshd replaces it on every change."""

    list_display = ["destination", "destination_callsign", "next_hop", "next_hop_name", "cost",
                    "hops", "seqno", "age", "lan_next_hop"]
    search_fields = ["destination", "next_hop", "lan_next_hop", "known_callsign",
                     "known_next_hop_callsign"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Route]:
        return selectors.routes_annotated()

    def get_ordering(self, request: HttpRequest) -> list[str]:
        return ["cost", "known_callsign", "destination"]  # as /api/routes, callsigns filled

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Route | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Route | None = None) -> bool:
        return False

    @admin.display(description="callsign", ordering="known_callsign")
    def destination_callsign(self, route: Route) -> str:
        return route.known_callsign  # type: ignore[attr-defined]

    @admin.display(description="next hop callsign", ordering="known_next_hop_callsign")
    def next_hop_name(self, route: Route) -> str:
        return route.known_next_hop_callsign  # type: ignore[attr-defined]

    @admin.display(description="age (s)", ordering="-refreshed_at")
    def age(self, route: Route) -> float:
        return route.age_at(timezone.now())
