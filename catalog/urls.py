from __future__ import annotations

from django.urls import path, re_path

from catalog import index
from catalog.api import (
    ContentCatalogApi,
    ContentEntryApi,
    DownloadTokenApi,
    DownloadTokenNonceApi,
)
from catalog.views import content_index, content_serve, proxy_pac

urlpatterns = [
    path("api/content-catalog", ContentCatalogApi.as_view(), name="content-catalog"),
    re_path(r"^api/content-catalog/(?P<entry_id>[0-9a-fA-F]{1,64})$", ContentEntryApi.as_view(),
            name="content-entry"),
    path("api/download-token/nonce", DownloadTokenNonceApi.as_view(),
         name="download-token-nonce"),
    path("api/download-token", DownloadTokenApi.as_view(), name="download-token"),
    path("simple/", index.simple_root, name="simple-root"),
    re_path(r"^simple/(?P<project>[A-Za-z0-9._-]{1,200})/$", index.simple_project,
            name="simple-project"),
    re_path(r"^packages/(?P<filename>[A-Za-z0-9._+!-]{1,255})$", index.package_file,
            name="package-file"),
    path("get/meshsite-install.py", index.installer_script, name="installer"),
    path("get/release.json", index.release_document, name="release-document"),
    path("get/trust-roots.pem", index.trust_roots_pem, name="trust-roots"),
    path("proxy.pac", proxy_pac, name="proxy-pac"),
    re_path(r"^c/(?P<callsign>[^/]+)/$", content_index, name="content-index"),
    re_path(r"^c/(?P<callsign>[^/]+)/(?P<path>.+)$", content_serve, name="content"),
]
