"""`manage.py prunemessages`: delete expired mailbox envelopes (the beat runs the same)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from signaling.mailbox import messages_prune


class Command(BaseCommand):
    help = ("Delete mailbox envelopes whose expiry (MESHSITE_MAILBOX_MESSAGE_TTL after they "
            "were accepted) has passed, and outbound envelopes that never reached their home "
            "station in time. Expired envelopes are never delivered even before this runs; "
            "the beat job signaling.tasks.prune_messages runs it every "
            "MESHSITE_MAILBOX_PRUNE_INTERVAL seconds.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true",
                            help="Only count what would be deleted.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["dry_run"]:
            from signaling.models import MailboxMessage, MailboxOutbound

            now = timezone.now()
            messages = MailboxMessage.objects.filter(expires_at__lte=now).count()
            outbound = MailboxOutbound.objects.filter(expires_at__lte=now).count()
            self.stdout.write(f"would delete {messages} envelope(s), {outbound} outbound "
                              "batch(es)")
            return
        result = messages_prune()
        self.stdout.write(f"deleted {result['messages']} expired envelope(s), "
                          f"{result['outbound']} expired outbound batch(es)")
