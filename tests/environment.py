"""Loaded with `-p tests.environment` before Django reads its settings: points the test run at a
data dir of its own, so a test run never touches an operator's station, and turns off mDNS.
Also the one way a test gives up for want of something on this machine (`requirement_missing`)."""

from __future__ import annotations

import os
import tempfile
from typing import NoReturn

import pytest

# Variables of the developer's shell that would leak into the test station's settings.
for _name in list(os.environ):
    if _name.startswith("MESHSITE_") and _name != "MESHSITE_TEST_KEEP_ENV":
        del os.environ[_name]

os.environ["MESHSITE_DATA_DIR"] = tempfile.mkdtemp(prefix="meshsite-test-")
os.environ["MESHSITE_MDNS"] = "off"
os.environ["MESHSITE_LOG_LEVEL"] = "warning"
os.environ["MESHSITE_CELERY_EAGER"] = "on"


def requirement_missing(reason: str) -> NoReturn:
    """Skip a test that cannot run here for want of root, a network namespace, Chromium, npm or
    another tool; under CI=true fail instead: CI installs all of these, so a skip there would be
    a test that silently never ran. `reason` says what is missing and how to install it."""
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI=true: a test may not skip in CI)", pytrace=False)
    pytest.skip(reason)
