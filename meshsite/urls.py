"""Wiring: station-wide endpoints here, each app's own routes from its `urls.py`."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from meshsite import pages
from meshsite.api import HealthzApi, InfoApi, StatusApi

urlpatterns = [
    path("", pages.home_page, name="station-page"),
    path("claim", pages.claim_page, name="pwa-claim"),
    path("stations", pages.stations_page, name="pwa-stations"),
    path("content", pages.content_page, name="pwa-content"),
    path("talk", pages.talk_page, name="pwa-talk"),
    path("mail", pages.mail_page, name="pwa-mail"),
    path("get/", pages.get_page, name="get-station"),
    path("signin", pages.signin_page, name="pwa-signin"),
    path("signout", pages.signout_page, name="pwa-signout"),
    path("sw.js", pages.service_worker, name="pwa-sw"),
    path("manifest.webmanifest", pages.manifest, name="pwa-manifest"),
    path("admin/", admin.site.urls),
    path("healthz", HealthzApi.as_view(), name="healthz"),
    path("api/status", StatusApi.as_view(), name="api-status"),
    path("api/info", InfoApi.as_view(), name="api-info"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("certificates.urls")),
    path("", include("signaling.urls")),
    path("", include("mesh.urls")),
    path("", include("catalog.urls")),
]
