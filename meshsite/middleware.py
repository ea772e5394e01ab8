"""One key=value access-log line per HTTP request (daphne's own access log is turned off)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

logger = logging.getLogger("meshsite.access")


class AccessLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.monotonic()
        response = self.get_response(request)
        logger.info("request", extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "ms": round(1000 * (time.monotonic() - started), 1),
            "client": request.META.get("REMOTE_ADDR", ""),
        })
        return response
