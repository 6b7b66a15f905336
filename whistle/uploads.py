"""Uploaded files: sealed as their bytes arrive, kept as ciphertext in the blob store.

Werkzeug's default writes any upload over 500 KiB to a plaintext temporary file. Here the
request class hands the multipart parser a `SealingUpload` instead: every write goes
through `crypto.FileSealer` into a file in the blob store's `incoming/` folder, so memory
holds at most one 64 KiB chunk and no plaintext byte reaches the disk.

A file over the size cap, past the number of files allowed, or one the disk would not take
(full, failing) is not an error inside the parser: its bytes are dropped, whatever was
written of it is deleted, and it is flagged, so the form's text still arrives and the
reporter sees a clear message with what they typed kept.

Incoming blobs (`storage.BlobStore`) become permanent only when a service `claim`s them
just before its commit; whatever a request leaves unclaimed is deleted when the request ends.

One page takes a file that must never reach the disk at all, sealed or not, and that the
server must read back: the recovery key file on the custodian's page. Its endpoint is in
`MEMORY_UPLOADS`: its file is read into memory, within a small cap (and the page's body
cap, bodies.py), and wiped when the view is done with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
from typing import BinaryIO, Sequence

from flask import Flask, Request, current_app, g, request

from . import crypto
from .bodies import CappedFormDataParser
from .cleaning import AS_SENT, MetadataCleaner
from .storage import BlobStore

log = logging.getLogger(__name__)


class UploadNotKept(Exception):
    """A file was asked to be stored that was refused or that the disk did not take."""


class SealingUpload:
    """The file-like object Werkzeug writes one uploaded file into."""

    def __init__(
        self,
        store: BlobStore | None,
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
        #: Why this file was not kept: "too_large", "too_many", "unnamed", "storage" (the
        #: disk refused a write: full or failing), or None.
        self.refused = refused
        self.blob_name: str | None = None
        self.claimed = False
        self._store = store
        self._file: BinaryIO | None = None
        self._sealer: crypto.FileSealer | None = None
        self._cleaner = MetadataCleaner()
        #: SHA-256 of the bytes stored (after metadata removal), for a signed message to name.
        self._digest = hashlib.sha256()
        if refused is None and store is not None:
            # Sealed to nobody yet: who may open it, and for which case, is fixed when a
            # service records it (`wrap_for`), once the case is known.
            try:
                self.blob_name, self._file = store.new_incoming()
                self._sealer = crypto.FileSealer(self._file)
            except OSError as exc:
                self._refuse_storage(exc)

    @property
    def size(self) -> int:
        """Bytes stored (after metadata removal), or received if nothing is stored."""
        return self._sealer.plaintext_size if self._sealer is not None else self.received

    @property
    def photo_checked(self) -> bool:
        """True for a photo walked to its end with certainty: its metadata was removed, or
        it had none. Anything else (other files, photos not understood) is stored as sent."""
        return self._cleaner.verdict != AS_SENT

    @property
    def cleaned(self) -> str | None:
        """The photo's format when metadata was found and removed, else None."""
        return self._cleaner.cleaned

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def wrap_for(self, recipients: Sequence[crypto.PublicKey], context: crypto.Context) -> bytes:
        """The wrap block that lets `recipients` open this file, bound to `context`;
        `UploadNotKept` if it was refused or the disk did not take it."""
        self._finish()
        if self._sealer is None or self.refused is not None:
            raise UploadNotKept(self.refused or "no file")
        return self._sealer.wrap_for(recipients, context)

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
                try:
                    self._store_plain(self._cleaner.feed(data))
                except OSError as exc:
                    self._refuse_storage(exc)
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

    def _store_plain(self, data: bytes) -> None:
        self._digest.update(data)
        self._sealer.write(data)

    def _finish(self) -> None:
        if self._sealer is not None and self._file is not None and not self._file.closed:
            try:
                self._store_plain(self._cleaner.close())
                self._sealer.close()
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
            except OSError as exc:
                self._refuse_storage(exc)

    def _refuse_storage(self, exc: OSError) -> None:
        # The error's kind only: its text names the file's path.
        log.error("the blob store refused an upload (%s, errno %s); nothing of it is kept", type(exc).__name__, exc.errno)
        self.refused = "storage"
        self.discard()

    def discard(self) -> None:
        """Close and delete whatever was written of this file (never a claimed one)."""
        if self._file is not None and not self._file.closed:
            # A full disk fails the flush inside close(); the descriptor is closed anyway.
            with contextlib.suppress(OSError):
                self._file.close()
        if self.blob_name and self._store is not None and not self.claimed:
            try:
                self._store.discard_incoming(self.blob_name)
            except OSError as exc:  # left for `whistle sweep`: it is ciphertext
                log.error("could not delete an unclaimed upload (%s); `whistle sweep` will", type(exc).__name__)
        self._sealer = None

    def claim(self) -> str:
        """Make the file permanent and return its blob name; `UploadNotKept` if it was
        refused or the disk did not take it, `OSError` if the move failed."""
        self._finish()
        store, name = self._store, self.blob_name
        if self.refused is not None or store is None or name is None:
            raise UploadNotKept(self.refused or "no file")
        store.claim(name)
        self.claimed = True
        return name


#: endpoint -> the largest file it reads into memory (a key file is about 8 KiB).
MEMORY_UPLOADS = {"officer_access.certify": 32 * 1024}


class MemoryUpload(io.BytesIO):
    """A small uploaded file kept in memory only; past `max_bytes` it is dropped and
    flagged `refused`."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.received = 0
        self.refused: str | None = None

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.received += len(data)
        if self.refused is None and self.received > self.max_bytes:
            self.refused = "too_large"
            self.wipe()
        elif self.refused is None:
            super().write(data)
        return len(data)

    def wipe(self) -> None:
        """Overwrite what was kept (Python may still hold copies it made: best effort)."""
        size = self.getbuffer().nbytes
        self.seek(0)
        super().write(bytes(size))
        self.seek(0)
        self.truncate()


def memory_upload(field: str) -> MemoryUpload | None:
    """The file sent in `field` to a page of `MEMORY_UPLOADS`; None if none was sent."""
    stored = request.files.get(field)
    stream = stored.stream if stored is not None else None
    if not isinstance(stream, MemoryUpload) or (not stored.filename and stream.received == 0):
        return None
    return stream


class SealingRequest(Request):
    """Flask's request, but uploads are sealed as they stream in (see module docstring),
    and a body is parsed only within its page's cap (bodies.py)."""

    form_data_parser_class = CappedFormDataParser

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> SealingUpload:  # type: ignore[override]
        app = current_app
        in_memory = MEMORY_UPLOADS.get(self.endpoint or "")
        if in_memory is not None:
            return MemoryUpload(in_memory)  # type: ignore[return-value]
        settings = app.extensions["whistle.settings"]
        uploads: list[SealingUpload] = g.setdefault("sealing_uploads", [])
        kept = [u for u in uploads if u.refused is None and not u.is_empty_field]
        if not filename:  # an empty file input, or a part no browser would send
            upload = SealingUpload(None, filename, content_type, 0)
        elif len(kept) >= settings.max_files:
            upload = SealingUpload(None, filename, content_type, 0, refused="too_many")
        else:
            upload = SealingUpload(app.extensions["whistle.blobs"], filename, content_type, settings.max_file_bytes)
        uploads.append(upload)
        return upload


def request_uploads() -> list[SealingUpload]:
    """The files of this request, in the order they arrived (empty file inputs left out)."""
    return [u for u in g.get("sealing_uploads", []) if not u.is_empty_field]


def _discard_unclaimed(_exc: BaseException | None) -> None:
    for upload in g.pop("sealing_uploads", []):
        if not upload.claimed:
            upload.discard()


def blob_store() -> BlobStore:
    """The app's blob store."""
    return current_app.extensions["whistle.blobs"]


def init_app(app: Flask, store: BlobStore) -> None:
    app.request_class = SealingRequest
    app.extensions["whistle.blobs"] = store
    app.teardown_appcontext(_discard_unclaimed)
