"""`manage.py meshd`: the mesh daemon (runstation starts it as a supervised child)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Run the mesh daemon: mDNS responder and browser, /ws/coordinate links to peers "
        "(reconnecting with backoff), peer liveness probes and membership. Stops cleanly on "
        "SIGTERM or Ctrl-C (mDNS goodbye). Normally started by runstation."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-mdns", action="store_true",
                            help="Do not advertise or browse with mDNS (default: MESHSITE_MDNS).")
        parser.add_argument("--interface", action="append", default=None, metavar="NAME",
                            help="Interface name or IPv4 address for mDNS; repeat for several "
                                 "(default: MESHSITE_MDNS_INTERFACES, or every interface).")
        parser.add_argument("--port", type=int, default=None,
                            help="The station's HTTP port to advertise (default: MESHSITE_PORT).")

    def handle(self, *args: Any, **options: Any) -> None:
        from mesh import mdns
        from mesh.daemon import run_daemon

        mdns_enabled = settings.MESHSITE_MDNS and not options["no_mdns"]
        interfaces = options["interface"] or settings.MESHSITE_MDNS_INTERFACES
        port = options["port"] or settings.MESHSITE_PORT
        if not 1 <= port <= 65535:
            raise CommandError(f"--port {port} is out of range: use 1 to 65535.")
        if mdns_enabled:
            try:
                mdns.interface_addresses(interfaces)
            except ValueError as exc:
                raise CommandError(f"{exc}. Fix --interface / MESHSITE_MDNS_INTERFACES.") from exc
        run_daemon(mdns_enabled=mdns_enabled, interfaces=interfaces, port=port)
