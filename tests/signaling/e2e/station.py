"""A real daphne serving the project's ASGI app, for end-to-end tests of the signaling endpoints."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.harness import DaphneProcess, migrate, station_env


def _env(data_dir: Path) -> dict[str, str]:
    # The test session's Redis (cleaned before each test), so a test can look at presence.
    return station_env(data_dir, REDIS_URL=settings.REDIS_URL, MESHSITE_LOG_LEVEL="warning")


@pytest.fixture(scope="module")
def migrated_dir() -> Iterator[Path]:
    data_dir = Path(tempfile.mkdtemp(prefix="meshsite-e2e-"))
    migrate(data_dir, _env(data_dir))
    yield data_dir


@pytest.fixture
def daphne(migrated_dir: Path, embedded_redis: str) -> Iterator[DaphneProcess]:
    """One daphne process on 127.0.0.1 with the project's settings."""
    process = DaphneProcess(migrated_dir, env=_env(migrated_dir)).start()
    try:
        yield process
    finally:
        process.stop()
