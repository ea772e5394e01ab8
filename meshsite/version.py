"""The station's version: the release from the package metadata plus the build suffix that
setup.py fixes at build/install time."""

from __future__ import annotations

import functools
from importlib import metadata

RELEASE_FALLBACK = "0.1.0"


@functools.cache
def release() -> str:
    try:
        return metadata.version("meshsite")
    except metadata.PackageNotFoundError:
        return RELEASE_FALLBACK


@functools.cache
def build() -> str:
    try:
        from meshsite._build import BUILD
    except ImportError:
        return "source"
    return BUILD


def full_version() -> str:
    """`0.1.0+20261125.g1a2b3c4d`: what `/api/status` and `runstation --version` print."""
    return f"{release()}+{build()}"
