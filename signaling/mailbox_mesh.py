"""The mailbox across the mesh: where each operator's mailbox lives (signed by the home station,
gossiped), and envelopes and bundle requests for operators homed elsewhere, forwarded over
LAN/IP routes only (docs/mailbox.md)."""

from __future__ import annotations

from typing import Any

from signaling import mailbox
from signaling.mailbox import Envelope, MailboxError
from signaling.models import MailboxOperator


def _is_local(callsign: str) -> bool:
    return MailboxOperator.objects.filter(callsign=callsign.upper()).exists()


def home_announce(*, callsign: str) -> None:
    """Record (and gossip) that `callsign`'s mailbox lives on this station."""


def bundle_take(*, callsign: str, device: str, requester: str) -> dict[str, Any]:
    """A bundle of a local operator, or through the mesh from their home station."""
    return mailbox.bundle_take(callsign=callsign, device=device, requester=requester)


def messages_send(*, callsign: str, envelopes: list[Envelope], timestamp: int, source: str,
                  source_device: int, wait: bool = False) -> dict[str, Any]:
    """Store envelopes for a local operator, or forward them to their home station."""
    if not _is_local(callsign):
        raise MailboxError("unknown_operator", f"{callsign.upper()} has no mailbox here and no "
                           "known home station", status=404)
    ids = mailbox.messages_store(callsign=callsign, envelopes=envelopes, timestamp=timestamp,
                                 source=source, source_device=source_device)
    return {"ids": ids}
