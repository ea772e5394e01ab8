"""The catalog in the operator's control plane: publish, see replicas and conflicts, and steer
replication (priority, pin, evict, re-verify). Signed fields are read-only: changing one would
break the origin signature, so changes go through services that publish a new version."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from catalog import services
from catalog.entries import EntryError, content_type_clean, path_clean, priority_clean
from catalog.models import ContentEntry, ContentReplica, OriginStation, PeerPenalty, Priority

SIGNED_FIELDS = ("entry_id", "origin_callsign", "origin_station_id", "origin_public_key", "path",
                 "content_hash", "size", "content_type", "priority", "created", "modified",
                 "modified_packed", "supersedes", "deleted", "signature")
LOCAL_FIELDS = ("is_current", "conflict", "has_body", "is_own", "demand", "mesh_demand",
                "last_accessed", "received_from", "verified_at", "created_at", "updated_at")


class ContentPublishForm(forms.ModelForm):
    """Publish a file under a path for this station's owner (a new version if it exists)."""

    body = forms.FileField(help_text="The file to publish.")

    class Meta:
        model = ContentEntry
        fields = ["path", "priority", "content_type"]
        help_texts = {"content_type": "Empty: guessed from the path."}

    def clean_path(self) -> str:
        try:
            return path_clean(self.cleaned_data["path"])
        except EntryError as exc:
            raise forms.ValidationError(exc.detail) from exc

    def clean_priority(self) -> int:
        try:
            return priority_clean(self.cleaned_data["priority"])
        except EntryError as exc:
            raise forms.ValidationError(exc.detail) from exc

    def clean_content_type(self) -> str | None:
        value = self.cleaned_data.get("content_type") or None
        if value is None:
            return None
        try:
            return content_type_clean(value)
        except EntryError as exc:
            raise forms.ValidationError(exc.detail) from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        try:
            services._own_identity()
        except services.CatalogError as exc:
            raise forms.ValidationError(exc.detail) from exc
        return data

    def validate_unique(self) -> None:  # versions of a path are rows of their own
        return


class ReplicaInline(admin.TabularInline):
    model = ContentReplica
    extra = 0
    can_delete = False
    readonly_fields = ("station_id", "callsign", "seen_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ContentEntry)
class ContentEntryAdmin(admin.ModelAdmin):
    list_display = ("origin_callsign", "path", "priority", "local_priority", "size",
                    "has_body", "is_current", "conflict", "deleted", "pinned", "modified")
    list_filter = ("priority", "local_priority", "is_current", "conflict", "has_body", "is_own",
                   "pinned", "deleted", "origin_callsign")
    search_fields = ("origin_callsign", "path", "entry_id", "content_hash")
    inlines = [ReplicaInline]
    actions = ["make_essential", "make_popular", "make_standard", "make_personal", "pin",
               "unpin", "evict", "reverify"]

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.inlines if obj is not None else []

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False,
                 **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ContentPublishForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["path", "priority", "content_type", "body"]
        return [*SIGNED_FIELDS, "local_priority", "pinned", *LOCAL_FIELDS, "open_link"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        return [*SIGNED_FIELDS, *LOCAL_FIELDS, "open_link"]

    @admin.display(description="open")
    def open_link(self, obj: ContentEntry) -> str:
        return format_html('<a href="{}?version={}">{}</a>', obj.url_path, obj.entry_id,
                           obj.url_path)

    def save_model(self, request: HttpRequest, obj: ContentEntry, form: Any,
                   change: bool) -> None:
        if change:
            # Only local fields are editable here; a local priority goes through the service.
            ContentEntry.objects.filter(pk=obj.pk).update(pinned=obj.pinned)
            if "local_priority" in form.changed_data:
                if obj.local_priority:
                    services.content_reprioritise(entry=obj, priority=obj.local_priority)
                else:
                    ContentEntry.objects.filter(pk=obj.pk).update(local_priority=None)
            return
        data = form.cleaned_data
        entry = services.content_publish(path=data["path"], chunks=data["body"].chunks(),
                                         priority=data["priority"],
                                         content_type=data.get("content_type"))
        obj.pk = entry.pk
        obj.__dict__.update({field: getattr(entry, field) for field in SIGNED_FIELDS})

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if change:
            super().save_related(request, form, formsets, change)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting publishes a tombstone: use the API or `manage.py publish`

    def _reprioritise(self, request: HttpRequest, queryset: QuerySet, priority: int) -> None:
        for entry in queryset:
            services.content_reprioritise(entry=entry, priority=priority)
        self.message_user(request, f"{queryset.count()} entries now priority {priority}.")

    @admin.action(description="Priority 1 essential (replicate everywhere)")
    def make_essential(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._reprioritise(request, queryset, Priority.ESSENTIAL)

    @admin.action(description="Priority 2 popular")
    def make_popular(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._reprioritise(request, queryset, Priority.POPULAR)

    @admin.action(description="Priority 3 standard")
    def make_standard(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._reprioritise(request, queryset, Priority.STANDARD)

    @admin.action(description="Priority 4 personal")
    def make_personal(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._reprioritise(request, queryset, Priority.PERSONAL)

    @admin.action(description="Pin (never evict)")
    def pin(self, request: HttpRequest, queryset: QuerySet) -> None:
        for entry in queryset:
            services.entry_pin(entry=entry, pinned=True)
        self.message_user(request, f"{queryset.count()} entries pinned.")

    @admin.action(description="Unpin")
    def unpin(self, request: HttpRequest, queryset: QuerySet) -> None:
        for entry in queryset:
            services.entry_pin(entry=entry, pinned=False)
        self.message_user(request, f"{queryset.count()} entries unpinned.")

    @admin.action(description="Evict the body (cache only)")
    def evict(self, request: HttpRequest, queryset: QuerySet) -> None:
        evicted = sum(1 for entry in queryset if services.entry_evict(entry=entry))
        kept = queryset.count() - evicted
        self.message_user(request, f"{evicted} bodies evicted; {kept} kept (own content, "
                                   "priority 1, pinned, or no body held).")

    @admin.action(description="Re-verify signature and body")
    def reverify(self, request: HttpRequest, queryset: QuerySet) -> None:
        for entry in queryset:
            ok, detail = services.entry_reverify(entry=entry)
            self.message_user(request, f"{entry}: {detail}",
                              messages.SUCCESS if ok else messages.ERROR)


@admin.register(OriginStation)
class OriginStationAdmin(admin.ModelAdmin):
    list_display = ("callsign", "station_id", "verified_at")
    search_fields = ("callsign", "station_id")
    readonly_fields = ("station_id", "callsign", "public_key", "credential", "verified_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(PeerPenalty)
class PeerPenaltyAdmin(admin.ModelAdmin):
    list_display = ("callsign", "station_id", "count", "last_reason", "last_at")
    readonly_fields = ("station_id", "callsign", "count", "last_reason", "last_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
