from __future__ import annotations

import pytest

from mesh import registry


async def handler(link, payload):
    return {"ok": True}


async def other(link, payload):
    return None


def test_register_and_lookup():
    registry.register_handler("TEST_ECHO", handler)
    registry.register_handler("TEST_ECHO", handler)  # same handler again: fine
    assert registry.get_handler("TEST_ECHO") is handler
    assert "CERT_SYNC" in registry.registered_types()


def test_taken_type_and_bad_names_are_refused():
    with pytest.raises(ValueError, match="already has a handler"):
        registry.register_handler("CERT_SYNC", other)
    for name in ("lower", "A", "1ABC", "WITH SPACE", "X" * 60):
        with pytest.raises(ValueError, match="upper-case"):
            registry.register_handler(name, other)
