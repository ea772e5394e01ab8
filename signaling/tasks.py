"""Beat jobs of the signaling app (thin: they call services)."""

from __future__ import annotations

from celery import shared_task

from signaling.services import sessions_prune


@shared_task(name="signaling.tasks.prune_sessions", ignore_result=True)
def prune_sessions() -> dict[str, int]:
    """Drop sessions older than the retention; close those of dead processes as lost."""
    return sessions_prune()


@shared_task(name="signaling.tasks.prune_messages", ignore_result=True)
def prune_messages() -> dict[str, int]:
    """Delete expired mailbox envelopes and expired outbound batches."""
    from signaling.mailbox import messages_prune

    return messages_prune()
