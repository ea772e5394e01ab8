"""The certificates personas (alice owns the station with her LoTW certificate)."""

from __future__ import annotations

from tests.certificates.conftest import alice, lotw_trusted

__all__ = ["alice", "lotw_trusted"]
