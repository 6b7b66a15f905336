"""The blob store: where sealed file contents live, behind one interface.

Callers ask for "the blob store" and never for a folder, so that a second backend (an
S3-compatible object store, say) can take the place of the local one without touching the
services. A blob is ciphertext only (`crypto.FileSealer` writes it); the store never sees a
key or a plaintext byte, and this module imports neither Flask nor the crypto module.

A blob's life: the upload streams into a new *incoming* blob; the service that records it
*claims* it just before its commit (and *deletes* it again if the commit fails); a blob
nobody claimed is *discarded* when its request ends; `sweep` removes what a crash left.
"""

from __future__ import annotations

import abc
import datetime as dt
import os
import secrets
import time
from pathlib import Path
from typing import BinaryIO

#: Blob names are 32 lowercase hex digits (16 random bytes): nothing about the file.
NAME_LEN = 32
_HEX = frozenset("0123456789abcdef")


def valid_name(name: str) -> bool:
    return isinstance(name, str) and len(name) == NAME_LEN and set(name) <= _HEX


class BlobStore(abc.ABC):
    """What the services need of a store of sealed files."""

    @abc.abstractmethod
    def new_incoming(self) -> tuple[str, BinaryIO]:
        """A new, empty incoming blob: its name and a binary file to write it through."""

    @abc.abstractmethod
    def claim(self, name: str) -> None:
        """Make an incoming blob permanent; done before the commit that records it."""

    @abc.abstractmethod
    def discard_incoming(self, name: str) -> None:
        """Forget an incoming blob that will not be recorded (missing is fine)."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Delete a stored blob (missing is fine)."""

    @abc.abstractmethod
    def open(self, name: str) -> BinaryIO:
        """A stored blob, for reading; `FileNotFoundError` if there is none by that name."""

    @abc.abstractmethod
    def blur_times(self, name: str, day: dt.date) -> None:
        """Make whatever times the backend keeps for a blob say no more than `day`."""

    @abc.abstractmethod
    def sweep(self, referenced: set[str], older_than_seconds: float = 3600) -> int:
        """Delete blobs no record names that are older than the longest request; how many."""

    def incoming_count(self) -> int:
        """Incoming blobs now present (for tests and health checks)."""
        return 0


class LocalBlobStore(BlobStore):
    """Blobs as files in one folder, incoming ones in its `incoming/` subfolder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.incoming = self.root / "incoming"
        self.incoming.mkdir(parents=True, exist_ok=True, mode=0o700)

    def new_incoming(self) -> tuple[str, BinaryIO]:
        name = secrets.token_hex(NAME_LEN // 2)
        fd = os.open(self.incoming / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return name, os.fdopen(fd, "wb")

    def claim(self, name: str) -> None:
        os.replace(self.incoming / self._checked(name), self.root / name)

    def blur_times(self, name: str, day: dt.date) -> None:
        # The inode's change time cannot be set: docs/data.md says what that still tells.
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc).timestamp()
        os.utime(self.root / self._checked(name), (midnight, midnight))

    def discard_incoming(self, name: str) -> None:
        (self.incoming / self._checked(name)).unlink(missing_ok=True)

    def delete(self, name: str) -> None:
        (self.root / self._checked(name)).unlink(missing_ok=True)

    def open(self, name: str) -> BinaryIO:
        return open(self.root / self._checked(name), "rb")

    def sweep(self, referenced: set[str], older_than_seconds: float = 3600) -> int:
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in [*self.incoming.iterdir(), *self.root.iterdir()]:
            if path.is_file() and path.name not in referenced and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def incoming_count(self) -> int:
        return sum(1 for p in self.incoming.iterdir() if p.is_file())

    @staticmethod
    def _checked(name: str) -> str:
        """Only names this store made: never a path that could leave the folder."""
        if not valid_name(name):
            raise FileNotFoundError("not a blob name")
        return name
