"""Probes and the network mode rule; bad targets are named."""

from __future__ import annotations

import asyncio
import socket

import pytest

from mesh import probe


@pytest.mark.parametrize("text, kind, host, port, path", [
    ("http://example.test/health", "http", "example.test", 80, "/health"),
    ("https://10.0.0.1:8443", "https", "10.0.0.1", 8443, "/"),
    ("10.0.0.1:53", "tcp", "10.0.0.1", 53, "/"),
    ("[::1]:80", "tcp", "::1", 80, "/"),
])
def test_parse_target(text, kind, host, port, path):
    target = probe.parse_target(text)
    assert (target.kind, target.host, target.port, target.path) == (kind, host, port, path)


@pytest.mark.parametrize("text", ["ftp://x", "nohost", "host:0", "host:99999", "http://",
                                  ":80", "http://x:abc/"])
def test_bad_targets_are_refused_with_the_reason(text):
    with pytest.raises(ValueError) as err:
        probe.parse_target(text)
    assert text in str(err.value) or "port" in str(err.value)


def test_network_mode_rule():
    assert probe.network_mode([], 0, 2, "online") == "unknown"
    assert probe.network_mode([True, True], 0, 2, "offline") == "online"
    assert probe.network_mode([True, False], 0, 2, "online") == "degraded"
    # one failed round is not enough to declare the internet gone
    assert probe.network_mode([False], 1, 2, "online") == "online"
    assert probe.network_mode([False], 2, 2, "online") == "offline"


async def test_tcp_probe_against_a_real_listener_and_a_closed_port():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        ok = await probe.tcp_probe("127.0.0.1", port, 1)
    assert ok.ok and ok.rtt is not None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    down = await probe.tcp_probe("127.0.0.1", closed, 1)
    assert not down.ok and "127.0.0.1" in down.detail


async def test_http_probe_reads_status_and_json():
    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"stationId": "abc"}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await probe.http_get(f"http://127.0.0.1:{port}/api/mesh/ping", 2)
    assert result.ok and result.body == {"stationId": "abc"}


async def test_http_probe_times_out_on_a_silent_server():
    async def silent(reader, writer):
        await asyncio.sleep(5)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await probe.http_get(f"http://127.0.0.1:{port}/", 0.3)
        assert loop.time() - started < 2
    assert not result.ok
