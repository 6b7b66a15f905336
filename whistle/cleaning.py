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


class _JpegCleaner:
    """Drops metadata segments up to the start of scan; passes the scan data through."""

    kind = "jpeg"

    def __init__(self) -> None:
        self._buf = bytearray()
        self._started = False
        self._skip = 0  # bytes of a dropped segment still to discard
        self._passing = False  # after SOS, or after anything unexpected
        self.cleaned = False

    def feed(self, data: bytes) -> bytes:
        if self._passing:
            return data
        self._buf += data
        out = bytearray()
        while True:
            if self._skip:
                n = min(self._skip, len(self._buf))
                del self._buf[:n]
                self._skip -= n
                if self._skip:
                    return bytes(out)
            if not self._started:
                if len(self._buf) < 2:
                    return bytes(out)
                out += self._buf[:2]  # SOI
                del self._buf[:2]
                self._started = True
            if len(self._buf) < 4:
                return bytes(out)
            if self._buf[0] != 0xFF:
                return self._give_up(out)
            marker = self._buf[1]
            if marker == 0xFF:  # fill byte
                out.append(0xFF)
                del self._buf[:1]
                continue
            if marker == 0xDA or marker in (0xD9,) or 0xD0 <= marker <= 0xD7 or marker == 0x01:
                return self._give_up(out)  # start of scan (or no header segments): the rest is picture
            (length,) = struct.unpack(">H", self._buf[2:4])
            if length < 2:
                return self._give_up(out)
            is_app = 0xE0 <= marker <= 0xEF
            if (is_app and marker not in _JPEG_KEEP_APP) or marker == 0xFE:
                self.cleaned = True
                self._skip = 2 + length
                continue
            if len(self._buf) < 2 + length:
                if len(self._buf) > 2 + 65535:
                    return self._give_up(out)
                return bytes(out)
            out += self._buf[: 2 + length]
            del self._buf[: 2 + length]

    def _give_up(self, out: bytearray) -> bytes:
        self._passing = True
        out += self._buf
        self._buf = bytearray()
        return bytes(out)

    def close(self) -> bytes:
        rest = bytes(self._buf)
        self._buf = bytearray()
        return rest


class _PngCleaner:
    """Drops text, time and Exif chunks; passes every other chunk through whole."""

    kind = "png"

    def __init__(self) -> None:
        self._buf = bytearray()
        self._signature_done = False
        self._skip = 0
        self._copy = 0  # bytes of a kept chunk still to pass through
        self._passing = False
        self.cleaned = False

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
                if self._copy:
                    return bytes(out)
            if self._skip:
                n = min(self._skip, len(self._buf))
                del self._buf[:n]
                self._skip -= n
                if self._skip:
                    return bytes(out)
            if not self._signature_done:
                if len(self._buf) < 8:
                    return bytes(out)
                out += self._buf[:8]
                del self._buf[:8]
                self._signature_done = True
            if len(self._buf) < 8:
                return bytes(out)
            (length,) = struct.unpack(">I", self._buf[:4])
            kind = bytes(self._buf[4:8])
            if length > 0x7FFFFFFF or not kind.isalpha():
                self._passing = True
                out += self._buf
                self._buf = bytearray()
                return bytes(out)
            if kind in _PNG_DROP:
                self.cleaned = True
                self._skip = 12 + length
            else:
                self._copy = 12 + length

    def close(self) -> bytes:
        rest = bytes(self._buf)
        self._buf = bytearray()
        return rest


class MetadataCleaner:
    """Decides from a file's first bytes (never its name or declared type) whether it is a
    JPEG or PNG to clean, then filters what follows."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._inner: _Passthrough | _JpegCleaner | _PngCleaner | None = None

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
