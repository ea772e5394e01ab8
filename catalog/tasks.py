"""Beat jobs and follow-ups of the catalog (thin: each calls a service or pokes meshd)."""

from __future__ import annotations

import logging

from celery import shared_task

from catalog import services
from catalog.replication import replicate_pending
from mesh.services import mesh_poke

logger = logging.getLogger(__name__)


@shared_task(name="catalog.tasks.sync_round", ignore_result=True)
def sync_round() -> None:
    """Gossip round for content: meshd reconciles catalogs on every link (CONTENT_SYNC runs as
    a link sync after the trust sync), then bodies the policy wants are fetched."""
    mesh_poke(command="gossip")
    replicate()


@shared_task(name="catalog.tasks.replicate", ignore_result=True)
def replicate() -> None:
    replicate_pending()


@shared_task(name="catalog.tasks.prune", ignore_result=True)
def prune() -> None:
    """What a crash can leave behind (temporary files, bodies of entries never committed),
    demand that fades (halved every run), and the storage budget."""
    services.blob_store().sweep_temp()
    services.blobs_orphaned_delete()
    services.demand_decay()
    services.storage_enforce()


def sync_soon(**_signal: object) -> None:
    """New entries here (`changes.content_changed`): pass them on now rather than at the next
    round, and fetch the bodies the replication policy wants. Best effort: beat retries."""
    mesh_poke(command="changed")  # news: links dialled to us sync too, not only ours
    try:
        replicate.apply_async(retry=False)  # a station that is down must not stall a publish
    except Exception as exc:
        logger.warning("could not queue replication", extra={"error": str(exc)})
