"""One key=value access-log line per HTTP request (daphne's own access log is turned off)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger("meshsite.access")


class SyncAndAsyncMiddleware:
    """Base for middleware that runs in whichever mode the chain is in: under daphne it stays
    on the event loop, so a request does not hop threads for it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)


class AccessLogMiddleware(SyncAndAsyncMiddleware):
    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        started = time.monotonic()
        response = self.get_response(request)
        _log(request, response, started)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        started = time.monotonic()
        response = await self.get_response(request)
        _log(request, response, started)
        return response


def _log(request: HttpRequest, response: HttpResponse, started: float) -> None:
    logger.info("request", extra={
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "ms": round(1000 * (time.monotonic() - started), 1),
        "client": request.META.get("REMOTE_ADDR", ""),
    })


class StaticFilesMiddleware(SyncAndAsyncMiddleware):
    """Static files through WhiteNoise, which is sync only: in the chain itself it would force
    every request under daphne through extra thread hops (a third of the CPU of serving
    content). Here only requests under STATIC_URL leave the event loop."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        from whitenoise.middleware import WhiteNoiseMiddleware

        self.whitenoise = WhiteNoiseMiddleware(get_response=None)

    def _static(self, request: HttpRequest) -> HttpResponse | None:
        files = self.whitenoise
        found = (files.find_file(request.path_info) if files.autorefresh
                 else files.files.get(request.path_info))
        return files.serve(found, request) if found is not None else None

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        return self._static(request) or self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> Any:
        if request.path_info.startswith(settings.STATIC_URL):
            response = await sync_to_async(self._static)(request)  # stat and open the file
            if response is not None:
                return response
        return await self.get_response(request)
