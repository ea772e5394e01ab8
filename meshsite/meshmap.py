"""The mesh map of the admin dashboard: an SVG of this station, the stations it knows and the
links and routes between them, laid out in rings (neighbours around this station, stations
further away around the neighbour their route goes through). Pure: no Django imports.

Links are coloured by state (active, suspect, unreachable) and drawn by kind (LAN solid, RF
dashed); routes through a neighbour are thin grey lines; every line carries its cost as a
tooltip (`<title>`), and so does every station.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

STATE_COLOURS = {"active": "#0b7a3e", "suspect": "#b54708", "unreachable": "#b42318",
                 "unknown": "#6b7280"}


@dataclass
class MapStation:
    station_id: str
    callsign: str
    state: str = "unknown"
    hops: int | None = None       # None: no route (known only from the peer list)
    next_hop: str | None = None   # station id of the neighbour the route goes through
    cost: int | None = None
    link_kind: str = "lan"        # of the direct link, for neighbours
    linked: bool = False
    rtt_ms: float | None = None
    children: list[MapStation] = field(default_factory=list)


def _label(station: MapStation) -> str:
    return station.callsign or station.station_id[:8] or "?"


def render(*, own_callsign: str, stations: list[MapStation], width: int = 720,
           height: int = 440) -> str:
    """The SVG text. Neighbours are the stations with a link or a one-hop route; the others
    hang off the neighbour their route goes through (or an outer ring if none is known)."""
    cx, cy = width / 2, height / 2
    by_id = {s.station_id: s for s in stations}
    neighbours = [s for s in stations if s.linked or s.hops == 1]
    far = [s for s in stations if s not in neighbours]
    for station in far:
        parent = by_id.get(station.next_hop or "")
        if parent is not None and parent in neighbours:
            parent.children.append(station)
    orphans = [s for s in far if not any(s in n.children for n in neighbours)]

    positions: dict[str, tuple[float, float]] = {}
    # Ellipses, wider than high like the map: neighbours on the inner one (the first on the
    # left), stations further away on the outer one beside their neighbour.
    inner_x, inner_y = width * 0.27, height * 0.28
    outer_x, outer_y = width * 0.44, height * 0.42
    count = max(len(neighbours), 1)
    for index, station in enumerate(neighbours):
        angle = math.pi + 2 * math.pi * index / count
        positions[station.station_id] = (cx + inner_x * math.cos(angle),
                                          cy + inner_y * math.sin(angle))
        spread = math.pi / max(count, 2) / 1.5
        for child_index, child in enumerate(station.children):
            offset = (child_index - (len(station.children) - 1) / 2) * spread / max(
                len(station.children), 1)
            positions[child.station_id] = (cx + outer_x * math.cos(angle + offset),
                                           cy + outer_y * math.sin(angle + offset))
    for index, station in enumerate(orphans):
        angle = math.pi / 4 + 2 * math.pi * index / max(len(orphans), 1)
        positions[station.station_id] = (cx + outer_x * math.cos(angle),
                                         cy + outer_y * math.sin(angle))

    lines: list[str] = []
    for station in neighbours:
        x, y = positions[station.station_id]
        colour = STATE_COLOURS.get(station.state, STATE_COLOURS["unknown"])
        dash = ' stroke-dasharray="8 5"' if station.link_kind == "rf" else ""
        tip = (f"{own_callsign} to {_label(station)}: {station.link_kind.upper()} link, "
               f"{station.state}"
               + (f", cost {station.cost}" if station.cost is not None else "")
               + (f", {station.rtt_ms:.0f} ms" if station.rtt_ms is not None else ""))
        lines.append(
            f'<line class="link link-{escape(station.state)}"'
            f' data-kind="{escape(station.link_kind)}"'
            f' x1="{cx:.1f}" y1="{cy:.1f}" x2="{x:.1f}" y2="{y:.1f}" stroke="{colour}"'
            f' stroke-width="4"{dash}><title>{escape(tip)}</title></line>')
        if station.cost is not None:
            lines.append(f'<text class="cost" x="{(cx + x) / 2:.1f}" y="{(cy + y) / 2 - 6:.1f}"'
                         f' text-anchor="middle" font-size="12" fill="#374151">'
                         f'{station.cost}</text>')
        for child in station.children:
            child_x, child_y = positions[child.station_id]
            tip = (f"route to {_label(child)} through {_label(station)}: {child.hops} hops"
                   + (f", cost {child.cost}" if child.cost is not None else ""))
            lines.append(
                f'<line class="route" x1="{x:.1f}" y1="{y:.1f}" x2="{child_x:.1f}"'
                f' y2="{child_y:.1f}" stroke="#9ca3af" stroke-width="2" stroke-dasharray="3 4">'
                f'<title>{escape(tip)}</title></line>')

    nodes = [f'<g class="station own" data-callsign="{escape(own_callsign)}">'
             f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="30" fill="#12324a"/>'
             f'<text x="{cx:.1f}" y="{cy + 5:.1f}" text-anchor="middle" font-size="13"'
             f' font-weight="700" fill="#ffffff">{escape(own_callsign or "this station")}</text>'
             f'<title>{escape(own_callsign or "this station")} (this station)</title></g>']
    for station in stations:
        if station.station_id not in positions:
            continue
        x, y = positions[station.station_id]
        colour = STATE_COLOURS.get(station.state, STATE_COLOURS["unknown"])
        tip = (f"{_label(station)}: {station.state}"
               + (f", {station.hops} hop{'s' if station.hops != 1 else ''}"
                  if station.hops else "")
               + (f", route cost {station.cost}" if station.cost is not None else ""))
        nodes.append(
            f'<g class="station" data-callsign="{escape(station.callsign)}"'
            f' data-station-id="{escape(station.station_id)}">'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="22" fill="#ffffff" stroke="{colour}"'
            f' stroke-width="4"/>'
            f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle" font-size="11"'
            f' font-weight="700" fill="#17212b">{escape(_label(station))}</text>'
            f'<title>{escape(tip)}</title></g>')
    legend = ('<g class="legend" font-size="11" fill="#374151">'
              + "".join(f'<circle cx="{16 + i * 110}" cy="{height - 14}" r="5" fill="{c}"/>'
                        f'<text x="{26 + i * 110}" y="{height - 10}">{s}</text>'
                        for i, (s, c) in enumerate(STATE_COLOURS.items()))
              + f'<text x="{width - 8}" y="{height - 10}" text-anchor="end">'
                "solid: LAN link · dashed: RF link · dotted: route</text></g>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="mesh-map" viewBox="0 0 {width}'
            f' {height}" role="img" aria-labelledby="mesh-map-title">'
            f'<title id="mesh-map-title">Mesh map: {escape(own_callsign or "this station")} and'
            f' {len(stations)} other station{"s" if len(stations) != 1 else ""}</title>'
            + "".join(lines) + "".join(nodes) + legend + "</svg>")
