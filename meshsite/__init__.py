"""Meshsite: the station server of an emergency web for licensed amateur radio operators."""

from __future__ import annotations

from meshsite.celery import app as celery_app

__all__ = ["celery_app"]
