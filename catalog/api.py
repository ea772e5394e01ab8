"""The catalog API: `/api/content-catalog` (list, publish) and `/api/content-catalog/<id>`
(detail with replicas and versions; DELETE publishes a tombstone)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiRequest, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import releases, selectors, services
from catalog.blobstore import CHUNK
from catalog.entries import EntryError, callsign_clean
from catalog.serializers import (
    ContentCatalogSerializer,
    ContentEntryDetailSerializer,
    ContentEntrySerializer,
    ContentPublishMultipartSerializer,
    DownloadTokenNonceSerializer,
    DownloadTokenRequestSerializer,
    DownloadTokenResponseSerializer,
)
from certificates.auth import IsStationOwner, OwnerTokenAuthentication
from meshsite.api_errors import ApiError
from meshsite.serializers import ErrorResponseSerializer

MULTIPART_SLACK = 64 * 1024


class RawBodyParser(BaseParser):
    """Any other media type: the body is the content, read by the view as a stream."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: dict | None = None) -> dict:
        return {}


class ContentCatalogPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "pageSize"
    max_page_size = 500


def _raise(exc: services.CatalogError | EntryError) -> None:
    status_code = getattr(exc, "status", 400)
    raise ApiError(exc.code, exc.detail, status_code=status_code) from exc


def _station() -> tuple[str, str | None]:
    from certificates.selectors import station_get

    station = station_get()
    return station.station_id, station.owner_callsign or None


ERRORS = {
    400: OpenApiResponse(ErrorResponseSerializer, description="Bad path, priority, type."),
    401: OpenApiResponse(ErrorResponseSerializer, description="No or unknown owner token."),
    403: OpenApiResponse(ErrorResponseSerializer, description="Not the station owner."),
    409: OpenApiResponse(ErrorResponseSerializer, description="The station is not claimed."),
    413: OpenApiResponse(ErrorResponseSerializer, description="Body over the size limit."),
}


class ContentCatalogApi(APIView):
    """GET: the catalog. POST: publish (owner)."""

    authentication_classes = [OwnerTokenAuthentication, SessionAuthentication]
    parser_classes = [MultiPartParser, RawBodyParser]

    def get_permissions(self) -> list[Any]:
        return [IsStationOwner()] if self.request.method == "POST" else []

    @extend_schema(
        operation_id="content_catalog_list",
        parameters=[
            OpenApiParameter("origin", str, description="Only this origin callsign."),
            OpenApiParameter("priority", int, enum=[1, 2, 3, 4]),
            OpenApiParameter("versions", bool, description="Every version, not just the "
                                                           "current one of each path."),
            OpenApiParameter("conflicts", bool, description="Only paths in conflict."),
            OpenApiParameter("page", int), OpenApiParameter("pageSize", int),
        ],
        responses={200: ContentCatalogSerializer,
                   400: OpenApiResponse(ErrorResponseSerializer, description="Bad filter."),
                   404: OpenApiResponse(ErrorResponseSerializer, description="No such page.")},
    )
    def get(self, request: Request) -> Response:
        origin = request.query_params.get("origin")
        priority = request.query_params.get("priority")
        try:
            origin = callsign_clean(origin) if origin else None
            priority_value = int(priority) if priority else None
        except EntryError as exc:
            raise ApiError(exc.code, exc.detail) from exc
        except ValueError as exc:
            raise ApiError("bad_priority", "priority is 1, 2, 3 or 4") from exc
        if priority_value is not None and not 1 <= priority_value <= 4:
            raise ApiError("bad_priority", "priority is 1, 2, 3 or 4")
        if request.query_params.get("versions") in ("1", "true", "yes"):
            rows = selectors.entries_all()
            if origin:
                rows = rows.filter(origin_callsign=origin)
            if priority_value:
                rows = rows.filter(priority=priority_value)
        else:
            rows = selectors.entries_current(origin=origin, priority=priority_value)
        if request.query_params.get("conflicts") in ("1", "true", "yes"):
            rows = rows.filter(conflict=True)
        paginator = ContentCatalogPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        server_id, callsign = _station()
        data = {"serverId": server_id, "callsign": callsign, **selectors.catalog_summary(rows),
                "count": paginator.page.paginator.count, "next": paginator.get_next_link(),
                "previous": paginator.get_previous_link(),
                "entries": ContentEntrySerializer(page, many=True).data}
        return Response(data)

    @extend_schema(
        operation_id="content_publish",
        request={"multipart/form-data": ContentPublishMultipartSerializer,
                 "*/*": OpenApiRequest(OpenApiTypes.BINARY)},
        parameters=[
            OpenApiParameter("path", str, description="Raw body only: the content path."),
            OpenApiParameter("priority", int, enum=[1, 2, 3, 4],
                             description="Raw body only: 1 essential .. 4 personal."),
        ],
        responses={201: ContentEntryDetailSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        max_size = settings.CATALOG_MAX_ENTRY_SIZE
        declared = request.META.get("CONTENT_LENGTH") or "0"
        multipart = request.content_type.startswith("multipart/form-data")
        try:
            declared_size = int(declared)
        except ValueError:
            declared_size = 0
        if declared_size > max_size + (MULTIPART_SLACK if multipart else 0):
            raise ApiError("too_large", f"the body has {declared_size} bytes; an entry may have "
                                        f"at most {max_size}", status_code=413)
        try:
            if multipart:
                entry = self._publish_multipart(request)
            else:
                raw = request._request  # the Django request: read the body as a stream

                def chunks() -> Any:
                    while True:
                        chunk = raw.read(CHUNK)
                        if not chunk:
                            return
                        yield chunk

                entry = services.content_publish(
                    path=request.query_params.get("path", ""),
                    priority=request.query_params.get("priority", ""),
                    content_type=request.content_type.strip() or None, chunks=chunks())
        except (services.CatalogError, EntryError) as exc:
            _raise(exc)
        return Response(ContentEntryDetailSerializer(entry).data, status=status.HTTP_201_CREATED)

    def _publish_multipart(self, request: Request) -> Any:
        upload = request.FILES.get("file")
        if upload is None:
            raise ApiError("missing_file", "send the body in a multipart part named 'file'")
        if upload.size > settings.CATALOG_MAX_ENTRY_SIZE:
            raise ApiError("too_large", f"the file has {upload.size} bytes; an entry may have "
                                        f"at most {settings.CATALOG_MAX_ENTRY_SIZE}",
                           status_code=413)
        content_type = request.data.get("contentType") or upload.content_type
        return services.content_publish(path=request.data.get("path", ""),
                                        priority=request.data.get("priority", ""),
                                        content_type=content_type, chunks=upload.chunks(CHUNK))


class ContentEntryApi(APIView):
    """GET: one version with replicas and the other versions of its path. DELETE (owner):
    publish a tombstone for that path."""

    authentication_classes = [OwnerTokenAuthentication, SessionAuthentication]

    def get_permissions(self) -> list[Any]:
        return [IsStationOwner()] if self.request.method == "DELETE" else []

    def _entry(self, entry_id: str) -> Any:
        entry = selectors.entry_by_id(entry_id.lower())
        if entry is None:
            raise ApiError("not_found", f"no entry {entry_id[:64]!r} in this catalog",
                           status_code=404)
        return entry

    @extend_schema(operation_id="content_entry_get",
                   responses={200: ContentEntryDetailSerializer,
                              404: OpenApiResponse(ErrorResponseSerializer,
                                                   description="Unknown entry id.")})
    def get(self, request: Request, entry_id: str) -> Response:
        return Response(ContentEntryDetailSerializer(self._entry(entry_id)).data)

    @extend_schema(operation_id="content_entry_delete",
                   responses={201: ContentEntryDetailSerializer,
                              401: ERRORS[401], 403: ERRORS[403], 409: ERRORS[409],
                              404: OpenApiResponse(ErrorResponseSerializer,
                                                   description="Unknown entry, or nothing "
                                                               "to delete at its path.")})
    def delete(self, request: Request, entry_id: str) -> Response:
        entry = self._entry(entry_id)
        if not entry.is_own:
            raise ApiError("not_own", "only the origin station deletes its content",
                           status_code=403)
        try:
            tombstone = services.content_delete(path=entry.path)
        except services.CatalogError as exc:
            _raise(exc)
        return Response(ContentEntryDetailSerializer(tombstone).data,
                        status=status.HTTP_201_CREATED)


# --- download tokens (the package index's licence check) --------------------------------------


class DownloadTokenBaseApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def handle_exception(self, exc: Exception) -> Response:
        from certificates.errors import CertificateError

        if isinstance(exc, CertificateError):
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
            exc = ApiError(exc.code, exc.detail, status_code=exc.http_status(), headers=headers)
        return super().handle_exception(exc)


TOKEN_ERRORS = {
    400: OpenApiResponse(ErrorResponseSerializer, description="A certificate error of the "
                         "claim (malformed, untrusted_root, expired, blacklisted, bad_proof, "
                         "bad_nonce, ...)."),
    429: OpenApiResponse(ErrorResponseSerializer, description="Rate limited; see Retry-After."),
}


class DownloadTokenNonceApi(DownloadTokenBaseApi):
    @extend_schema(request=None, responses={200: DownloadTokenNonceSerializer,
                                            429: TOKEN_ERRORS[429]},
                   summary="A single-use nonce for a download-token proof", tags=["releases"])
    def post(self, request: Request) -> Response:
        import base64

        from certificates.selectors import station_get
        from certificates.services import nonce_issue

        releases.download_rate_check(address=request.META.get("REMOTE_ADDR", ""))
        nonce = nonce_issue(purpose=releases.NONCE_PURPOSE)
        station_id = station_get().station_id
        message = releases.download_token_message(station_id=station_id, nonce=nonce)
        return Response({"nonce": nonce, "stationId": station_id,
                         "message": base64.b64encode(message).decode("ascii"),
                         "expiresIn": settings.MESHSITE_NONCE_TTL})


class DownloadTokenApi(DownloadTokenBaseApi):
    @extend_schema(request=DownloadTokenRequestSerializer,
                   responses={201: DownloadTokenResponseSerializer, **TOKEN_ERRORS},
                   summary="A download token for the package index, from a license proof",
                   tags=["releases"])
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ApiError("invalid", "The request body must be a JSON object.")
        serializer = DownloadTokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        releases.download_rate_check(address=request.META.get("REMOTE_ADDR", ""))
        issued = releases.download_token_issue(certificate=data["certificate"],
                                               chain=data["chain"], nonce=data["nonce"],
                                               signature=data["signature"])
        return Response({"callsign": issued.callsign, "token": issued.token,
                         "expires": issued.expires}, status=status.HTTP_201_CREATED)
