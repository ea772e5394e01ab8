from __future__ import annotations

import pytest

from meshsite.redisconn import get_redis
from meshsite.tasks import HEARTBEAT_KEY, heartbeat

pytestmark = pytest.mark.django_db


def test_status_reports_contract_fields(client):
    body = client.get("/api/status").json()
    assert body["state"] == "unclaimed"
    assert body["owner"] is None
    assert "+" in body["version"]
    assert body["endpoint"] == "http://testserver"
    assert body["signaling"] == {"url": "ws://testserver/ws/signal", "connected": 0}
    assert isinstance(body["uptime"], int)
    assert body["networkMode"] in {"online", "offline", "degraded", "unknown"}


def test_info_reports_type_and_signaling_url(client):
    body = client.get("/api/info").json()
    assert body["type"] == "meshsite-station"
    assert body["signalingUrl"] == "ws://testserver/ws/signal"


def test_healthz_names_missing_worker_then_recovers(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["worker"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    heartbeat()
    assert get_redis().get(HEARTBEAT_KEY) is not None
    assert client.get("/healthz").status_code == 200


def test_healthz_reports_stale_heartbeat(client, settings):
    get_redis().set(HEARTBEAT_KEY, "1000.0")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "ago" in response.json()["checks"]["worker"]["detail"]


def test_station_page_renders_qr_and_state(client):
    html = client.get("/").content.decode()
    assert "Unclaimed station" in html
    assert "<svg" in html
    assert "/ws/signal" in html


def test_schema_and_docs_served_without_cdn(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/status" in schema.content
    docs = client.get("/api/docs/").content.decode()
    assert "cdn" not in docs.lower()
    assert "swagger-ui" in docs
