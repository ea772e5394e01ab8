"""`manage.py meshroutes`: meshd's routing table on the console."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mesh.models import Route

EMPTY = "no routes yet (meshd has not learnt any; is the station linked to a peer?)"


class Command(BaseCommand):
    help = ("Show how this station reaches every other station through the mesh: meshd's "
            "routing table as it last stored it (destination, next hop, cost, hops, seconds "
            "since the route was refreshed, and the LAN/IP-only next hop where it differs). "
            "Read-only; the table is meshd's.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--destination", metavar="STATION",
                            help="Only the route to this station: its station id (32 hex "
                                 "digits) or its callsign.")
        parser.add_argument("--json", action="store_true",
                            help="Print JSON for machines instead of columns: the same "
                                 "{count, routes} document as GET /api/routes.")

    def handle(self, *args: Any, **options: Any) -> None:
        from django.utils import timezone

        from mesh import selectors
        from mesh.serializers import MeshRoutesSerializer

        destination = options["destination"]
        try:
            rows = selectors.routes(destination=destination)
        except ValueError as exc:
            raise CommandError(f"--destination: {exc}") from exc
        now = timezone.now()
        if options["json"]:
            document = MeshRoutesSerializer({"count": len(rows), "routes": rows},
                                            context={"now": now}).data
            self.stdout.write(json.dumps(document, indent=2))
            return
        if not rows:
            self.stdout.write(f"no route to {destination}" if destination is not None else EMPTY)
            return
        header = ["DESTINATION", "CALLSIGN", "NEXT-HOP", "COST", "HOPS", "AGE"]
        table = [[route.destination, route.callsign or "-",
                  _station(route.next_hop, route.next_hop_callsign), str(route.cost),
                  str(route.hops), f"{route.age_at(now):.1f}s", _lan_only(route)]
                 for route in rows]
        if any(row[-1] for row in table):
            header.append("LAN-ONLY NEXT-HOP")
        else:
            table = [row[:-1] for row in table]
        numeric = {3, 4, 5}
        widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
        for row in [header, *table]:
            cells = [cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
                     for i, cell in enumerate(row)]
            self.stdout.write("  ".join(cells).rstrip())


def _station(station_id: str, callsign: str) -> str:
    return f"{callsign} ({station_id[:8]})" if callsign else station_id


def _lan_only(route: Route) -> str:
    """The LAN/IP-only next hop when it is not the route's own, "none" when there is none."""
    if not route.lan_next_hop:
        return "none"
    if route.lan_next_hop == route.next_hop:
        return ""
    return f"{route.lan_next_hop} (cost {route.lan_cost}, {route.lan_hops} hops)"
