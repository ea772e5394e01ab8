from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from signaling.selectors import clients_live
from signaling.services import client_disconnect, sessions_prune


class Command(BaseCommand):
    help = ("List the clients connected to this station's signaling endpoints (on every "
            "process), disconnect one, or prune the session records now.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--disconnect", metavar="ID",
                            help="Close the client with this id (PeerJS id or /ws/signal "
                                 "client id) wherever it is connected.")
        parser.add_argument("--protocol", choices=["signal", "peerjs"],
                            help="With --disconnect: the endpoint of that id (default: both).")
        parser.add_argument("--prune", action="store_true",
                            help="Delete the sessions that ended more than "
                                 "MESHSITE_SIGNALING_SESSION_RETENTION seconds ago and close "
                                 "as lost the open ones of processes that no longer run (what "
                                 "the beat job signaling-prune-sessions does).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["prune"]:
            done = sessions_prune()
            self.stdout.write(f"Deleted {done['deleted']} session(s) past the retention; "
                              f"closed {done['lost']} session(s) of dead processes as lost.")
            return
        target = options["disconnect"]
        if target:
            protocols = [options["protocol"]] if options["protocol"] else ["signal", "peerjs"]
            if not any(client_disconnect(protocol=p, peer_id=target) for p in protocols):
                raise CommandError(f"No connected client with id {target!r}.")
            self.stdout.write(f"Disconnected {target}.")
            return
        clients = clients_live()
        for client in clients:
            since = dt.datetime.fromtimestamp(client["since"], tz=dt.UTC).isoformat(
                timespec="seconds")
            self.stdout.write(
                f"{client['protocol']:6} {client['peerId']:36} {client['callsign'] or '-':10} "
                f"{'licensed' if client['licensed'] else 'guest':8} {client['room'] or '-':12} "
                f"{since} {client['process']}")
        self.stdout.write(f"{len(clients)} client(s) connected.")
