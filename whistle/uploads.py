"""Uploaded files: sealed as their bytes arrive, kept as ciphertext in the blob store.

Werkzeug's default writes any upload over 500 KiB to a plaintext temporary file. Here the
request class hands the multipart parser a `SealingUpload` instead: every write goes
through `crypto.FileSealer` into a file in the blob store's `incoming/` folder, so memory
holds at most one 64 KiB chunk and no plaintext byte reaches the disk.

A file over the size cap, or past the number of files allowed, is not an error inside the
parser: its bytes are dropped and it is flagged, so the form's text still arrives and the
reporter sees a clear message with what they typed kept.

Incoming blobs become permanent only when a service `claim`s them just before its commit;
whatever a request leaves unclaimed is deleted when the request ends.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import time
from pathlib import Path
from typing import BinaryIO

from flask import Flask, Request, current_app, g

from . import crypto, db, keyring
from .cleaning import MetadataCleaner


class BlobStore:
    """Sealed file contents, one file per attachment, named by random hex."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.incoming = self.root / "incoming"
        self.incoming.mkdir(parents=True, exist_ok=True, mode=0o700)

    def new_incoming(self) -> tuple[str, BinaryIO]:
        name = secrets.token_hex(16)
        fd = os.open(self.incoming / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return name, os.fdopen(fd, "wb")

    def claim(self, name: str) -> None:
        """Move an incoming blob into the store; done before the commit that records it."""
        os.replace(self.incoming / name, self.root / name)

    def blur_times(self, name: str, day: dt.date) -> None:
        """Set a stored file's access and modification times to the start of its day, so
        they say no more than the database's dates (the inode's change time cannot be
        set: docs/data.md)."""
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc).timestamp()
        os.utime(self.root / name, (midnight, midnight))

    def discard_incoming(self, name: str) -> None:
        (self.incoming / name).unlink(missing_ok=True)

    def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)

    def open(self, name: str) -> BinaryIO:
        if not name or not all(c in "0123456789abcdef" for c in name):
            raise FileNotFoundError(name)
        return open(self.root / name, "rb")

    def sweep(self, referenced: set[str], older_than_seconds: float = 3600) -> int:
        """Delete blobs that no record names and that are older than the longest request:
        left by a crash between sealing and commit. They are ciphertext anyway."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in [*self.incoming.iterdir(), *self.root.iterdir()]:
            if path.is_file() and path.name not in referenced and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


class SealingUpload:
    """The file-like object Werkzeug writes one uploaded file into."""

    def __init__(
        self,
        store: BlobStore | None,
        recipients: list[crypto.PublicKey],
        filename: str | None,
        content_type: str | None,
        max_bytes: int,
        *,
        refused: str | None = None,
    ) -> None:
        self.filename = filename or ""
        self.content_type = content_type or "application/octet-stream"
        self.max_bytes = max_bytes
        #: Bytes received from the client (the cap applies to these).
        self.received = 0
        #: Why this file was not kept: "too_large", "too_many", or None.
        self.refused = refused
        self.blob_name: str | None = None
        self.claimed = False
        self._store = store
        self._file: BinaryIO | None = None
        self._sealer: crypto.FileSealer | None = None
        self._cleaner = MetadataCleaner()
        if refused is None and store is not None:
            self.blob_name, self._file = store.new_incoming()
            self._sealer = crypto.FileSealer(self._file, recipients)

    @property
    def size(self) -> int:
        """Bytes stored (after metadata removal), or received if nothing is stored."""
        return self._sealer.plaintext_size if self._sealer is not None else self.received

    @property
    def photo_checked(self) -> bool:
        """True for a JPEG or PNG: its metadata was removed (or there was none)."""
        return self._cleaner.kind is not None

    @property
    def cleaned(self) -> str | None:
        return self._cleaner.cleaned

    @property
    def wraps(self) -> bytes:
        return self._sealer.wraps if self._sealer else b""

    @property
    def sealed_size(self) -> int:
        return crypto.sealed_file_size(self.size)

    @property
    def is_empty_field(self) -> bool:
        """An `<input type=file>` left empty: browsers send a nameless, empty part."""
        return not self.filename and self.received == 0

    def write(self, data: bytes) -> int:
        self.received += len(data)
        if self.refused is None and self._sealer is not None:
            if self.received > self.max_bytes:
                self.refused = "too_large"
                self.discard()
            else:
                self._sealer.write(self._cleaner.feed(data))
        elif self.refused is None and self.received:
            self.refused = "unnamed"  # data in a part without a file name: not a browser upload
        return len(data)

    def seek(self, *_args: object) -> int:
        """Werkzeug seeks to 0 when the part ends: that is where the last chunk is sealed."""
        self._finish()
        return 0

    def read(self, *_args: object) -> bytes:
        return b""  # the plaintext is gone; nothing can read it back

    readline = read

    def close(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if self._sealer is not None and self._file is not None and not self._file.closed:
            self._sealer.write(self._cleaner.close())
            self._sealer.close()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def discard(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        if self.blob_name and self._store is not None and not self.claimed:
            self._store.discard_incoming(self.blob_name)
        self._sealer = None

    def claim(self) -> None:
        assert self._store is not None and self.blob_name is not None and self.refused is None
        self._finish()
        self._store.claim(self.blob_name)
        self.claimed = True


class SealingRequest(Request):
    """Flask's request, but uploads are sealed as they stream in (see module docstring)."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> SealingUpload:  # type: ignore[override]
        app = current_app
        settings = app.extensions["whistle.settings"]
        uploads: list[SealingUpload] = g.setdefault("sealing_uploads", [])
        kept = [u for u in uploads if u.refused is None and not u.is_empty_field]
        if not filename:  # an empty file input, or a part no browser would send
            upload = SealingUpload(None, [], filename, content_type, 0)
        elif len(kept) >= settings.max_files:
            upload = SealingUpload(None, [], filename, content_type, 0, refused="too_many")
        else:
            upload = SealingUpload(
                app.extensions["whistle.blobs"],
                _request_recipients(),
                filename,
                content_type,
                settings.max_file_bytes,
            )
        uploads.append(upload)
        return upload


def _request_recipients() -> list[crypto.PublicKey]:
    """The recipients new files are sealed to, read once per request."""
    if "upload_recipients" not in g:
        # Not in the request's session, which would keep its connection while the rest of
        # the upload arrives: a few dozen slow uploads would hold every one in the pool.
        with db.short_session() as session:
            g.upload_recipients = keyring.recipients(session)
    return g.upload_recipients


def request_uploads() -> list[SealingUpload]:
    """The files of this request, in the order they arrived (empty file inputs left out)."""
    return [u for u in g.get("sealing_uploads", []) if not u.is_empty_field]


def _discard_unclaimed(_exc: BaseException | None) -> None:
    for upload in g.pop("sealing_uploads", []):
        if not upload.claimed:
            upload.discard()


def init_app(app: Flask, store: BlobStore) -> None:
    app.request_class = SealingRequest
    app.extensions["whistle.blobs"] = store
    app.teardown_appcontext(_discard_unclaimed)
