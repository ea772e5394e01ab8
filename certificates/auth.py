"""Owner authentication for the API: `Authorization: Bearer <owner token>`.

Tokens come from the claim (or `manage.py claimstation --rotate-token`); only their SHA-256 is
stored. A logged-in superuser (admin session) counts as the owner too.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from certificates.models import OwnerToken


class OwnerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer mso_...`: the station owner."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, OwnerToken] | None:
        from certificates.services import owner_token_authenticate

        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send 'Authorization: Bearer <owner token>'.")
        row = owner_token_authenticate(parts[1])
        if row is None:
            raise exceptions.AuthenticationFailed(
                "The owner token is unknown, revoked or belongs to a previous owner.")
        user = get_user_model().objects.filter(username=row.callsign, is_active=True).first()
        if user is None:
            raise exceptions.AuthenticationFailed("The owner's account is missing or inactive.")
        return user, row

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class IsStationOwner(permissions.BasePermission):
    """The owner's bearer token, or an admin session of a superuser."""

    message = "Only the station owner may do this: send 'Authorization: Bearer <owner token>'."

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, OwnerToken):
            return True
        user = request.user
        return bool(user and user.is_authenticated and user.is_superuser)


class OwnerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "certificates.auth.OwnerTokenAuthentication"
    name = "ownerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer",
                "description": "The owner access token returned by POST /api/claim-station."}
