"""The catalog's forward source: other stations ask for a body through the mesh
(`mesh.forwarding`, kind "content", request `{"entry": "<entry id>"}`) and this station serves
it if it holds it, a piece at a time straight from the blob store."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from mesh.registry import MeshHandlerError
from meshsite import hotread

KIND = "content"
_ENTRY = re.compile(r"^[0-9a-f]{64}$")


class _Held(NamedTuple):
    """What a hop reads of an entry: every relay of every forwarded request reads it, and the
    holder once per chunk (`meshsite.hotread`: no ORM compiler on that path)."""

    entry_id: str
    deleted: bool
    has_body: bool
    content_hash: str
    size: int


def _entry(request: dict[str, Any]) -> _Held:
    from catalog.models import ContentEntry

    entry_id = request.get("entry")
    if not isinstance(entry_id, str) or not _ENTRY.match(entry_id):
        raise MeshHandlerError("malformed", "a content request names 'entry': 64 hex digits")
    found = hotread.row(ContentEntry, _Held._fields, "entry_id", entry_id)
    if found is None:
        raise MeshHandlerError("unknown_entry", f"no catalog entry {entry_id[:16]} here")
    return _Held(*found)


class ContentSource:
    def describe(self, request: dict[str, Any]) -> dict[str, Any] | None:
        from catalog.services import blob_store

        entry = _entry(request)
        if entry.deleted or not entry.has_body or not blob_store().exists(entry.content_hash):
            return None
        return {"size": entry.size, "contentHash": entry.content_hash, "entry": entry.entry_id}

    def read(self, request: dict[str, Any], offset: int, length: int) -> bytes:
        from catalog.services import blob_store

        entry = _entry(request)
        try:
            with blob_store().open(entry.content_hash) as handle:
                handle.seek(offset)
                return handle.read(length)
        except FileNotFoundError as exc:
            raise MeshHandlerError("gone", "the body was evicted here meanwhile") from exc


def register() -> None:
    from mesh.registry import register_forward_source

    register_forward_source(KIND, ContentSource())
