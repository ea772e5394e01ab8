"""A content-addressed blob store: each body is a file named by its SHA-256.

Writes are atomic: the body streams into a private temporary file (hashed and size-checked on
the way), is fsynced, then renamed into place and the directory fsynced. A kill -9 at any moment
leaves either no blob or the whole blob under its name; a leftover temporary file is invisible
to readers and removed by `sweep_temp`. The database records an entry's body only after
`write` has returned, so no entry ever points at a missing or partial body.

Layout: `<root>/<first two hex digits>/<64 hex digits>`, temporaries in `<root>/tmp/`.
No Django imports.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from catalog.errors import CodedError

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 256 * 1024


class BlobError(CodedError):
    """A body that cannot be stored; `.code` is the API error code."""


@dataclass(frozen=True)
class StoredBlob:
    hash: str
    size: int
    path: Path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path_for(self, blob_hash: str) -> Path:
        if not isinstance(blob_hash, str) or not _HASH_RE.match(blob_hash):
            raise BlobError("bad_hash", "a blob hash is 64 lowercase hex digits")
        return self.root / blob_hash[:2] / blob_hash

    def exists(self, blob_hash: str) -> bool:
        return self.path_for(blob_hash).is_file()

    def open(self, blob_hash: str) -> BinaryIO:
        return open(self.path_for(blob_hash), "rb")

    def size(self, blob_hash: str) -> int:
        return self.path_for(blob_hash).stat().st_size

    def write(self, chunks: Iterable[bytes], *, max_size: int, expected_hash: str | None = None,
              progress: Callable[[int], None] | None = None) -> StoredBlob:
        """Store a body from `chunks`. Raises BlobError `too_large` past `max_size` bytes and
        `hash_mismatch` when `expected_hash` is given and differs; nothing is stored then."""
        name = self.tmp / f"{secrets.token_hex(12)}.part"
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    if not chunk:
                        continue
                    size += len(chunk)
                    if size > max_size:
                        raise BlobError("too_large", f"the body is larger than the limit of "
                                                     f"{max_size} bytes")
                    digest.update(chunk)
                    handle.write(chunk)
                    if progress is not None:
                        progress(size)
                handle.flush()
                os.fsync(handle.fileno())
            blob_hash = digest.hexdigest()
            if expected_hash is not None and blob_hash != expected_hash:
                raise BlobError("hash_mismatch", f"the body hashes to {blob_hash}, not "
                                                 f"{expected_hash}")
            final = self.path_for(blob_hash)
            final.parent.mkdir(exist_ok=True, mode=0o700)
            if final.exists():
                name.unlink()
            else:
                os.replace(name, final)
                _fsync_dir(final.parent)
            return StoredBlob(blob_hash, size, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                name.unlink()
            raise

    def write_file(self, handle: BinaryIO, **kwargs: object) -> StoredBlob:
        return self.write(iter(lambda: handle.read(CHUNK), b""), **kwargs)  # type: ignore[arg-type]

    def delete(self, blob_hash: str) -> bool:
        try:
            self.path_for(blob_hash).unlink()
        except FileNotFoundError:
            return False
        return True

    def verify(self, blob_hash: str) -> bool:
        """Re-hash a stored body; False when it is missing or damaged."""
        digest = hashlib.sha256()
        try:
            with self.open(blob_hash) as handle:
                for chunk in iter(lambda: handle.read(CHUNK), b""):
                    digest.update(chunk)
        except FileNotFoundError:
            return False
        return digest.hexdigest() == blob_hash

    def hashes(self) -> Iterator[str]:
        for folder in self.root.iterdir():
            if folder.is_dir() and len(folder.name) == 2:
                for path in folder.iterdir():
                    if _HASH_RE.match(path.name):
                        yield path.name

    def age(self, blob_hash: str) -> float:
        """Seconds since the blob was written (0 if it is gone)."""
        try:
            return time.time() - self.path_for(blob_hash).stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def sweep_temp(self, older_than: float = 3600) -> int:
        """Remove temporary files left by a killed writer (older than `older_than` seconds)."""
        removed = 0
        cutoff = time.time() - older_than
        for path in self.tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime <= cutoff:
                    path.unlink()
                    removed += 1
        return removed
