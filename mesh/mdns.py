"""mDNS responder and browser for `_meshsite._tcp.local.` (zeroconf; no Django imports).

The station advertises one service named after its station id, with TXT metadata: `id` (station
id), `cs` (callsign), `v` (version), `caps` (capabilities, comma-separated), `api` (API path),
`fp` (owner certificate fingerprint), `ws` (coordinate path). The browser reports every other
station it finds (our own service is filtered out) and its clean goodbyes. Records use a short
TTL, but liveness is never left to mDNS: the daemon probes peers itself.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

SERVICE_TYPE = "_meshsite._tcp.local."
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Advert:
    station_id: str
    port: int
    addresses: list[str]
    callsign: str = ""
    version: str = ""
    capabilities: list[str] = field(default_factory=list)
    api_path: str = "/api"
    fingerprint: str = ""
    ttl: int = 15

    def txt(self) -> dict[str, str]:
        return {"id": self.station_id, "cs": self.callsign, "v": self.version,
                "caps": ",".join(self.capabilities), "api": self.api_path,
                "fp": self.fingerprint, "ws": "/ws/coordinate"}


@dataclass(frozen=True)
class Sighting:
    station_id: str
    callsign: str
    version: str
    capabilities: list[str]
    api_path: str
    fingerprint: str
    addresses: list[str]
    port: int

    @property
    def endpoint(self) -> str:
        address = self.addresses[0]
        host = f"[{address}]" if ":" in address else address
        return f"http://{host}:{self.port}"


def interface_addresses(interfaces: list[str]) -> list[str]:
    """Resolve a list of interface names or IP addresses to IPv4 addresses. Empty list: every
    non-loopback IPv4 address of the machine. Raises ValueError naming an unknown interface."""
    import psutil

    table = psutil.net_if_addrs()
    found: list[str] = []
    if not interfaces:
        for entries in table.values():
            for entry in entries:
                if entry.family == socket.AF_INET and not entry.address.startswith("127."):
                    found.append(entry.address)
        return found or ["127.0.0.1"]
    for item in interfaces:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            if item not in table:
                raise ValueError(
                    f"mDNS interface {item!r} does not exist here "
                    f"(have: {', '.join(sorted(table))})"
                ) from None
            found.extend(e.address for e in table[item] if e.family == socket.AF_INET)
        else:
            found.append(item)
    if not found:
        raise ValueError(f"mDNS interfaces {interfaces} have no IPv4 address")
    return found


def _decode(properties: dict) -> dict[str, str]:
    out = {}
    for key, value in properties.items():
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[key] = value or ""
    return out


class MdnsService:
    """Responder plus browser on the given addresses. `on_found(sighting)` runs for every
    resolved station, `on_gone(station_id)` for a goodbye."""

    def __init__(self, advert: Advert, *, on_found: Callable[[Sighting], Awaitable[None]],
                 on_gone: Callable[[str], Awaitable[None]]) -> None:
        self.advert = advert
        self.on_found = on_found
        self.on_gone = on_gone
        self.azc: AsyncZeroconf | None = None
        self.browser: AsyncServiceBrowser | None = None
        self.info: AsyncServiceInfo | None = None
        self._tasks: set[asyncio.Task] = set()
        self._names: dict[str, str] = {}  # service name -> station id

    def _service_info(self) -> AsyncServiceInfo:
        advert = self.advert
        return AsyncServiceInfo(
            SERVICE_TYPE, f"{advert.station_id}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(a) for a in advert.addresses], port=advert.port,
            properties=advert.txt(), server=f"meshsite-{advert.station_id[:16]}.local.",
            host_ttl=advert.ttl, other_ttl=advert.ttl,
        )

    async def start(self) -> None:
        self.azc = AsyncZeroconf(interfaces=list(self.advert.addresses),
                                 ip_version=IPVersion.V4Only)
        self.info = self._service_info()
        await self.azc.async_register_service(self.info, allow_name_change=True)
        self.browser = AsyncServiceBrowser(self.azc.zeroconf, SERVICE_TYPE,
                                           handlers=[self._on_change])

    async def refresh(self, advert: Advert | None = None) -> None:
        """Announce again (beat does this once a minute), with new metadata if given."""
        if self.azc is None or self.info is None:
            return
        if advert is not None and advert != self.advert:
            self.advert = advert
            new_info = self._service_info()
            new_info._name = self.info.name  # keep the (possibly renamed) service name
            self.info = new_info
        await self.azc.async_update_service(self.info)

    async def stop(self) -> None:
        """Say goodbye (unregister) and close."""
        for task in list(self._tasks):
            task.cancel()
        if self.browser is not None:
            await self.browser.async_cancel()
        if self.azc is not None:
            try:
                if self.info is not None:
                    await asyncio.wait_for(self.azc.async_unregister_service(self.info), 3)
            except (TimeoutError, Exception) as exc:
                logger.warning("mDNS goodbye failed", extra={"error": str(exc)})
            await self.azc.async_close()
        self.azc = None

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str,
                   state_change: ServiceStateChange) -> None:
        if self.info is not None and name == self.info.name:
            return
        if state_change is ServiceStateChange.Removed:
            station_id = self._names.pop(name, None)
            if station_id:
                self._spawn(self.on_gone(station_id))
            return
        self._spawn(self._resolve(name))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resolve(self, name: str, timeout_ms: int = 1500) -> Sighting | None:
        if self.azc is None:
            return None
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(self.azc.zeroconf, timeout_ms):
            return None
        txt = _decode(info.properties or {})
        station_id = txt.get("id", "")
        addresses = info.parsed_scoped_addresses(IPVersion.V4Only)
        if not station_id or not addresses or not info.port:
            return None
        return Sighting(
            station_id=station_id, callsign=txt.get("cs", ""), version=txt.get("v", ""),
            capabilities=[c for c in txt.get("caps", "").split(",") if c],
            api_path=txt.get("api", "/api"), fingerprint=txt.get("fp", ""),
            addresses=addresses, port=info.port)

    async def _resolve(self, name: str) -> None:
        try:
            sighting = await self.resolve(name)
        except Exception as exc:
            logger.warning("mDNS resolve failed", extra={"service": name, "error": str(exc)})
            return
        if sighting is None or sighting.station_id == self.advert.station_id:
            return
        self._names[name] = sighting.station_id
        await self.on_found(sighting)
