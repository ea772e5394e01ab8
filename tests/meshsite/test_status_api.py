from __future__ import annotations

import time

import pytest

from mesh.daemon import DAEMON_KEY
from meshsite.health import parts_record
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


def _meshd_beats(at: float | None = None) -> None:
    get_redis().set(DAEMON_KEY, str(at or time.time()), ex=5)


def test_healthz_names_missing_worker_then_recovers(client):
    _meshd_beats()
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["worker"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["web"]["ok"] is True
    heartbeat()
    assert get_redis().get(HEARTBEAT_KEY) is not None
    assert client.get("/healthz").status_code == 200


def test_healthz_reports_stale_heartbeat(client, settings):
    get_redis().set(HEARTBEAT_KEY, "1000.0")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "ago" in response.json()["checks"]["worker"]["detail"]


def test_healthz_and_status_name_meshd_without_its_heartbeat(client):
    heartbeat()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["meshd"]
    assert "mesh daemon" in response.json()["checks"]["meshd"]["detail"]
    parts = client.get("/api/status").json()["parts"]
    assert set(parts) == {"database", "redis", "web", "worker", "meshd"}
    assert parts["meshd"]["ok"] is False and parts["worker"]["ok"] is True
    _meshd_beats()
    assert client.get("/healthz").status_code == 200


def test_a_part_the_supervisor_saw_die_fails_before_its_heartbeat_expires(client):
    heartbeat()
    _meshd_beats()
    now = time.time()
    parts_record({"mesh": {"state": "exited", "pid": 42, "since": now,
                           "detail": "exited with code -9; restarting in 1s"}})
    body = client.get("/healthz").json()
    assert body["failed"] == ["meshd"]
    assert "(pid 42) exited with code -9" in body["checks"]["meshd"]["detail"]
    # Restarted, but the heartbeat still in Redis is the dead one's.
    parts_record({"mesh": {"state": "running", "pid": 43, "since": now + 1, "detail": "started"}})
    body = client.get("/healthz").json()
    assert body["failed"] == ["meshd"]
    assert "has not sent a heartbeat since" in body["checks"]["meshd"]["detail"]
    _meshd_beats(now + 2)
    assert client.get("/healthz").status_code == 200


def test_healthz_states_the_network_mode_without_failing_on_it(client):
    heartbeat()
    _meshd_beats()
    get_redis().set("meshsite:mesh:network-mode", '{"mode": "offline"}')
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["networkMode"] == "offline"
    assert "network" not in response.json()["checks"]


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
