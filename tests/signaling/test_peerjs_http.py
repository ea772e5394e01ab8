"""The HTTP side of the PeerJS server protocol against a real daphne (specs/peerjs-protocol.md
section 1): the health document, fresh ids, the peer list with and without discovery, and CORS
as the anchor's `cors({origin: true})` or the configured origins."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest

from tests.signaling.conftest import module_daphne
from tests.signaling.stationdb import eventually
from tests.signaling.wsclient import peerjs

pytestmark = pytest.mark.integration

APP_JSON = {
    "name": "PeerJS Server",
    "description": "A server side element to broker connections between PeerJS clients.",
    "website": "https://peerjs.com/",
}

# Discovery on, CORS as the anchor (reflect any Origin).
open_station = module_daphne(MESHSITE_PEERJS_ALLOW_DISCOVERY="on")
# Discovery off (the default), CORS only for one origin.
closed_station = module_daphne(MESHSITE_PEERJS_CORS_ORIGINS="https://app.example")


def fetch(url: str, *, method: str = "GET",
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) for any status."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return (response.status, {k.lower(): v for k, v in response.headers.items()},
                    response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def test_root_answers_the_anchor_app_json(open_station):
    status, headers, body = fetch(open_station.url + "/peerjs/")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == APP_JSON


def test_id_is_a_fresh_uuid_as_text_html_every_time(open_station):
    ids = set()
    for _ in range(5):
        status, headers, body = fetch(open_station.url + "/peerjs/peerjs/id?ts=123&version=1.5.5")
        assert status == 200
        assert headers["content-type"] == "text/html; charset=utf-8"
        text = body.decode()
        assert str(uuid.UUID(text)) == text  # the bare id, no JSON, no newline
        ids.add(text)
    assert len(ids) == 5


def test_id_does_not_check_the_key_as_the_anchor(open_station, closed_station):
    for station in (open_station, closed_station):
        status, headers, body = fetch(station.url + "/peerjs/not-the-key/id")
        assert status == 200 and headers["content-type"].startswith("text/html")
        uuid.UUID(body.decode())


async def test_peers_lists_connected_ids_when_discovery_is_allowed(open_station):
    base = open_station.ws_url
    alice = await peerjs(base, "alice", "ta")
    await peerjs(base, "bob", "tb")

    def listed() -> list[str] | None:
        status, headers, body = fetch(open_station.url + "/peerjs/peerjs/peers?ts=1")
        assert status == 200 and headers["content-type"].startswith("application/json")
        ids = json.loads(body)
        return ids if ids == ["alice", "bob"] else None

    assert await eventually(listed, 5, "both ids listed") == ["alice", "bob"]
    # The anchor does not filter by key either.
    status, _, body = fetch(open_station.url + "/peerjs/other/peers")
    assert status == 200 and json.loads(body) == ["alice", "bob"]
    await alice.close()

    def bob_only() -> bool:
        return json.loads(fetch(open_station.url + "/peerjs/peerjs/peers")[2]) == ["bob"]

    await eventually(bob_only, 5, "alice gone from the list")


async def test_peers_is_401_unauthorized_without_discovery(closed_station):
    await peerjs(closed_station.ws_url, "alice", "ta")
    status, headers, body = fetch(closed_station.url + "/peerjs/peerjs/peers")
    assert status == 401
    assert body == b"Unauthorized"
    assert headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("path", ["/peerjs/", "/peerjs/peerjs/id", "/peerjs/peerjs/peers"])
def test_cors_reflects_any_origin_by_default(open_station, path):
    status, headers, _ = fetch(open_station.url + path,
                               headers={"Origin": "http://pwa.local:5173"})
    assert status == 200
    assert headers["access-control-allow-origin"] == "http://pwa.local:5173"
    assert headers["access-control-allow-credentials"] == "true"
    assert "Origin" in headers["vary"]
    # Without an Origin (same-origin or not a browser): no CORS grant.
    status, headers, _ = fetch(open_station.url + path)
    assert status == 200 and "access-control-allow-origin" not in headers


def test_cors_answers_on_errors_too(closed_station):
    status, headers, _ = fetch(closed_station.url + "/peerjs/peerjs/peers",
                               headers={"Origin": "https://app.example"})
    assert status == 401  # the browser can read the refusal
    assert headers["access-control-allow-origin"] == "https://app.example"


def test_preflight_options_is_204_with_methods_and_the_requested_headers(open_station):
    status, headers, body = fetch(
        open_station.url + "/peerjs/peerjs/id", method="OPTIONS",
        headers={"Origin": "https://pwa.example", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "content-type,x-peerjs"})
    assert status == 204 and body == b""
    assert headers["access-control-allow-origin"] == "https://pwa.example"
    assert headers["access-control-allow-credentials"] == "true"
    assert "GET" in headers["access-control-allow-methods"].split(",")
    assert headers["access-control-allow-headers"] == "content-type,x-peerjs"


def test_configured_cors_origins_reflect_only_those(closed_station):
    url = closed_station.url + "/peerjs/peerjs/id"
    status, headers, _ = fetch(url, headers={"Origin": "https://app.example"})
    assert status == 200 and headers["access-control-allow-origin"] == "https://app.example"
    status, headers, _ = fetch(url, headers={"Origin": "https://evil.example"})
    assert status == 200  # answered, but the browser will not hand it to that page
    assert "access-control-allow-origin" not in headers
    status, headers, _ = fetch(url, method="OPTIONS",
                               headers={"Origin": "https://evil.example",
                                        "Access-Control-Request-Method": "GET"})
    assert status == 204 and "access-control-allow-origin" not in headers
