"""Station-wide periodic jobs (the apps keep theirs in their own tasks.py)."""

from __future__ import annotations

import time

from celery import shared_task

from meshsite.redisconn import get_redis

HEARTBEAT_KEY = "meshsite:worker:heartbeat"


@shared_task(name="meshsite.tasks.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Beat runs this; `/healthz` reads it to know the worker and beat are alive."""
    get_redis().set(HEARTBEAT_KEY, f"{time.time():.3f}", ex=3600)


@shared_task(name="meshsite.tasks.echo")
def echo(value: str) -> str:
    """Round-trip probe: `runstation` and the tests send it through the broker and read it back."""
    return value
