"""Every API error is JSON `{"error": "<code>", "detail": "<human text>"}` (station-api.md)."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    """Raise from a view with a machine code and a human message."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, code: str, detail: str, status_code: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail=detail, code=code)
        self.error_code = code
        if status_code is not None:
            self.status_code = status_code
        self.extra_headers = headers or {}


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return "; ".join(_flatten(item) for item in detail)
    return str(detail)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ApiError):
        code = exc.error_code
        for key, value in exc.extra_headers.items():
            response[key] = value
    elif isinstance(exc, exceptions.ValidationError):
        code = "invalid"
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code = codes if isinstance(codes, str) else "error"
    response.data = {"error": code, "detail": _flatten(getattr(exc, "detail", str(exc)))}
    if isinstance(exc, exceptions.ValidationError):
        response.data["fields"] = exc.detail
    return response
