"""The mailbox API (docs/mailbox.md): thin views over `signaling.mailbox` and, for operators
homed on another station, `signaling.mailbox_mesh`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from meshsite.serializers import ErrorResponseSerializer
from signaling import mailbox, mailbox_mesh, selectors
from signaling.mailbox import MailboxError
from signaling.models import MailboxDevice
from signaling.serializers import (
    MailboxBundleSerializer,
    MailboxDeviceRequestSerializer,
    MailboxDeviceResponseSerializer,
    MailboxKeysRequestSerializer,
    MailboxKeysResponseSerializer,
    MailboxMismatchSerializer,
    MailboxNonceResponseSerializer,
    MailboxSendRequestSerializer,
    MailboxSendResponseSerializer,
    MailboxStaleSerializer,
)


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorResponseSerializer, description=description)


E400 = _error("Invalid input: `detail` names the field (invalid, bad_nonce, a certificate code).")
E401 = _error("Missing or unknown device token.")
E403 = _error("Refused (too_many_devices).")
E404 = _error("No such operator or device here, and no home station known for them elsewhere.")
E413 = _error("An envelope's content is over 96 KiB (too_large).")
E415 = _error("The body is not JSON (send Content-Type: application/json).")
E422 = _error("A signature does not verify (bad_proof: the license key's; bad_signature: the "
              "signed prekey's XEdDSA).")
E429 = _error("Rate limited; see the Retry-After header.")
E502 = _error("The operator's home station refused or could not be reached through the mesh.")
E503 = _error("No LAN/IP route to the operator's home station (no_lan_route).")


class DeviceTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer mbx_...`: a mailbox device."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, MailboxDevice] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() != "bearer":
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send 'Authorization: Bearer <device token>'.")
        device = mailbox.device_authenticate(header[1])
        if device is None:
            raise exceptions.AuthenticationFailed(
                "The device token is unknown (or its device was replaced): register again.")
        return None, device

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "signaling.api.DeviceTokenAuthentication"
    name = "deviceToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer",
                "description": "A mailbox device token from POST /api/mailbox/devices."}


class IsDevice(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        if not isinstance(request.auth, MailboxDevice):
            raise exceptions.NotAuthenticated("A device token is required: "
                                              "'Authorization: Bearer <device token>'.")
        return True


class MailboxApiView(APIView):
    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsDevice]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, MailboxError):
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
            return Response({"error": exc.code, "detail": exc.detail, **exc.extra},
                            status=exc.status, headers=headers)
        return super().handle_exception(exc)


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise MailboxError("invalid", "The request body must be a JSON object.")
    return request.data


def _remote(request: Request) -> str:
    return str(request.META.get("REMOTE_ADDR") or "?")


class MailboxDeviceNonceApi(MailboxApiView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(request=None, responses={200: MailboxNonceResponseSerializer, 429: E429},
                   summary="A single-use nonce to register a mailbox device", tags=["mailbox"])
    def post(self, request: Request) -> Response:
        mailbox.rate_take("nonce", _remote(request), settings.MAILBOX_REGISTER_RATE,
                          "device nonces")
        return Response(mailbox.device_nonce_issue())


class MailboxDeviceRegisterApi(MailboxApiView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(request=MailboxDeviceRequestSerializer,
                   responses={201: MailboxDeviceResponseSerializer, 400: E400, 403: E403,
                              415: E415, 422: E422},
                   summary="Register a device by license proof", tags=["mailbox"])
    def post(self, request: Request) -> Response:
        data = _body(request)
        result = mailbox.device_register(
            certificate=data.get("certificate"), chain=data.get("chain"),
            nonce=data.get("nonce"), signature=data.get("signature"),
            identity_key=data.get("identityKey"), signed_prekey=data.get("signedPreKey"),
            registration_id=data.get("registrationId"),
            one_time_prekeys=data.get("oneTimePreKeys"))
        return Response({"callsign": result.callsign, "deviceId": result.device_id,
                         "token": result.token}, status=201)


def _keys_answer(count: int) -> Response:
    return Response({"oneTimePreKeyCount": count, "low": count <= settings.MAILBOX_LOW_PREKEYS})


class MailboxKeysApi(MailboxApiView):
    @extend_schema(responses={200: MailboxKeysResponseSerializer, 401: E401},
                   summary="How many one-time prekeys this device has left", tags=["mailbox"])
    def get(self, request: Request) -> Response:
        return _keys_answer(selectors.mailbox_prekey_count(device_pk=request.auth.pk))

    @extend_schema(request=MailboxKeysRequestSerializer,
                   responses={200: MailboxKeysResponseSerializer, 400: E400, 401: E401,
                              415: E415, 422: E422},
                   summary="Upload a signed prekey and/or one-time prekeys", tags=["mailbox"])
    def put(self, request: Request) -> Response:
        data = _body(request)
        return _keys_answer(mailbox.keys_update(device=request.auth,
                                                signed_prekey=data.get("signedPreKey"),
                                                one_time_prekeys=data.get("oneTimePreKeys")))


class MailboxBundleApi(MailboxApiView):
    @extend_schema(responses={200: MailboxBundleSerializer, 400: E400, 401: E401, 404: E404,
                              429: E429, 502: E502, 503: E503},
                   summary="Take an operator's prekey bundle (one one-time prekey per device)",
                   tags=["mailbox"], operation_id="mailbox_bundle_take")
    def get(self, request: Request, callsign: str, device: str) -> Response:
        requester = f"{request.auth.operator.callsign}.{request.auth.device_id}"
        return Response(mailbox_mesh.bundle_take(callsign=callsign, device=device,
                                                 requester=requester))


class MailboxMessagesApi(MailboxApiView):
    @extend_schema(request=MailboxSendRequestSerializer,
                   responses={200: MailboxSendResponseSerializer,
                              202: MailboxSendResponseSerializer, 400: E400, 401: E401,
                              404: E404, 409: MailboxMismatchSerializer,
                              410: MailboxStaleSerializer, 413: E413, 415: E415, 429: E429,
                              502: E502, 503: E503},
                   summary="Send envelopes to every device of an operator", tags=["mailbox"])
    def put(self, request: Request, callsign: str) -> Response:
        data = _body(request)
        device = request.auth
        mailbox.rate_take("send", f"{device.operator.callsign}.{device.device_id}",
                          settings.MAILBOX_SEND_RATE, "message batches")
        envelopes, timestamp = mailbox.envelopes_parse(data.get("messages"),
                                                       data.get("timestamp"))
        wait = data.get("waitForRoute", False)
        if not isinstance(wait, bool):
            raise MailboxError("invalid", "waitForRoute: true or false")
        result = mailbox_mesh.messages_send(
            callsign=callsign, envelopes=envelopes, timestamp=timestamp,
            source=device.operator.callsign, source_device=device.device_id, wait=wait)
        status = 202 if result.get("forwarded") == "queued" else 200
        return Response(result, status=status)
