"""Database work from meshd's event loop: `db(fn)` runs `fn` in asgiref's one sync thread
(thread-sensitive), after closing connections that outlived `CONN_MAX_AGE` or broke, as a
request would."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections


def db(fn: Any) -> Any:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        return fn(*args, **kwargs)

    return sync_to_async(wrapped, thread_sensitive=True)
