"""Loaded with `-p tests.environment` before Django reads its settings: points the test run at a
data dir of its own, so a test run never touches an operator's station, and turns off mDNS."""

from __future__ import annotations

import os
import tempfile

# Variables of the developer's shell that would leak into the test station's settings.
for _name in list(os.environ):
    if _name.startswith("MESHSITE_") and _name != "MESHSITE_TEST_KEEP_ENV":
        del os.environ[_name]

os.environ["MESHSITE_DATA_DIR"] = tempfile.mkdtemp(prefix="meshsite-test-")
os.environ["MESHSITE_MDNS"] = "off"
os.environ["MESHSITE_LOG_LEVEL"] = "warning"
os.environ["MESHSITE_CELERY_EAGER"] = "on"
