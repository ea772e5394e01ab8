"""Admin: signaling sessions, the clients connected right now, and disconnecting one; the
mailbox's operators, devices, queue sizes and pending forwards (never an envelope's contents)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Min, QuerySet
from django.http import HttpRequest

from signaling.models import (
    MailboxDevice,
    MailboxHome,
    MailboxOperator,
    MailboxOutbound,
    SignalingSession,
)
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


# -- the mailbox: who has one, their devices, queue sizes, pending forwards; never contents ------


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _key_fingerprint(value: bytes | memoryview | None) -> str:
    import hashlib

    return hashlib.sha256(bytes(value or b"")).hexdigest()[:16] if value else ""


class MailboxDeviceInline(admin.TabularInline):
    model = MailboxDevice
    fields = ("device_id", "registration_id", "signed_prekey_id", "created_at", "last_seen_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(MailboxOperator)
class MailboxOperatorAdmin(_ReadOnly):
    list_display = ("callsign", "device_count", "queued", "identity", "certificate_fingerprint",
                    "updated_at")
    search_fields = ("callsign", "certificate_fingerprint")
    fields = ("callsign", "identity", "certificate_fingerprint", "created_at", "updated_at")
    readonly_fields = fields
    inlines = [MailboxDeviceInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(
            device_total=Count("devices", distinct=True),
            queued_total=Count("devices__messages", distinct=True))

    @admin.display(description="devices", ordering="device_total")
    def device_count(self, obj: MailboxOperator) -> int:
        return obj.device_total

    @admin.display(description="envelopes waiting", ordering="queued_total")
    def queued(self, obj: MailboxOperator) -> int:
        return obj.queued_total

    @admin.display(description="identity key (SHA-256, first 16 hex)")
    def identity(self, obj: MailboxOperator) -> str:
        return _key_fingerprint(obj.identity_key)


@admin.register(MailboxDevice)
class MailboxDeviceAdmin(_ReadOnly):
    list_display = ("__str__", "registration_id", "prekeys", "queued", "oldest_waiting",
                    "last_seen_at", "created_at")
    search_fields = ("operator__callsign",)
    fields = ("operator", "device_id", "registration_id", "signed_prekey_id", "low_keys_notified",
              "created_at", "last_seen_at")
    readonly_fields = fields
    actions = ["remove_devices"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("operator").annotate(
            prekey_total=Count("prekeys", distinct=True),
            queued_total=Count("messages", distinct=True),
            oldest=Min("messages__created_at"))

    @admin.display(description="one-time prekeys", ordering="prekey_total")
    def prekeys(self, obj: MailboxDevice) -> int:
        return obj.prekey_total

    @admin.display(description="envelopes waiting", ordering="queued_total")
    def queued(self, obj: MailboxDevice) -> int:
        return obj.queued_total

    @admin.display(description="oldest waiting since", ordering="oldest")
    def oldest_waiting(self, obj: MailboxDevice) -> object:
        return obj.oldest

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.is_superuser

    @admin.action(description="Remove the selected devices (their tokens stop working, their "
                              "queues go)")
    def remove_devices(self, request: HttpRequest, queryset: QuerySet) -> None:
        removed, _ = queryset.delete()
        self.message_user(request, f"{removed} row(s) removed.", messages.SUCCESS)


@admin.register(MailboxHome)
class MailboxHomeAdmin(_ReadOnly):
    list_display = ("callsign", "station_id", "home_station", "issued", "received_at")
    search_fields = ("callsign", "station_id")
    fields = ("callsign", "station_id", "home_station", "issued", "received_at")
    readonly_fields = fields

    @admin.display(description="home station callsign")
    def home_station(self, obj: MailboxHome) -> str:
        return str((obj.credential or {}).get("callsign") or "")

    @admin.display(description="issued at (home station clock)", ordering="issued_at")
    def issued(self, obj: MailboxHome) -> str:
        import datetime as dt

        return dt.datetime.fromtimestamp(obj.issued_at / 1000, dt.UTC).isoformat(
            timespec="seconds")


@admin.register(MailboxOutbound)
class MailboxOutboundAdmin(_ReadOnly):
    """Batches kept here until their home station stored them (the contents stay hidden)."""

    list_display = ("batch_id", "callsign", "home_station", "state", "envelopes", "attempts",
                    "last_error", "next_attempt_at", "expires_at", "created_at")
    list_filter = ("state",)
    search_fields = ("callsign", "batch_id", "home_station", "source")
    fields = ("batch_id", "callsign", "home_station", "source", "source_device", "state",
              "envelopes", "ids", "attempts", "last_error", "next_attempt_at", "created_at",
              "expires_at")
    readonly_fields = fields

    @admin.display(description="envelopes")
    def envelopes(self, obj: MailboxOutbound) -> int:
        return len((obj.payload or {}).get("messages") or [])
