"""The admin's mesh map (meshsite.meshmap): stations, links by state and kind, routes, costs."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from meshsite.meshmap import MapStation, render

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own SVG


def test_neighbours_links_and_a_route_through_one_of_them():
    stations = [
        MapStation(station_id="b" * 32, callsign="DL1B", state="active", linked=True, hops=1,
                   cost=96, next_hop="b" * 32, rtt_ms=3.2),
        MapStation(station_id="c" * 32, callsign="DL1C", state="suspect", linked=True, hops=1,
                   cost=400, next_hop="c" * 32, link_kind="rf"),
        MapStation(station_id="d" * 32, callsign="DL1D", state="active", hops=2, cost=192,
                   next_hop="b" * 32),
    ]
    root = _parse(render(own_callsign="W1AW", stations=stations))
    groups = root.findall(f"{SVG}g[@class]")
    callsigns = [g.get("data-callsign") for g in groups if "station" in g.get("class", "")]
    assert callsigns == ["W1AW", "DL1B", "DL1C", "DL1D"]
    links = root.findall(f"{SVG}line")
    kinds = {(line.get("class"), line.get("data-kind")) for line in links}
    assert ("link link-active", "lan") in kinds and ("link link-suspect", "rf") in kinds
    assert any(line.get("class") == "route" for line in links)
    tips = [t.text for t in root.iter(f"{SVG}title")]
    assert any("cost 96" in t and "3 ms" in t for t in tips)
    assert any("route to DL1D through DL1B: 2 hops, cost 192" in t for t in tips)
    rf = next(line for line in links if line.get("data-kind") == "rf")
    assert rf.get("stroke-dasharray")


def test_names_are_escaped_and_an_empty_mesh_still_draws():
    svg = render(own_callsign="<script>", stations=[
        MapStation(station_id="e" * 32, callsign='"><b>', state="unreachable")])
    assert "<script>" not in svg and '"><b>' not in svg
    _parse(svg)
    empty = _parse(render(own_callsign="", stations=[]))
    assert "0 other stations" in "".join(empty.itertext())
