"""Removing identifying metadata from photos while they stream in, before they are sealed.

A phone photo carries, in its metadata, where it was taken, when to the second, and the
make and serial number of the camera: enough to identify a reporter. JPEG and PNG keep
that metadata in segments (JPEG) or chunks (PNG) apart from the picture itself, so it can
be dropped as the bytes pass, with memory flat in the file size and without re-encoding
the picture (the pixels reaching the officers are exactly those sent).

Dropped: JPEG APP1 (Exif, XMP), APP3-APP13 and APP15 (maker, Photoshop/IPTC, Ducky...) and
comments; PNG tEXt, zTXt, iTXt, eXIf and tIME. Kept: what decoding needs (JPEG APP0 JFIF,
APP2 ICC colour profile, APP14 Adobe colour transform; every other PNG chunk).
Anything else (PDF, office documents, video, a file that is not what it claims) passes
unchanged, and the reporter is told which files were cleaned and which were not.
"""

from __future__ import annotations

import struct

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_JPEG_KEEP_APP = {0xE0, 0xE2, 0xEE}  # APP0 JFIF, APP2 ICC, APP14 Adobe
_PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


class _Passthrough:
    kind: str | None = None

    def feed(self, data: bytes) -> bytes:
        return data

    def close(self) -> bytes:
        return b""


class _SegmentFilter:
    """Walks a file made of length-prefixed segments after a fixed header, passing kept
    segments on and dropping the others, as the bytes arrive. Subclasses say, for the
    segment at the head of the buffer, how long it is and whether to keep it."""

    kind: str
    header_len: int

    def __init__(self) -> None:
        self._buf = bytearray()
        self._header_done = False
        self._copy = 0  # bytes of a kept segment still to pass on
        self._skip = 0  # bytes of a dropped segment still to discard
        self._passing = False  # past the segments (or lost in them): the rest passes as is
        self.cleaned = False

    def _next_segment(self) -> tuple[int, bool] | None | bool:
        """(length, keep) of the segment at the head of the buffer; None to wait for more
        bytes; False to stop filtering and pass everything else on unchanged."""
        raise NotImplementedError

    def feed(self, data: bytes) -> bytes:
        if self._passing:
            return data
        self._buf += data
        out = bytearray()
        while True:
            if self._copy:
                n = min(self._copy, len(self._buf))
                out += self._buf[:n]
                del self._buf[:n]
                self._copy -= n
            if self._skip:
                n = min(self._skip, len(self._buf))
                del self._buf[:n]
                self._skip -= n
            if self._copy or self._skip:
                return bytes(out)
            if not self._header_done:
                if len(self._buf) < self.header_len:
                    return bytes(out)
                self._header_done = True
                self._copy = self.header_len
                continue
            segment = self._next_segment()
            if segment is None:
                return bytes(out)
            if segment is False:
                self._passing = True
                out += self._buf
                self._buf = bytearray()
                return bytes(out)
            length, keep = segment
            if keep:
                self._copy = length
            else:
                self.cleaned = True
                self._skip = length

    def close(self) -> bytes:
        rest = bytes(self._buf)
        self._buf = bytearray()
        return rest


class _JpegCleaner(_SegmentFilter):
    """Drops metadata segments up to the start of scan; the scan data passes through."""

    kind = "jpeg"
    header_len = 2  # SOI

    def _next_segment(self) -> tuple[int, bool] | None | bool:
        if len(self._buf) < 4:
            return None
        if self._buf[0] != 0xFF:
            return False
        marker = self._buf[1]
        if marker == 0xFF:  # a fill byte
            return (1, True)
        if marker == 0xDA or marker == 0xD9 or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            return False  # start of scan (or no header segments): the rest is picture
        (length,) = struct.unpack(">H", self._buf[2:4])
        if length < 2:
            return False
        drop = (0xE0 <= marker <= 0xEF and marker not in _JPEG_KEEP_APP) or marker == 0xFE
        return (2 + length, not drop)


class _PngCleaner(_SegmentFilter):
    """Drops text, time and Exif chunks; passes every other chunk through whole."""

    kind = "png"
    header_len = len(PNG_MAGIC)

    def _next_segment(self) -> tuple[int, bool] | None | bool:
        if len(self._buf) < 8:
            return None
        (length,) = struct.unpack(">I", self._buf[:4])
        kind = bytes(self._buf[4:8])
        if length > 0x7FFFFFFF or not kind.isalpha():
            return False
        return (12 + length, kind not in _PNG_DROP)


class MetadataCleaner:
    """Decides from a file's first bytes (never its name or declared type) whether it is a
    JPEG or PNG to clean, then filters what follows."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._inner: _Passthrough | _SegmentFilter | None = None

    @property
    def cleaned(self) -> str | None:
        """'jpeg' or 'png' when metadata was found and removed, else None."""
        inner = self._inner
        return inner.kind if inner is not None and getattr(inner, "cleaned", False) else None

    @property
    def kind(self) -> str | None:
        return self._inner.kind if self._inner is not None else None

    def feed(self, data: bytes) -> bytes:
        if self._inner is None:
            self._head += data
            if len(self._head) < len(PNG_MAGIC):
                return b""
            head = bytes(self._head)
            self._head = bytearray()
            if head.startswith(JPEG_MAGIC):
                self._inner = _JpegCleaner()
            elif head.startswith(PNG_MAGIC):
                self._inner = _PngCleaner()
            else:
                self._inner = _Passthrough()
            return self._inner.feed(head)
        return self._inner.feed(data)

    def close(self) -> bytes:
        if self._inner is None:  # shorter than any signature
            head = bytes(self._head)
            self._head = bytearray()
            self._inner = _Passthrough()
            return head
        return self._inner.close()
