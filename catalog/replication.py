"""The replication policy: which bodies this station fetches from its peers without being asked.

Above fetch (which stores a body through services) and below tasks (beat and the follow-up to a
change run it), so the catalog's imports run one way.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import F, Q

from catalog.fetch import body_fetch
from catalog.models import ContentEntry, Priority
from catalog.services import storage_enforce

logger = logging.getLogger(__name__)


def replicate_pending(*, limit: int = 50) -> int:
    """Fetch the bodies the replication policy wants here and lacks: priority 1 always,
    priority 2 once the demand seen here and across the mesh reaches the threshold. Current
    versions and conflicting heads only; the rest is fetched when someone asks for it."""
    essential = (Q(local_priority=Priority.ESSENTIAL)
                 | Q(priority=Priority.ESSENTIAL, local_priority__isnull=True))
    popular = (Q(local_priority=Priority.POPULAR)
               | Q(priority=Priority.POPULAR, local_priority__isnull=True))
    rows = (ContentEntry.objects.filter(has_body=False, deleted=False)
            .filter(Q(is_current=True) | Q(conflict=True))
            .annotate(total_demand=F("demand") + F("mesh_demand"))
            .filter(essential | (popular & Q(total_demand__gte=settings.CATALOG_DEMAND_THRESHOLD)))
            .order_by("priority", "-modified_packed")[:limit])
    fetched = 0
    for entry in rows:
        if body_fetch(entry=entry) is not None:
            fetched += 1
    if fetched:
        logger.info("bodies replicated", extra={"fetched": fetched})
        storage_enforce()
    return fetched
