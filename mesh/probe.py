"""Small asyncio probes: an HTTP GET and a TCP connect, with a timeout and a measured round trip.

Used for peer liveness (GET a peer's `/api/mesh/ping`) and for the connectivity monitor (the
operator's targets). No Django imports, no third-party HTTP client: a probe must be cheap and
must never hang past its timeout.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_BODY = 256 * 1024


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    rtt: float | None
    detail: str
    body: Any = None


@dataclass(frozen=True)
class Target:
    """A probe target: `http(s)://host[:port]/path` or `host:port` (TCP connect)."""

    kind: str  # "http" | "https" | "tcp"
    host: str
    port: int
    path: str = "/"

    @property
    def label(self) -> str:
        if self.kind == "tcp":
            return f"{self.host}:{self.port}"
        return f"{self.kind}://{self.host}:{self.port}{self.path}"


def parse_target(text: str) -> Target:
    """Parse a target; raise ValueError saying what is wrong."""
    text = text.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{text!r}: only http:// and https:// URLs or host:port are accepted")
        if not parts.hostname:
            raise ValueError(f"{text!r}: the URL has no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ValueError(f"{text!r}: bad port") from exc
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return Target(parts.scheme, parts.hostname, port, path)
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: expected host:port (port 1 to 65535) or an http(s) URL")
    return Target("tcp", host, int(port_text))


async def tcp_probe(host: str, port: int, timeout: float) -> ProbeResult:
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(host, port)
        writer.close()
    except (OSError, TimeoutError) as exc:
        return ProbeResult(False, None, f"tcp {host}:{port}: {exc or 'timed out'}")
    return ProbeResult(True, time.monotonic() - started, f"tcp {host}:{port} connected")


async def http_get(url: str, timeout: float) -> ProbeResult:
    """GET `url`; ok when the status is 2xx or 3xx; `body` is the parsed JSON when it is JSON."""
    try:
        target = parse_target(url)
    except ValueError as exc:
        return ProbeResult(False, None, str(exc))
    if target.kind == "tcp":
        return ProbeResult(False, None, f"{url!r} is not a URL")
    started = time.monotonic()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                target.host, target.port, ssl=target.kind == "https" or None)
            host = f"[{target.host}]" if ":" in target.host else target.host
            writer.write(
                f"GET {target.path} HTTP/1.1\r\nHost: {host}:{target.port}\r\n"
                "User-Agent: meshsite-probe\r\nAccept: application/json\r\n"
                "Connection: close\r\n\r\n".encode("ascii", "replace"))
            await writer.drain()
            status_line = await reader.readline()
            headers: dict[str, str] = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            body = await reader.readexactly(min(length, MAX_BODY)) if length else b""
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
        return ProbeResult(False, None, f"GET {target.label}: {exc or 'timed out'}")
    finally:
        if writer is not None:
            writer.close()
    rtt = time.monotonic() - started
    parts = status_line.decode("latin-1").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return ProbeResult(False, rtt, f"GET {target.label}: not an HTTP answer")
    status = int(parts[1])
    parsed = None
    if headers.get("content-type", "").startswith("application/json"):
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
    return ProbeResult(200 <= status < 400, rtt, f"GET {target.label}: HTTP {status}", parsed)


async def probe_target(target: Target, timeout: float) -> ProbeResult:
    if target.kind == "tcp":
        return await tcp_probe(target.host, target.port, timeout)
    return await http_get(f"{target.kind}://{target.host}:{target.port}{target.path}", timeout)


def network_mode(results: list[bool], failures_in_row: int, failures_needed: int,
                 previous: str) -> str:
    """online (every target answered), degraded (some did), offline (none did, for
    `failures_needed` checks in a row), unknown (no targets configured)."""
    if not results:
        return "unknown"
    if all(results):
        return "online"
    if any(results):
        return "degraded"
    if failures_in_row >= failures_needed:
        return "offline"
    return previous if previous != "unknown" else "degraded"


_RTF_UP = 0x0001
_RTF_REJECT = 0x0200


def default_route_present(ipv4_table: str, ipv6_table: str) -> bool:
    """True when the routing tables (the text of Linux's /proc/net/route and
    /proc/net/ipv6_route) hold a usable default route: destination and mask zero, up, not a
    reject route, not on the loopback interface."""
    for line in ipv4_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[0] == "lo":
            continue
        try:
            flags = int(fields[3], 16)
        except ValueError:
            continue
        if fields[1] == "00000000" and fields[7] == "00000000" and flags & _RTF_UP \
                and not flags & _RTF_REJECT:
            return True
    for line in ipv6_table.splitlines():
        fields = line.split()
        if len(fields) < 10 or fields[9] == "lo":
            continue
        try:
            flags = int(fields[8], 16)
        except ValueError:
            continue
        if fields[0] == "0" * 32 and fields[1] == "00" and flags & _RTF_UP \
                and not flags & _RTF_REJECT:
            return True
    return False


def host_default_route() -> bool | None:
    """Whether this host has a default route (Linux); None where that cannot be read."""
    try:
        with open("/proc/net/route", encoding="ascii", errors="replace") as ipv4:
            ipv4_table = ipv4.read()
    except OSError:
        return None
    try:
        with open("/proc/net/ipv6_route", encoding="ascii", errors="replace") as ipv6:
            ipv6_table = ipv6.read()
    except OSError:
        ipv6_table = ""
    return default_route_present(ipv4_table, ipv6_table)
