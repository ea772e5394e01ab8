"""`manage.py meshpeer`: list and add peers from the console."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "List the stations this station knows, or add one by its endpoint."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Add a peer by endpoint (e.g. http://10.0.0.5:8080).")
        add.add_argument("endpoint", help="Base URL of the other station.")
        add.add_argument("--callsign", default=None, help="Its callsign, if you know it.")
        sub.add_parser("list", help="List known peers with their state.")

    def handle(self, *args: Any, **options: Any) -> None:
        from mesh import selectors, services

        if options["action"] == "add":
            try:
                peer = services.peer_add(endpoint=options["endpoint"],
                                         callsign=options["callsign"])
            except services.MeshError as exc:
                raise CommandError(exc.detail) from exc
            self.stdout.write(f"peer {peer.endpoint} added (id {peer.pk})")
            return
        for peer in selectors.peers_list():
            self.stdout.write(f"{peer.callsign or '-':10} {peer.endpoint or '-':28} "
                              f"{peer.state:12} {peer.discovery_method:7} "
                              f"{peer.station_id or '-'}")
