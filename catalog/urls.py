from __future__ import annotations

from django.urls import path, re_path

from catalog.api import ContentCatalogApi, ContentEntryApi
from catalog.views import content_index, content_serve, proxy_pac

urlpatterns = [
    path("api/content-catalog", ContentCatalogApi.as_view(), name="content-catalog"),
    re_path(r"^api/content-catalog/(?P<entry_id>[0-9a-fA-F]{1,64})$", ContentEntryApi.as_view(),
            name="content-entry"),
    path("proxy.pac", proxy_pac, name="proxy-pac"),
    re_path(r"^c/(?P<callsign>[^/]+)/$", content_index, name="content-index"),
    re_path(r"^c/(?P<callsign>[^/]+)/(?P<path>.+)$", content_serve, name="content"),
]
