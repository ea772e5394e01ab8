"""The signed form of a content entry, and the rules for its fields.

An entry is signed by its origin station (Ed25519) over a canonical text form, one `key:value`
line per field in a fixed order. No field may contain a line break or control character, so the
form is unambiguous. The entry id is the SHA-256 of that form: it names one version everywhere in
the mesh, and the reconciliation protocol (`catalog.reconcile`) works on (modified HLC, entry id).

Conflicts: among the versions of one (origin callsign, path), a version is a head when no other
version names it in `supersedes`; the winner is the greatest (modified HLC, origin station id,
entry id). Two heads mean two stations published while apart: the loser stays reachable.

No Django imports.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from catalog.errors import CodedError
from catalog.hlc import ClockError, Timestamp

MAX_PATH_LENGTH = 255
MAX_ENTRY_SIZE = 100 * 1024 * 1024
CANONICAL_PREFIX = "meshsite-content-v1"
CALLSIGN_RE = re.compile(
    r"^(?:[A-Z0-9]{1,4}/)?[A-Z0-9]{1,3}[0-9][A-Z0-9]{0,3}[A-Z](?:/[A-Z0-9]{1,4})?$")
CONTENT_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_."
                             r"+-]{0,126}(?:\s*;\s*[A-Za-z0-9_.-]+=(?:[A-Za-z0-9_.+-]+|\"[^\"\\\r\n]*\"))*$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
STATION_ID_RE = re.compile(r"^[0-9a-f]{32}$")


class EntryError(CodedError, ValueError):
    """A field that breaks the rules; `.code` is the API error code, the text says why."""


def callsign_clean(value: object) -> str:
    """Upper-cased callsign; in URLs and host names `-` stands for `/` (VE3-W1AW-P)."""
    if not isinstance(value, str):
        raise EntryError("bad_callsign", "the callsign must be a string")
    callsign = value.strip().upper().replace("-", "/")
    if len(callsign) > 16 or not CALLSIGN_RE.match(callsign):
        raise EntryError("bad_callsign", f"{value[:40]!r} is not an amateur callsign "
                                         "(e.g. W1AW, DL1ABC, VE3/W1AW/P)")
    return callsign


def callsign_for_url(callsign: str) -> str:
    return callsign.replace("/", "-")


def path_clean(value: object) -> str:
    """A content path: 1-255 characters, `/`-separated segments, no `.` or `..` segment, no
    empty segment, no control characters, no backslash, `?` or `#`; one leading `/` is dropped.
    The first segment may not start with `@` (reserved for version URLs)."""
    if not isinstance(value, str):
        raise EntryError("bad_path", "the path must be a string")
    path = value[1:] if value.startswith("/") else value
    if not path:
        raise EntryError("bad_path", "the path is empty; give one such as 'notices/shelters.html'")
    if len(path) > MAX_PATH_LENGTH:
        raise EntryError("bad_path", f"the path has {len(path)} characters; at most "
                                     f"{MAX_PATH_LENGTH} are allowed")
    for char in path:
        if unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}:
            raise EntryError("bad_path", f"the path contains the control character "
                                         f"U+{ord(char):04X}")
    for forbidden in ("\\", "?", "#"):
        if forbidden in path:
            raise EntryError("bad_path", f"the path may not contain {forbidden!r}")
    segments = path.split("/")
    for segment in segments:
        if segment in {".", ".."}:
            raise EntryError("bad_path", f"the path may not contain a {segment!r} segment")
        if segment == "" and segment is not segments[-1]:
            raise EntryError("bad_path", "the path may not contain an empty segment ('//')")
    if path.startswith("@"):
        raise EntryError("bad_path", "a path may not start with '@' (reserved for versions)")
    return path


def content_type_clean(value: object) -> str:
    if value is None or value == "":
        return "application/octet-stream"
    if not isinstance(value, str) or len(value) > 255 or not CONTENT_TYPE_RE.match(value.strip()):
        raise EntryError("bad_content_type", f"{str(value)[:60]!r} is not a media type such as "
                                             "'text/html; charset=utf-8'")
    return value.strip()


def priority_clean(value: object) -> int:
    try:
        priority = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        priority = 0
    if isinstance(value, bool) or not 1 <= priority <= 4 or str(value).strip() != str(priority):
        raise EntryError("bad_priority", f"priority {str(value)[:20]!r} is not 1 (essential), "
                                         "2 (popular), 3 (standard) or 4 (personal)")
    return priority


@dataclass(frozen=True)
class EntryFields:
    """The signed fields of one version."""

    origin_callsign: str
    origin_station_id: str
    path: str
    content_hash: str
    size: int
    content_type: str
    priority: int
    created: str
    modified: str
    supersedes: str
    deleted: bool

    def canonical(self) -> bytes:
        lines = [
            CANONICAL_PREFIX,
            f"origin:{self.origin_callsign}",
            f"station:{self.origin_station_id}",
            f"path:{self.path}",
            f"hash:{self.content_hash}",
            f"size:{self.size}",
            f"type:{self.content_type}",
            f"priority:{self.priority}",
            f"created:{self.created}",
            f"modified:{self.modified}",
            f"supersedes:{self.supersedes}",
            f"deleted:{int(self.deleted)}",
        ]
        return ("\n".join(lines) + "\n").encode("utf-8")

    def entry_id(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    def modified_timestamp(self) -> Timestamp:
        return Timestamp.parse(self.modified)

    def check(self) -> EntryFields:
        """Validate every field; raises EntryError naming the first bad one."""
        if callsign_clean(self.origin_callsign) != self.origin_callsign:
            raise EntryError("bad_callsign", "the origin callsign is not in canonical form")
        if not STATION_ID_RE.match(self.origin_station_id):
            raise EntryError("bad_entry", "origin station id must be 32 hex digits")
        if path_clean(self.path) != self.path:
            raise EntryError("bad_path", "the path is not in canonical form")
        if self.deleted:
            if self.content_hash or self.size:
                raise EntryError("bad_entry", "a tombstone has no hash and size 0")
        elif not HEX64_RE.match(self.content_hash):
            raise EntryError("bad_entry", "content hash must be 64 lowercase hex digits")
        if not isinstance(self.size, int) or not 0 <= self.size <= MAX_ENTRY_SIZE:
            raise EntryError("too_large", f"size must be 0..{MAX_ENTRY_SIZE} bytes")
        if content_type_clean(self.content_type) != self.content_type:
            raise EntryError("bad_content_type", "the content type is not in canonical form")
        priority_clean(self.priority)
        try:
            created, modified = Timestamp.parse(self.created), Timestamp.parse(self.modified)
        except ClockError as exc:
            raise EntryError("bad_timestamp", str(exc)) from exc
        if modified < created or modified.packed >= 1 << 63:
            raise EntryError("bad_timestamp", "modified must not be before created")
        if self.supersedes and not HEX64_RE.match(self.supersedes):
            raise EntryError("bad_entry", "supersedes must be an entry id (64 hex digits)")
        return self


def winner_key(modified_packed: int, modified: str, origin_station_id: str,
               entry_id: str) -> tuple[int, str, str]:
    """Sort key of a version among the heads of its path: latest HLC, then station, then id."""
    node = modified.split("-", 1)[1] if "-" in modified else ""
    return (modified_packed, node or origin_station_id, entry_id)
