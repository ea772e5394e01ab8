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


@shared_task(name="signaling.tasks.forward_mailbox", ignore_result=True)
def forward_mailbox() -> dict[str, int]:
    """Hand kept mailbox batches to their home stations (retries after a failure on the way)."""
    from signaling.mailbox_mesh import outbound_forward_due

    return outbound_forward_due()


@shared_task(name="signaling.tasks.pull_mailbox_batch", ignore_result=True)
def pull_mailbox_batch(batch: str) -> str:
    """At the home station: fetch an accepted batch of envelopes and store it."""
    from signaling.mailbox_mesh import batch_pull

    return batch_pull(batch=batch)
