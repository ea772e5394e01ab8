"""Message types other apps speak over the mesh, and their handlers.

An app registers, in its `AppConfig.ready`:

    from mesh.registry import register_handler

    async def on_content_sync(link: LinkContext, payload: dict) -> dict | None:
        ...                       # runs in the process holding the link (daphne or meshd)
        return {"entries": [...]}  # the reply when the sender used link.request(...)

    register_handler("CONTENT_SYNC", on_content_sync)

The mesh has already checked, before a handler runs, that the message is signed by the linked
station's key, comes from that station, is fresh (timestamp window) and not a replay.
`LinkContext` gives the handler the proven peer and a way to talk back:

    link.peer_station_id, link.peer_callsign, link.peer_fingerprint
    link.local      # this station as the link proved it (trust.LocalStation; a change of
                    # identity closes the link)
    await link.send(type, payload)                       -> message id
    await link.request(type, payload, timeout=10.0)      -> reply payload (dict)

A handler that returns a dict answers a request with it; returning None answers `{}`. Raising
`MeshHandlerError(code, detail)` answers with an ERROR the requester sees as that exception.
Type names are upper-case words; the mesh's own are PEER_ANNOUNCE, PEER_LIST, CERT_SYNC,
BLACKLIST_UPDATE, PING, REPLY and ERROR, and cannot be registered twice.

An app that keeps state in step with its peers (the catalog's CONTENT_SYNC) also registers a
link sync: an async function run on every link, by whichever process holds it (meshd for links
it dialled, daphne for links dialled to us), right after the mesh's own
certificate and blacklist sync, at each gossip round and when the link comes up:

    register_link_sync("catalog", sync_catalog_over)   # async def sync_catalog_over(link)

An app whose data other stations may ask for through the mesh (multi-hop forwarding,
`mesh.forwarding`) registers a forward source for a kind of request:

    register_forward_source("content", ContentSource())

where `describe(request) -> dict | None` says what this station would serve (`{"size": n, ...}`)
or None when it does not hold it, and `read(request, offset, length) -> bytes` reads a piece.
Both are sync (they run in a thread) and raise `MeshHandlerError` for a bad request. A kind
registered with `lan_only=True` (encrypted mail: Part 97) is forwarded only along the LAN/IP-only
routes (`Route.lan_next_hop`), by every station on the way, never over an RF hop.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

logger = logging.getLogger(__name__)

_TYPE_RE = re.compile(r"^[A-Z][A-Z0-9_]{1,47}$")


class LinkContext(Protocol):
    peer_station_id: str
    peer_callsign: str
    peer_fingerprint: str

    async def send(self, type_: str, payload: dict[str, Any]) -> str: ...

    async def request(self, type_: str, payload: dict[str, Any],
                      timeout: float = 10.0) -> dict[str, Any]: ...


Handler = Callable[[LinkContext, dict[str, Any]], Awaitable[dict[str, Any] | None]]


class MeshHandlerError(Exception):
    """Raised by a handler (or seen by a requester) to answer with an ERROR."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


_handlers: dict[str, Handler] = {}


def register_handler(message_type: str, handler: Handler) -> None:
    """Route `message_type` to `handler` (an async function). Registering the same handler
    again is a no-op; a different handler for a taken type raises ValueError."""
    if not _TYPE_RE.match(message_type):
        raise ValueError(f"message type {message_type!r}: use 2 to 48 upper-case letters, "
                         "digits or underscores, starting with a letter")
    existing = _handlers.get(message_type)
    if existing is not None and existing is not handler:
        raise ValueError(f"message type {message_type} already has a handler ({existing!r})")
    _handlers[message_type] = handler


_sync_types: set[str] = set()


def register_sync_type(message_type: str) -> None:
    """`message_type` (and the replies to it) is sync traffic: held to a share of every
    link's bandwidth (`MESHSITE_MESH_SYNC_SHARE`; on RF, the air-time budget)."""
    _sync_types.add(message_type)


def is_sync(message_type: str) -> bool:
    return message_type in _sync_types


def get_handler(message_type: str) -> Handler | None:
    return _handlers.get(message_type)


def registered_types() -> list[str]:
    return sorted(_handlers)


LinkSync = Callable[[LinkContext], Awaitable[Any]]
_link_syncs: dict[str, LinkSync] = {}
_lan_only_syncs: set[str] = set()
_lan_only_types: set[str] = set()


def register_link_sync(name: str, sync: LinkSync, *, lan_only: bool = False) -> None:
    """Run `sync(link)` on every link at each gossip round (after the mesh's own sync); with
    `lan_only`, on LAN/IP links only, never on an RF link. Registering under a taken name
    replaces the earlier function (module reloads)."""
    _link_syncs[name] = sync
    if lan_only:
        _lan_only_syncs.add(name)
    else:
        _lan_only_syncs.discard(name)


def link_syncs(*, rf: bool = False) -> list[tuple[str, LinkSync]]:
    """The link syncs to run on a link (`rf`: an RF link, without the LAN-only ones)."""
    return sorted((name, sync) for name, sync in _link_syncs.items()
                  if not (rf and name in _lan_only_syncs))


def register_lan_only_type(message_type: str) -> None:
    """`message_type` never crosses an RF link: the RF link refuses to send it and drops it
    when heard (the mailbox: Part 97)."""
    _lan_only_types.add(message_type)


def lan_only_type(message_type: str) -> bool:
    return message_type in _lan_only_types


class ForwardSource(Protocol):
    def describe(self, request: dict[str, Any]) -> dict[str, Any] | None: ...

    def read(self, request: dict[str, Any], offset: int, length: int) -> bytes: ...


_forward_sources: dict[str, ForwardSource] = {}
_lan_only_kinds: set[str] = set()


def register_forward_source(kind: str, source: ForwardSource, *, lan_only: bool = False) -> None:
    """Serve forwarded requests of `kind` (a short lower-case name) from `source`; with
    `lan_only`, such requests travel over LAN/IP routes only."""
    if not re.match(r"^[a-z][a-z0-9_]{0,31}$", kind):
        raise ValueError(f"forward kind {kind!r}: a short lower-case name")
    _forward_sources[kind] = source
    if lan_only:
        _lan_only_kinds.add(kind)
    else:
        _lan_only_kinds.discard(kind)


def forward_lan_only(kind: str) -> bool:
    """True for kinds that must never cross an RF hop."""
    return kind in _lan_only_kinds


def forward_source(kind: str) -> ForwardSource | None:
    return _forward_sources.get(kind)


# --- presence on the air ----------------------------------------------------------------------

CredentialListener = Callable[[dict[str, Any]], Any]
_credential_listeners: list[CredentialListener] = []


def register_credential_listener(listener: CredentialListener) -> None:
    """An app that wants every station credential this station verified (heard on the air):
    the catalog keeps it as an origin, so entries pulled later need not carry it again."""
    if listener not in _credential_listeners:
        _credential_listeners.append(listener)


def credential_verified(credential: dict[str, Any]) -> None:
    """Tell the apps (sync code: call it in a thread); a listener that fails is logged."""
    for listener in list(_credential_listeners):
        try:
            listener(credential)
        except Exception as exc:
            logger.info("credential listener refused", extra={
                "listener": getattr(listener, "__qualname__", str(listener)),
                "error": f"{type(exc).__name__}: {exc}"})


PresenceDigest = Callable[[], bytes]
_presence_digest: list[PresenceDigest] = []


def register_presence_digest(digest: PresenceDigest) -> None:
    """An app's short digest of its state (the catalog's), carried by the RF ID beacon: a
    station hearing an equal digest knows there is nothing to reconcile."""
    _presence_digest[:] = [digest]


def presence_digest() -> bytes:
    if not _presence_digest:
        return b""
    try:
        return bytes(_presence_digest[0]())[:8]
    except Exception:
        logger.exception("presence digest failed")
        return b""
