"""Private key files in the data dir: created atomically with mode 0600, never overwritten.

Plain module (no Django). A key is written to a temporary file opened with O_EXCL and mode 0600,
fsynced, then hard-linked to its final name: two processes starting at once end with the same key
(the loser of the link reads the winner's file), and a crash never leaves a half-written key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def write_new_secret_file(path: Path, content: bytes) -> bool:
    """Create `path` with `content` (mode 0600) unless it exists; True if this call created it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def replace_secret_file(path: Path, content: bytes) -> None:
    """Write `content` to `path` atomically with mode 0600, replacing what was there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def load_or_create_ed25519(path: Path) -> ed25519.Ed25519PrivateKey:
    """The station key: raw 32 private bytes in `path`, created on first use."""
    if not path.exists():
        key = ed25519.Ed25519PrivateKey.generate()
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        write_new_secret_file(path, raw)
    raw = path.read_bytes()
    if len(raw) != 32:
        raise ValueError(f"{path} should hold a raw 32-byte Ed25519 key, it holds {len(raw)} "
                         "bytes; restore it from a backup or move it away to make a new one.")
    return ed25519.Ed25519PrivateKey.from_private_bytes(raw)


def public_raw(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)
