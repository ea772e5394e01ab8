"""The certificates personas (alice owns the station with her LoTW certificate) and her owner
token after claiming this station."""

from __future__ import annotations

import pytest

from tests.certificates.conftest import alice, claim_body, lotw_trusted

__all__ = ["alice", "lotw_trusted"]


@pytest.fixture
def owner_token(client, alice) -> str:
    response = client.post("/api/claim-station", claim_body(client, alice),
                           content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()["accessToken"]
