"""Admin: signaling sessions, the clients connected right now, and disconnecting one."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from signaling.models import SignalingSession
from signaling.selectors import live_connection_ids
from signaling.services import client_disconnect


class LiveFilter(admin.SimpleListFilter):
    title = "connected"
    parameter_name = "live"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("yes", "live now"), ("no", "ended")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(connection_id__in=live_connection_ids(), ended_at=None)
        if self.value() == "no":
            return queryset.exclude(ended_at=None)
        return queryset


@admin.register(SignalingSession)
class SignalingSessionAdmin(admin.ModelAdmin):
    list_display = ("peer_id", "callsign", "licensed", "protocol", "room", "started_at",
                    "ended_at", "outcome", "remote_addr", "process", "messages_in")
    list_filter = (LiveFilter, "protocol", "licensed", "outcome")
    search_fields = ("peer_id", "callsign", "remote_addr", "room", "process")
    date_hierarchy = "started_at"
    readonly_fields = [field.name for field in SignalingSession._meta.fields]
    actions = ["disconnect"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Disconnect the selected clients (if connected)")
    def disconnect(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = 0
        for session in queryset.filter(ended_at=None):
            if client_disconnect(protocol=session.protocol, peer_id=session.peer_id,
                                 connection_id=session.connection_id):
                done += 1
        level = messages.SUCCESS if done else messages.WARNING
        self.message_user(request, f"{done} client(s) disconnected.", level)
