"""Network mode with no probe targets: never probe an address the operator did not name; a host
with no default route is offline, one with a default route is unknown and says how to set
targets. Route tables are read for real, inside network namespaces made here."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest

from mesh import probe, services
from tests.environment import requirement_missing
from tests.harness import REPO
from tests.mesh.netns import netns_available, sh


def _ipv4(*routes: str) -> str:
    """/proc/net/route: a header, then tab-separated rows."""
    header = "Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT"
    return "\n".join(line.replace(" ", "\t") for line in (header, *routes)) + "\n"


LAN_ROUTE = "eth0 000200C0 00000000 0001 0 0 0 00FFFFFF 0 0 0"
IPV4_WITH_DEFAULT = _ipv4("eth0 00000000 010200C0 0003 0 0 0 00000000 0 0 0", LAN_ROUTE)
IPV4_LAN_ONLY = _ipv4(LAN_ROUTE)
# The kernel's own reject route on lo is no way out.
IPV6_REJECT_ONLY = ("00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
                    "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n")
IPV6_DEFAULT = ("00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
                "fd000000000000000000000000000001 00000400 00000002 00000000 00000003 eth0\n")


@pytest.mark.parametrize("ipv4, ipv6, expected", [
    (IPV4_WITH_DEFAULT, "", True),
    (IPV4_LAN_ONLY, "", False),
    (IPV4_LAN_ONLY, IPV6_REJECT_ONLY, False),
    (IPV4_LAN_ONLY, IPV6_DEFAULT, True),
    ("", "", False),
    ("Iface\tDestination\nbroken line\n", "not a route\n", False),
])
def test_default_route_from_the_tables(ipv4, ipv6, expected):
    assert probe.default_route_present(ipv4, ipv6) is expected


def _need_netns() -> None:
    if not netns_available():
        requirement_missing("needs root and iproute2 for network namespaces")


@contextlib.contextmanager
def _namespace(name: str, *, default_route: bool):
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        if default_route:
            # a veth pair inside the namespace: an interface with a gateway on its LAN
            sh("ip", "-n", name, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
            sh("ip", "-n", name, "addr", "add", "10.99.0.2/24", "dev", "d0")
            sh("ip", "-n", name, "link", "set", "d1", "up")
            sh("ip", "-n", name, "link", "set", "d0", "up")
            sh("ip", "-n", name, "route", "add", "default", "via", "10.99.0.1")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30,
                       check=False)


@pytest.mark.parametrize("default_route", [False, True])
def test_host_default_route_read_from_a_real_namespace(default_route):
    _need_netns()
    name = f"msroute{os.getpid() % 100000}{int(default_route)}"
    with _namespace(name, default_route=default_route):
        result = subprocess.run(
            ["ip", "netns", "exec", name, sys.executable, "-c",
             "from mesh.probe import host_default_route; print(host_default_route())"],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == str(default_route)


@pytest.mark.django_db
def test_no_targets_no_probe_and_the_mode_says_how_to_set_them(settings):
    settings.CONNECTIVITY_TARGETS = []
    state = services.connectivity_check()
    route = probe.host_default_route()
    assert state["targets"] == []  # nothing was probed
    assert state["mode"] == ("offline" if route is False else "unknown")
    assert "MESHSITE_CONNECTIVITY_TARGETS" in state["detail"]
    from mesh.selectors import network_mode_get

    assert network_mode_get()["mode"] == state["mode"]


@pytest.mark.django_db
def test_status_and_station_page_show_the_mode_and_the_hint(client, settings):
    settings.CONNECTIVITY_TARGETS = []
    state = services.connectivity_check()
    body = client.get("/api/status").json()
    assert body["networkMode"] == state["mode"]
    assert "MESHSITE_CONNECTIVITY_TARGETS" in body["networkDetail"]
    page = client.get("/").content.decode()
    assert "MESHSITE_CONNECTIVITY_TARGETS" in page
