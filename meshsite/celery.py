"""The station's Celery app: broker and schedule come from Django settings (CELERY_*)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshsite.settings")

app = Celery("meshsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _use_station_logging(**_kwargs: Any) -> None:
    """The worker logs through Django's LOGGING, one key=value line per event like the rest of
    the station, instead of Celery's own format."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
