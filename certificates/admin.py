"""The control plane for trust: certificates, blacklist, issued certificates, the station."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from certificates import services
from certificates.models import (
    BlacklistEntry,
    Certificate,
    CertificateState,
    IssuedCertificate,
    OwnerToken,
    Station,
)


def _pem_response(pems: list[str], filename: str) -> HttpResponse:
    response = HttpResponse("".join(pems), content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@admin.register(Certificate)
class CertificateAdmin(admin.ModelAdmin):
    list_display = ["callsign", "trust_level", "state", "license_class", "can_issue",
                    "not_after", "short_fingerprint", "source"]
    list_filter = ["trust_level", "state", "source", "can_issue", "callsign"]
    search_fields = ["callsign", "fingerprint", "subject", "issuer"]
    readonly_fields = ["fingerprint", "serial", "subject", "issuer", "callsign", "license_class",
                       "can_issue", "is_ca", "not_before", "not_after", "qso_not_before",
                       "qso_not_after", "dxcc", "pem", "issuer_certificate", "source",
                       "created_at", "updated_at", "pem_download"]
    fields = ["pem_download", "trust_level", "state", *readonly_fields[:-1]]
    actions = ["trust", "blacklist", "lift_blacklist", "download_pem"]

    @admin.display(description="fingerprint")
    def short_fingerprint(self, obj: Certificate) -> str:
        return obj.fingerprint[:16] + "…"

    @admin.display(description="PEM")
    def pem_download(self, obj: Certificate) -> str:
        if not obj.pk:
            return "-"
        url = reverse("admin:certificates_certificate_pem", args=[obj.pk])
        return format_html('<a href="{}">download {}.pem</a>', url, obj.fingerprint[:16])

    def get_urls(self) -> list:
        return [path("<int:pk>/pem/", self.admin_site.admin_view(self.pem_view),
                     name="certificates_certificate_pem"), *super().get_urls()]

    def pem_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        row = get_object_or_404(Certificate, pk=pk)
        return _pem_response([row.pem], f"{row.callsign or 'certificate'}-{row.fingerprint[:16]}"
                             ".pem")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # added through trustroot / the API, which validate the chain

    @admin.action(description="Trust selected certificates")
    def trust(self, request: HttpRequest, queryset: QuerySet[Certificate]) -> None:
        count = sum(services.certificate_trust(fingerprint=row.fingerprint) for row in queryset)
        self.message_user(request, f"{count} certificate(s) trusted.", messages.SUCCESS)

    @admin.action(description="Blacklist selected certificates")
    def blacklist(self, request: HttpRequest, queryset: QuerySet[Certificate]) -> None:
        for row in queryset:
            services.certificate_blacklist(fingerprint=row.fingerprint,
                                           reason="blacklisted in the admin",
                                           created_by=request.user.get_username(),
                                           source="admin")
        self.message_user(request, f"{queryset.count()} certificate(s) blacklisted.",
                          messages.WARNING)

    @admin.action(description="Lift blacklisting of selected certificates")
    def lift_blacklist(self, request: HttpRequest, queryset: QuerySet[Certificate]) -> None:
        for row in queryset.filter(state=CertificateState.BLACKLISTED):
            services.blacklist_lift(fingerprint=row.fingerprint,
                                    lifted_by=request.user.get_username())
        self.message_user(request, "Blacklisting lifted.", messages.SUCCESS)

    @admin.action(description="Download selected as PEM")
    def download_pem(self, request: HttpRequest, queryset: QuerySet[Certificate]) -> HttpResponse:
        return _pem_response([row.pem for row in queryset], "certificates.pem")


@admin.register(BlacklistEntry)
class BlacklistEntryAdmin(admin.ModelAdmin):
    list_display = ["fingerprint", "reason", "effective", "source", "created_by", "created_at",
                    "lifted_at"]
    list_filter = ["effective", "source", ("lifted_at", admin.EmptyFieldListFilter)]
    search_fields = ["fingerprint", "reason", "created_by", "signed_by_station"]
    readonly_fields = ["signed_by_station", "signature", "created_at", "lifted_at", "lifted_by"]
    actions = ["lift"]

    @admin.action(description="Lift selected entries")
    def lift(self, request: HttpRequest, queryset: QuerySet[BlacklistEntry]) -> None:
        for entry in queryset:
            services.blacklist_lift(fingerprint=entry.fingerprint,
                                    lifted_by=request.user.get_username())
        self.message_user(request, "Lifted.", messages.SUCCESS)


@admin.register(IssuedCertificate)
class IssuedCertificateAdmin(admin.ModelAdmin):
    list_display = ["callsign", "serial", "license_class", "can_issue", "not_after",
                    "requested_by", "created_at"]
    list_filter = ["can_issue", "license_class", "callsign"]
    search_fields = ["callsign", "serial", "fingerprint", "proof_fingerprint"]
    actions = ["download_pem"]

    def get_readonly_fields(self, request: HttpRequest, obj: IssuedCertificate | None = None):
        return [field.name for field in IssuedCertificate._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Download selected as PEM")
    def download_pem(self, request: HttpRequest,
                     queryset: QuerySet[IssuedCertificate]) -> HttpResponse:
        return _pem_response([row.pem for row in queryset], "issued.pem")


@admin.register(Station)
class StationAdmin(admin.ModelAdmin):
    list_display = ["station_id", "state", "owner_callsign", "claimed_at", "ca_fingerprint"]

    def get_readonly_fields(self, request: HttpRequest, obj: Station | None = None):
        return [field.name for field in Station._meta.fields if field.name != "metadata"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Station | None = None) -> bool:
        return False


@admin.register(OwnerToken)
class OwnerTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "callsign", "label", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["key_hash", "prefix", "callsign", "label", "created_at", "last_used_at",
                       "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens come from the claim or `claimstation --rotate-token`

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[OwnerToken]) -> None:
        for token in queryset:
            OwnerToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
                revoked_at=services.timezone.now())
        self.message_user(request, "Revoked.", messages.SUCCESS)
