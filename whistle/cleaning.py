"""Removing identifying metadata from photos while they stream in, before they are sealed.

A phone photo carries, in its metadata, where it was taken, when to the second, and the
make and serial number of the camera: enough to identify a reporter. JPEG (and MPO, the
multi-frame JPEG of phones and 3D cameras), PNG, HEIC/HEIF/AVIF and WebP keep that
metadata in containers apart from the compressed picture, so it can be neutralised as the
bytes pass, with memory flat in the file size and without re-encoding: the compressed
picture reaching the officers is byte for byte the one sent.

How, per format:
- JPEG: a metadata segment keeps its place and its length but becomes an APP15 segment
  full of zeros, so the byte offsets that MPO and Ultra HDR files keep of their later
  frames stay valid. Kept: APP0 JFIF (its thumbnail zeroed), APP2 ICC profile and MPF
  frame index, APP14 Adobe colour transform, and every segment decoding needs. Neutralised:
  every other APPn (Exif, XMP, IPTC, maker data, FlashPix, JUMBF...) and comments, in
  every frame, wherever they stand (before, between or after scans). Bytes no decoder
  reads (junk between segments, vendor trailers after the last frame) are zeroed.
- PNG: only chunks decoding and display need are kept; every other ancillary chunk (text,
  Exif, time, private chunks) is left out, as are bytes after IEND.
- WebP: EXIF, XMP and any chunk not needed to decode become RIFF `JUNK` chunks of zeros of
  the same size, and the VP8X flags stop announcing them.
- HEIF/AVIF: the `meta` box is read whole (it is small); every item that is not a picture
  (Exif, XMP and other `mime` items, URI items) has its data zeroed where `iloc` says it
  lies, and boxes not needed to decode become `free` boxes of zeros. Sizes and offsets
  are kept.

The verdict is positive and explicit: "cleaned" only when the whole file was walked to
its proper end and every metadata container in it neutralised; "nothing_found" when that
walk changed nothing; "as_sent" for anything else. The first thing the walker does not
understand with certainty stops it: the rest passes unchanged and the verdict is
"as_sent". Other files (PDF, office documents, video) pass unchanged, as sent. The
reporter is told which verdict each file got.
"""

from __future__ import annotations

import re
import struct

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

CLEANED = "cleaned"
NOTHING_FOUND = "nothing_found"
AS_SENT = "as_sent"

_HEAD = 12  # bytes needed to tell the formats apart
# Real photos have tens of segments, chunks or boxes (a few thousand at most, for a long
# animation); millions of tiny ones are an attack on the walker's time. Past this many,
# the walker stops and the rest passes as sent, at the speed of a copy.
_PARTS_CAP = 20_000


class _Doubt(Exception):
    """The walker met something it does not understand with certainty."""


class _Walker:
    """Walks one file format as its bytes arrive. Each `_step` looks at the bytes at the
    head of the buffer (at least `_need` of them) and says what to do with the next run:
    pass it on (`_copy`), overwrite it with zeros (`_zero`) or leave it out (`_drop`).
    Only the few bytes a decision needs are ever held, so memory stays flat."""

    kind: str

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # file offset of self._buf[0]
        self._need = 1
        self._copy = 0
        self._zero = 0
        self._drop = 0
        self._lost = False  # past a doubt: the rest passes as it came
        self._changed = False
        self._closed_well = False
        self._parts = 0  # segments, chunks or boxes walked

    def _step(self, buf: bytearray, i: int, out: bytearray) -> int:
        """Decide about the bytes at buf[i:], append any output to out, and return the
        index to go on from (equal to i when the bytes were only looked at). Raise
        `_Doubt` when lost."""
        raise NotImplementedError

    def _ended_well(self) -> bool:
        """Whether the file ended where its format says it may."""
        raise NotImplementedError

    def _count_part(self) -> None:
        self._parts += 1
        if self._parts > _PARTS_CAP:
            raise _Doubt

    def _emit(self, out: bytearray, buf: bytearray, i: int, n: int) -> None:
        out += buf[i : i + n]

    def feed(self, data: bytes) -> bytes:
        if self._lost:
            return bytes(data)
        buf = self._buf
        buf += data
        out = bytearray()  # one buffer, not a list of pieces: tiny segments stay cheap
        i, n = 0, len(buf)
        try:
            while i < n:
                if self._copy:
                    take = min(self._copy, n - i)
                    self._emit(out, buf, i, take)
                    self._copy -= take
                    i += take
                elif self._zero:
                    take = min(self._zero, n - i)
                    if buf.count(0, i, i + take) != take:
                        self._changed = True
                    out += bytes(take)
                    self._zero -= take
                    i += take
                elif self._drop:
                    take = min(self._drop, n - i)
                    self._changed = True
                    self._drop -= take
                    i += take
                elif n - i < self._need:
                    break
                else:
                    i = self._step(buf, i, out)
        except _Doubt:
            self._lost = True
            out += buf[i:]
            i = n
        del buf[:i]
        self._pos += i
        return bytes(out)

    def close(self) -> bytes:
        rest = bytes(self._buf)
        self._buf = bytearray()
        if not self._lost:
            self._closed_well = not rest and not (self._copy or self._zero or self._drop) and self._ended_well()
        return rest

    @property
    def verdict(self) -> str:
        if not self._closed_well:
            return AS_SENT
        return CLEANED if self._changed else NOTHING_FOUND


def _u16(buf: bytes | bytearray, i: int) -> int:
    return (buf[i] << 8) | buf[i + 1]


def _u32(buf: bytes | bytearray, i: int) -> int:
    return int.from_bytes(buf[i : i + 4], "big")


# ---------------------------------------------------------------------------------------
# JPEG and MPO

_NOT_FF = re.compile(rb"[^\xff]")
# The end of entropy-coded data: a 0xFF followed by neither a stuffed zero nor a restart
# marker (a fill byte or a marker). One search, in C, however the data looks.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")

_NEUTRAL_APP = 0xEF  # APP15: no reader gives meaning to one filled with zeros
_SOI, _EOI, _SOS, _TEM, _COM = 0xD8, 0xD9, 0xDA, 0x01, 0xFE
_RST = range(0xD0, 0xD8)
_STANDALONE = frozenset([0x00, _TEM, _EOI, *_RST])  # markers without a length, and 0xFF 0x00
_APP = range(0xE0, 0xF0)
# Segments with a length that decoding needs: SOFn, DHT, DAC, DQT, DNL, DRI, DHP, EXP and
# the JPEG extensions (JPEG-LS and others, 0xF0-0xFD).
_DECODING_SEGMENTS = frozenset([*range(0xC0, 0xD0), *range(0xDB, 0xE0), *range(0xF0, 0xFE)])
_MPF_TAGS = frozenset({0xB000, 0xB001, 0xB002, 0xB003, 0xB004})
_MPF_IMAGE_UIDS = 0xB003


class _Jpeg(_Walker):
    """JPEG frames, with their segments, scans and what lies between and after them."""

    kind = "jpeg"

    def __init__(self) -> None:
        super().__init__()
        self._state = "soi"
        self._need = 2
        self._in_scan = False
        self._frames_seen = 0
        self._later_frames: list[int] = []  # file offsets of frames the MPF index declares

    def _ended_well(self) -> bool:
        return self._state == "after" and not self._later_frames

    def _step(self, buf: bytearray, i: int, out: bytearray) -> int:
        state = self._state
        self._need = 1
        if state == "scan":
            found = _SCAN_END.search(buf, i)
            if found:
                end = found.start()
            else:  # a 0xFF at the end of what arrived waits for the byte after it
                end = len(buf) - (buf[-1] == 0xFF)
            if end > i:
                self._copy = end - i
            elif found:
                self._copy = 1
                self._state = "ff"
            else:
                self._need = 2
            return i
        if state == "marker":
            if buf[i] == 0xFF:
                self._copy = 1
                self._state = "ff"
            else:  # junk between segments: decoders skip it; zero it
                j = buf.find(b"\xff", i)
                self._zero = (len(buf) if j < 0 else j) - i
            return i
        if state == "ff":
            return self._marker(buf, i, out)
        if state == "after":
            return self._after_frame(i)
        # state == "soi": the start of a frame
        if buf[i] != 0xFF or buf[i + 1] != _SOI:
            raise _Doubt
        self._frames_seen += 1
        self._copy = 2
        self._state = "marker"
        self._in_scan = False
        return i

    def _marker(self, buf: bytearray, i: int, out: bytearray) -> int:
        """buf[i] follows one or more 0xFF: a fill byte, a stuffed zero, or a marker."""
        m = buf[i]
        if m == 0xFF:
            found = _NOT_FF.search(buf, i)
            self._copy = (found.start() if found else len(buf)) - i
            return i
        if m in _STANDALONE:
            self._count_part()
        if m == 0x00 and not self._in_scan:  # not a marker: junk, as decoders treat it
            self._zero = 1
            self._state = "marker"
            return i
        if m == 0x00 or m in _RST:
            self._copy = 1
            self._state = "scan" if self._in_scan else "marker"
            return i
        if m == _TEM:
            self._copy = 1
            self._state = "marker"
            self._in_scan = False
            return i
        if m == _EOI:
            out += b"\xd9"
            self._state = "after"
            self._in_scan = False
            return i + 1
        if not (m == _SOS or m == _COM or m in _APP or m in _DECODING_SEGMENTS):
            raise _Doubt  # SOI inside a frame, or a reserved marker
        if len(buf) - i < 3:
            self._need = 3
            return i
        length = _u16(buf, i + 1)
        if length < 2:
            raise _Doubt
        head = min(length - 2, 12)
        if m == _COM or m in _APP:
            if len(buf) - i < 3 + head:
                self._need = 3 + head
                return i
            if m == 0xE2 and buf.startswith(b"MPF\x00", i + 3) and len(buf) - i < 1 + length:
                self._need = 1 + length
                return i
        # From here the segment is dealt with whole: the next thing is a marker or a scan.
        self._count_part()
        self._in_scan = m == _SOS
        self._state = "scan" if m == _SOS else "marker"
        if m == _SOS or m in _DECODING_SEGMENTS:
            self._copy = 1 + length
            return i
        ident = bytes(buf[i + 3 : i + 3 + head])
        if m == 0xE2 and ident.startswith(b"MPF\x00"):
            out += self._mpf(buf[i : i + 1 + length], self._pos + i + 3 + 4)
            return i + 1 + length
        keep = _jpeg_kept_payload(m, ident, length - 2)
        if keep is None:
            out.append(_NEUTRAL_APP)
            out += buf[i + 1 : i + 3]
            self._changed |= m != _NEUTRAL_APP
            self._zero = length - 2
            return i + 3
        self._copy = 3 + keep
        self._zero = length - 2 - keep
        return i

    def _after_frame(self, i: int) -> int:
        """After a frame's EOI: the next frame the MPF index declares, or bytes no decoder
        reads (vendor trailers, padding), which are zeroed."""
        at = self._pos + i
        if not self._later_frames:
            self._zero = len(self._buf) - i
        elif at < self._later_frames[0]:
            self._zero = self._later_frames[0] - at
        elif at == self._later_frames[0]:
            self._later_frames.pop(0)
            self._state = "soi"
            self._need = 2
        else:
            raise _Doubt  # a frame ran into the next one's declared start
        return i

    def _mpf(self, segment: bytearray, base: int) -> bytes:
        """An APP2 MPF segment (marker byte first, without its 0xFF). In the first frame
        it holds the index of the later frames: read their offsets, so that what lies
        between frames can be told from frames. Image unique IDs are zeroed."""
        segment = bytearray(segment)
        if self._frames_seen != 1 or self._later_frames:
            return bytes(segment)
        tiff = 3 + 4  # marker, length, "MPF\0"
        header = bytes(segment[tiff : tiff + 8])  # byte order, offset of the first IFD
        if len(header) < 8:
            raise _Doubt
        if header[:4] == b"MM\x00*":
            fmt = ">"
        elif header[:4] == b"II*\x00":
            fmt = "<"
        else:
            raise _Doubt

        def read(fmt_: str, at: int) -> tuple:
            # Nothing the index points at may lie in its own 8-byte header.
            if at < tiff + 8 or at + struct.calcsize(fmt + fmt_) > len(segment):
                raise _Doubt
            return struct.unpack_from(fmt + fmt_, segment, at)

        (ifd,) = struct.unpack(fmt + "I", header[4:])
        (count,) = read("H", tiff + ifd)
        entries: list[tuple[int, int, int]] | None = None
        for k in range(count):
            tag, _type, n, value = read("HHII", tiff + ifd + 2 + 12 * k)
            if tag not in _MPF_TAGS:
                raise _Doubt
            if tag == 0xB002:
                if n % 16 or n == 0:
                    raise _Doubt
                entries = [read("III", tiff + value + 16 * e)[:3] for e in range(n // 16)]
            elif tag == _MPF_IMAGE_UIDS:
                # Four bytes or less lie in the entry itself (the TIFF rule), more at an offset.
                at = tiff + ifd + 2 + 12 * k + 8 if n <= 4 else tiff + value
                read(f"{n}s", at)
                if segment.count(0, at, at + n) != n:
                    self._changed = True
                segment[at : at + n] = bytes(n)
        if entries is None:
            raise _Doubt
        later = sorted(base + offset for _attr, _size, offset in entries[1:] if offset)
        if len(set(later)) != len(later):
            raise _Doubt
        self._later_frames = later
        return bytes(segment)


def _jpeg_kept_payload(marker: int, ident: bytes, size: int) -> int | None:
    """How many payload bytes of an APPn/COM segment to keep (the rest is zeroed), or None
    to neutralise it whole."""
    if marker == 0xE0 and ident.startswith(b"JFIF\x00"):
        return min(size, 14)  # version, density, thumbnail size; not the thumbnail
    if marker == 0xE2 and ident.startswith(b"ICC_PROFILE\x00"):
        return size
    if marker == 0xEE and ident.startswith(b"Adobe"):
        return min(size, 12)  # version, flags, colour transform
    return None


# ---------------------------------------------------------------------------------------
# PNG

_PNG_CRITICAL = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND"})
# Ancillary chunks kept: transparency, colour and gamma, pixel size, animation (APNG).
_PNG_KEPT = _PNG_CRITICAL | {
    b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"bKGD", b"pHYs", b"hIST",
    b"cICP", b"mDCV", b"cLLI", b"acTL", b"fcTL", b"fdAT",
}  # fmt: skip


class _Png(_Walker):
    """PNG chunks: the kept ones pass whole, other ancillary ones are left out."""

    kind = "png"

    def __init__(self) -> None:
        super().__init__()
        self._state = "signature"
        self._need = len(PNG_MAGIC)

    def _ended_well(self) -> bool:
        return self._state == "trailer"

    def _step(self, buf: bytearray, i: int, out: bytearray) -> int:
        if self._state == "trailer":  # after IEND
            self._drop = len(buf) - i
            return i
        if self._state == "signature":
            self._copy = len(PNG_MAGIC)
            self._state = "first"
            self._need = 8
            return i
        self._count_part()
        length = _u32(buf, i)
        kind = bytes(buf[i + 4 : i + 8])
        if length > 0x7FFFFFFF or (self._state == "first") != (kind == b"IHDR"):
            raise _Doubt
        self._state = "chunks"
        if kind in _PNG_KEPT:
            self._copy = 12 + length
            if kind == b"IEND":
                self._state = "trailer"
                self._need = 1
        elif kind[0] & 0x20:  # ancillary by the spec's rule: decoders may ignore it
            self._drop = 12 + length
        else:
            raise _Doubt  # a critical chunk this walker does not know
        return i


# ---------------------------------------------------------------------------------------
# WebP

_WEBP_VP8X_METADATA_FLAGS = 0x08 | 0x04  # EXIF, XMP
_WEBP_TOP_KEPT = frozenset({b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ICCP"})
_WEBP_FRAME_KEPT = frozenset({b"VP8 ", b"VP8L", b"ALPH"})


class _Webp(_Walker):
    """RIFF chunks of a WebP file; animation frames (ANMF) are walked inside too."""

    kind = "webp"

    def __init__(self) -> None:
        super().__init__()
        self._state = "header"
        self._need = 12
        self._ends: list[int] = []  # file offset where the RIFF body, or the open ANMF, ends
        self._pictures = 0  # VP8 and VP8L chunks seen

    def _ended_well(self) -> bool:
        if not self._pictures:
            return False  # a RIFF body without a picture: the sizes cannot be trusted
        return self._state == "trailer" or (self._state == "chunks" and all(end == self._pos for end in self._ends))

    def _step(self, buf: bytearray, i: int, out: bytearray) -> int:
        at = self._pos + i
        self._need = 1
        if self._state == "trailer":  # after the RIFF body
            self._zero = len(buf) - i
            return i
        if self._state == "header":
            size = int.from_bytes(buf[i + 4 : i + 8], "little")
            if size < 4:
                raise _Doubt
            self._ends = [8 + size]
            self._copy = 12
            self._state = "chunks"
            return i
        if at == self._ends[-1]:
            self._ends.pop()
            if not self._ends:
                if not self._pictures:
                    raise _Doubt
                self._state = "trailer"
            return i
        if at + 8 > self._ends[-1]:
            raise _Doubt
        if len(buf) - i < 8:
            self._need = 8
            return i
        if len(buf) - i < 18 and buf.startswith(b"VP8X", i):
            self._need = 18
            return i
        self._count_part()
        fourcc = bytes(buf[i : i + 4])
        size = int.from_bytes(buf[i + 4 : i + 8], "little")
        padded = size + (size & 1)
        if at + 8 + padded > self._ends[-1]:
            raise _Doubt
        top = len(self._ends) == 1
        if top and fourcc == b"VP8X":
            if at != 12 or size != 10:
                raise _Doubt
            flags = buf[i + 8]
            if flags & _WEBP_VP8X_METADATA_FLAGS:
                self._changed = True
            out += buf[i : i + 8]
            out.append(flags & ~_WEBP_VP8X_METADATA_FLAGS)
            out += buf[i + 9 : i + 18]
            return i + 18
        if top and fourcc == b"ANMF":
            if size < 16:
                raise _Doubt
            self._ends.append(at + 8 + padded)
            self._copy = 8 + 16
            return i
        if fourcc in (_WEBP_TOP_KEPT if top else _WEBP_FRAME_KEPT):
            self._pictures += fourcc in (b"VP8 ", b"VP8L")
            self._copy = 8 + padded
            return i
        out += b"JUNK"  # RIFF's own name for filler
        out += buf[i + 4 : i + 8]
        self._changed |= fourcc != b"JUNK"
        self._zero = padded
        return i + 8


# ---------------------------------------------------------------------------------------
# HEIF, HEIC and AVIF (ISO base media file format)

_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"mif2", b"avif", b"avis"})
_HEIF_META_CAP = 1 << 20  # a phone's meta box is a few KiB; a grid of 48 tiles, tens
# Item types that are pictures (or pictures derived from others); any other item's data
# is metadata (Exif, XMP and other mime items, URI items, unknown ones) and is zeroed.
_HEIF_PICTURE_ITEMS = frozenset(
    {b"hvc1", b"hvt1", b"lhv1", b"av01", b"avc1", b"vvc1", b"jpeg", b"j2k1", b"unci", b"grid", b"iden", b"iovl", b"tmap", b"mski"}
)
_HEIF_META_KEPT = frozenset({b"hdlr", b"pitm", b"iloc", b"iinf", b"iref", b"iprp", b"idat", b"dinf", b"grpl"})
# Boxes that only describe (XML, vendor boxes, user data, filler): made free boxes of zeros.
# Any other box this walker does not know is a doubt: it may be needed to decode.
_HEIF_DESCRIPTIVE_BOXES = frozenset({b"free", b"skip", b"uuid", b"udta", b"xml ", b"bxml"})
# Item properties that describe rather than decode: text, creation and modification
# times, the camera's calibration, vendor (uuid) properties.
_HEIF_DESCRIPTIVE_PROPERTIES = frozenset({b"udes", b"crtt", b"mdft", b"cmin", b"cmex", b"uuid"})


class _Heif(_Walker):
    """Top-level boxes; the meta box is read whole and its metadata items neutralised."""

    kind = "heif"

    def __init__(self) -> None:
        super().__init__()
        self._need = 8
        self._state = "boxes"
        self._meta_seen = False
        self._zero_ranges: list[tuple[int, int]] = []  # file ranges to zero as they pass

    def _ended_well(self) -> bool:
        return self._meta_seen and self._state in ("boxes", "rest") and not self._zero_ranges

    def _emit(self, out: bytearray, buf: bytearray, i: int, n: int) -> None:
        start, end = self._pos + i, self._pos + i + n
        ranges = self._zero_ranges
        if not ranges or ranges[0][0] >= end:
            out += buf[i : i + n]
            return
        piece = bytearray(buf[i : i + n])
        while ranges and ranges[0][0] < end:
            lo, hi = max(ranges[0][0], start), min(ranges[0][1], end)
            if piece.count(0, lo - start, hi - start) != hi - lo:
                self._changed = True
            piece[lo - start : hi - start] = bytes(hi - lo)
            if ranges[0][1] > end:
                break
            ranges.pop(0)
        out += piece

    def _step(self, buf: bytearray, i: int, out: bytearray) -> int:
        at = self._pos + i
        if self._state == "rest":  # inside a last box that runs to the end of the file
            self._copy = len(buf) - i
            return i
        size, kind = _u32(buf, i), bytes(buf[i + 4 : i + 8])
        header = 8
        if size == 1 and len(buf) - i < 16:
            self._need = 16
            return i
        if kind == b"meta" and len(buf) - i < size <= _HEIF_META_CAP:
            self._need = size  # the meta box is read whole
            return i
        self._count_part()
        if size == 1:
            size, header = int.from_bytes(buf[i + 8 : i + 16], "big"), 16
        self._need = 8
        if self._zero_ranges and self._zero_ranges[0][0] < at + header:
            raise _Doubt  # an item's data said to lie over a box header
        if (at == 0) != (kind == b"ftyp"):
            raise _Doubt
        if size == 0:  # the box runs to the end of the file
            if kind != b"mdat":
                raise _Doubt
            self._state = "rest"
            self._need = 1  # the last bytes, however few, are walked (and zeroed if need be)
            self._copy = len(buf) - i
            return i
        if size < header:
            raise _Doubt
        if kind in (b"ftyp", b"mdat"):
            self._copy = size
            return i
        if kind == b"meta":
            if self._meta_seen or header != 8 or size > _HEIF_META_CAP:
                raise _Doubt
            box = bytearray(buf[i : i + size])
            self._zero_ranges = _neutralise_heif_meta(box, at, self)
            self._meta_seen = True
            out += box
            return i + size
        if kind not in _HEIF_DESCRIPTIVE_BOXES:
            raise _Doubt  # e.g. moov, the tracks of an image sequence
        self._changed |= kind != b"free"
        out += buf[i : i + 4] + b"free" + buf[i + 8 : i + header]
        if size > header:  # an empty range would never be passed, and would lie over the next header
            self._zero_ranges = _merged([*self._zero_ranges, (at + header, at + size)])
        self._copy = size - header
        return i + header


def _boxes(box: bytearray, start: int, end: int):
    """(offset, header size, size, type) of each box in box[start:end], strictly bounded."""
    at = start
    while at < end:
        if end - at < 8:
            raise _Doubt
        size, kind, header = _u32(box, at), bytes(box[at + 4 : at + 8]), 8
        if size == 1:
            if end - at < 16:
                raise _Doubt
            size, header = int.from_bytes(box[at + 8 : at + 16], "big"), 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise _Doubt
        yield at, header, size, kind
        at += size


def _blank_box(box: bytearray, at: int, header: int, size: int) -> bool:
    """Make a box a free box of zeros, in place; say whether that changed anything."""
    changed = box[at + 4 : at + 8] != b"free" or box.count(0, at + header, at + size) != size - header
    box[at + 4 : at + 8] = b"free"
    box[at + header : at + size] = bytes(size - header)
    return changed


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _neutralise_heif_meta(box: bytearray, file_at: int, walker: _Heif) -> list[tuple[int, int]]:
    """Neutralise, in place, what the meta box holds itself; return the file ranges of
    metadata items' data, which lie after it and are zeroed as they pass."""
    if len(box) < 12 or box[8] != 0:
        raise _Doubt  # meta is a full box, version 0
    children = {}
    for at, header, size, kind in _boxes(box, 12, len(box)):
        if kind in children and kind != b"free":
            raise _Doubt
        if kind in _HEIF_META_KEPT:
            children[kind] = (at, header, size)
        elif kind not in _HEIF_DESCRIPTIVE_BOXES:
            raise _Doubt
        elif _blank_box(box, at, header, size):
            walker._changed = True
    if b"iinf" not in children or b"iloc" not in children or b"hdlr" not in children:
        raise _Doubt
    at, header, size = children[b"hdlr"]
    name = at + header + 24  # after version, pre_defined, handler type, reserved: the name
    if name > at + size:
        raise _Doubt
    if box.count(0, name, at + size) != at + size - name:
        walker._changed = True
        box[name : at + size] = bytes(at + size - name)  # the writing software's name
    metadata_items = _heif_metadata_items(box, *children[b"iinf"])
    if b"iref" in children:
        _detach_references(box, *children[b"iref"], metadata_items)
    if b"iprp" in children:
        _blank_descriptive_properties(box, *children[b"iprp"], walker)
    idat = None
    if b"idat" in children:
        at, header, size = children[b"idat"]
        idat = (at + header, at + size)
    zero_ranges, picture_ranges = [], []
    for item, method, extents in _heif_locations(box, *children[b"iloc"]):
        for offset, length in extents:
            if item not in metadata_items:
                if method == 0:
                    picture_ranges.append((offset, offset + length))
            elif method == 0:
                if length == 0 or offset < file_at + len(box):
                    raise _Doubt  # to the end of the file, or already passed
                zero_ranges.append((offset, offset + length))
            else:  # method 1: inside this box's idat
                if idat is None or length == 0 or idat[0] + offset + length > idat[1]:
                    raise _Doubt
                lo = idat[0] + offset
                if box.count(0, lo, lo + length) != length:
                    walker._changed = True
                box[lo : lo + length] = bytes(length)
    for lo, hi in zero_ranges:
        if any(lo < p_hi and p_lo < hi for p_lo, p_hi in picture_ranges):
            raise _Doubt
    return _merged(zero_ranges)


def _heif_metadata_items(box: bytearray, at: int, header: int, size: int) -> set[int]:
    """The ids of items that are not pictures. Each becomes an item of the unknown type
    `free`, which readers pass over, with its name (and content type or URI) zeroed."""
    version = box[at + header]
    body = at + header + 4 + (2 if version == 0 else 4)
    items = set()
    for e_at, e_header, e_size, kind in _boxes(box, body, at + size):
        if kind != b"infe":
            raise _Doubt
        p = e_at + e_header
        infe_version = box[p]
        if infe_version not in (2, 3):
            raise _Doubt
        p += 4
        id_size = 2 if infe_version == 2 else 4
        if p + id_size + 2 + 4 > e_at + e_size:
            raise _Doubt
        item = int.from_bytes(box[p : p + id_size], "big")
        item_type = bytes(box[p + id_size + 2 : p + id_size + 6])
        if item_type not in _HEIF_PICTURE_ITEMS:
            items.add(item)
            box[p + id_size + 2 : p + id_size + 6] = b"free"
            box[p + id_size + 6 : e_at + e_size] = bytes(e_at + e_size - p - id_size - 6)
    return items


def _detach_references(box: bytearray, at: int, header: int, size: int, items: set[int]) -> None:
    """References from metadata items (`cdsc`: "describes this picture") get the unknown
    type `free`, so readers no longer attach the zeroed items to the picture."""
    id_size = 2 if box[at + header] == 0 else 4
    for r_at, r_header, r_size, _kind in _boxes(box, at + header + 4, at + size):
        if r_size < r_header + id_size:
            raise _Doubt
        if int.from_bytes(box[r_at + r_header : r_at + r_header + id_size], "big") in items:
            box[r_at + 4 : r_at + 8] = b"free"


def _blank_descriptive_properties(box: bytearray, at: int, header: int, size: int, walker: _Heif) -> None:
    for c_at, c_header, c_size, kind in _boxes(box, at + header, at + size):
        if kind != b"ipco":
            continue
        for p_at, p_header, p_size, p_kind in _boxes(box, c_at + c_header, c_at + c_size):
            if p_kind in _HEIF_DESCRIPTIVE_PROPERTIES and _blank_box(box, p_at, p_header, p_size):
                walker._changed = True


def _heif_locations(box: bytearray, at: int, header: int, size: int):
    """(item id, construction method, [(offset, length)]) for each item in iloc; offsets
    are file offsets for method 0 and idat offsets for method 1."""
    end = at + size
    p = at + header
    version = box[p]
    if version > 2 or p + 4 + 2 > end:
        raise _Doubt
    p += 4
    offset_size, length_size = box[p] >> 4, box[p] & 15
    base_size, index_size = box[p + 1] >> 4, (box[p + 1] & 15) if version else 0
    if any(s not in (0, 4, 8) for s in (offset_size, length_size, base_size, index_size)):
        raise _Doubt
    p += 2

    def number(width: int) -> int:
        nonlocal p
        if p + width > end:
            raise _Doubt
        value = int.from_bytes(box[p : p + width], "big")
        p += width
        return value

    count = number(4 if version == 2 else 2)
    for _ in range(count):
        item = number(4 if version == 2 else 2)
        method = number(2) & 15 if version else 0
        if method > 1 or number(2) != 0:  # method 2 (by reference) or data in another file
            raise _Doubt
        base = number(base_size)
        extents = []
        for _ in range(number(2)):
            number(index_size)
            extents.append((base + number(offset_size), number(length_size)))
        yield item, method, extents


# ---------------------------------------------------------------------------------------


class _Passthrough(_Walker):
    kind = None  # type: ignore[assignment]

    def feed(self, data: bytes) -> bytes:
        return bytes(data)

    def close(self) -> bytes:
        return b""

    @property
    def verdict(self) -> str:
        return AS_SENT


def _walker_for(head: bytes) -> _Walker:
    if head.startswith(JPEG_MAGIC):
        return _Jpeg()
    if head.startswith(PNG_MAGIC):
        return _Png()
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _Webp()
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return _Heif()
    return _Passthrough()


class MetadataCleaner:
    """Decides from a file's first bytes (never its name or declared type) which format
    it is, then cleans what follows as it arrives. `verdict` holds after `close`."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._walker: _Walker | None = None

    @property
    def kind(self) -> str | None:
        """'jpeg', 'png', 'webp' or 'heif' for a photo this cleaner walks, else None."""
        return self._walker.kind if self._walker is not None else None

    @property
    def verdict(self) -> str:
        """CLEANED, NOTHING_FOUND or AS_SENT (see the module docstring)."""
        return self._walker.verdict if self._walker is not None else AS_SENT

    @property
    def cleaned(self) -> str | None:
        """The format, when metadata was found and neutralised in the whole file."""
        return self.kind if self.verdict == CLEANED else None

    def feed(self, data: bytes) -> bytes:
        if self._walker is None:
            self._head += data
            if len(self._head) < _HEAD:
                return b""
            head, self._head = bytes(self._head), bytearray()
            self._walker = _walker_for(head)
            return self._walker.feed(head)
        return self._walker.feed(data)

    def close(self) -> bytes:
        if self._walker is None:  # shorter than the bytes that tell formats apart
            head, self._head = bytes(self._head), bytearray()
            self._walker = _walker_for(head)
            return self._walker.feed(head) + self._walker.close()
        return self._walker.close()
