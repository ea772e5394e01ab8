"""The catalog's "content changed" doorbell.

Services ring it once new entries are committed; what follows a change (the per-process catalog
cache noticing, passing the news on to peers, fetching wanted bodies) listens here. This module
imports none of services, tasks or fetch, so writes never import the code that reacts to them
and every import in the catalog runs one way: tasks -> replication -> fetch -> services ->
changes.
"""

from __future__ import annotations

import logging
import secrets

from django.dispatch import Signal

from meshsite.redisconn import get_redis

logger = logging.getLogger(__name__)

# A random token, new at each change, that every process compares with the one its cached
# sync catalog was read under (see selectors). Not a counter: after Redis restarts (or is
# flushed) a counter would count the same values again and match a stale cache.
VERSION_KEY = "meshsite:catalog:version"

# Sent after commit when entries arrived here (published or received); no arguments.
content_changed = Signal()


def content_changed_announce() -> None:
    """Tell every process's catalog cache that entries arrived, then whoever listens (the sync
    follow-up connected in CatalogConfig.ready). Best effort: the change is already committed."""
    try:
        get_redis().set(VERSION_KEY, secrets.token_hex(8))
    except Exception as exc:  # Redis down must not fail a publish that is already committed
        logger.warning("catalog version bump failed", extra={"error": str(exc)})
    content_changed.send(sender=__name__)
