"""Each process keeps the sync catalog (every entry's modified time and id) while the version
token in Redis stays the same; a change sets a new token. After Redis lost its data (restarted,
flushed), a change must still be seen: a counter would start again at the value a stale cache
holds."""

from __future__ import annotations

import pytest

from catalog import selectors
from meshsite.redisconn import get_redis
from tests.catalog.test_content_api import publish

pytestmark = pytest.mark.django_db


def _ids() -> set[str]:
    return {item.id.hex() for item in selectors.sync_catalog().items()}


def _publish(client, token, path: str, commits) -> str:
    with commits(execute=True):  # the change is announced after its commit
        return publish(client, token, path, f"<p>{path}</p>".encode()).json()["entryId"]


def test_a_change_after_redis_lost_its_data_is_seen(client, owner_token,
                                                    django_capture_on_commit_callbacks) -> None:
    first = _publish(client, owner_token, "a.html", django_capture_on_commit_callbacks)
    assert _ids() == {first}
    get_redis().flushdb()  # Redis restarted: the token is gone
    second = _publish(client, owner_token, "b.html", django_capture_on_commit_callbacks)
    assert _ids() == {first, second}


def test_the_catalog_is_read_once_per_token(client, owner_token, django_assert_num_queries,
                                            django_capture_on_commit_callbacks) -> None:
    entry = _publish(client, owner_token, "c.html", django_capture_on_commit_callbacks)
    assert _ids() == {entry}
    with django_assert_num_queries(0):
        assert _ids() == {entry}
