"""Crafted photos that put metadata where a naive walker stops looking, judged by exiftool
and Pillow (every frame) and by a plain byte search: after cleaning, none of them may
find anything, the picture's compressed data must be unchanged, and the verdict must be
"cleaned". Files the cleaner cannot understand with certainty must come out as sent,
and be reported so."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from tests import photo_craft as craft
from tests.photo_craft import MARK
from tests.photo_judge import clean_every_way, exiftool_leaks, frames_pixels, leaks, only_neutralised
from whistle.cleaning import AS_SENT, CLEANED


def _jpeg_between_segments(insert: bytes) -> bytes:
    """A phone JPEG with `insert` put before each of its header segments."""
    found, rest = craft.segments(craft.phone_jpeg())
    return b"\xff\xd8" + b"".join(insert + s for s in found) + rest


def mpo_gps_in_every_frame() -> bytes:
    second = craft.exiftool_write(
        craft.jpeg(seed=2), "-GPSLatitude=15.1", "-GPSLatitudeRef=N", "-Make=MARKFRAME2", "-SerialNumber=MARKSN2"
    )
    return craft.mpo([craft.phone_jpeg(seed=1), second])


def jpeg_junk_between_segments() -> bytes:
    found, rest = craft.segments(craft.phone_jpeg())
    return b"\xff\xd8" + found[0] + b"\x00MARKJUNK\x00 junk no decoder reads" + b"".join(found[1:]) + rest


def jpeg_fill_bytes() -> bytes:
    return _jpeg_between_segments(b"\xff" * 9)


def jpeg_standalone_markers() -> bytes:
    return _jpeg_between_segments(b"\xff\xd0\xff\xd7")  # RST0, RST7


def jpeg_metadata_between_progressive_scans() -> bytes:
    data = craft.phone_jpeg(progressive=True)
    found, _ = craft.segments(data)
    metadata = b"".join(s for s in found if s[1] in (0xE1, 0xED, 0xFE))  # Exif, XMP, IPTC, comment
    second_table = data.index(b"\xff\xc4", data.index(b"\xff\xda"))  # the first marker after scan 1
    return data[:second_table] + metadata + data[second_table:]


def jpeg_trailer() -> bytes:
    # Vendors append their own data after the picture: text, a preview with its own Exif.
    return craft.phone_jpeg() + b"MARKTRAILER vendor data GPS 13.7563 100.5018" + craft.phone_jpeg(seed=3)


def jpeg_segment_over_32_kib() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "MARKMAKE"
    exif[0x010E] = "MARKLONG " + "x" * 50_000  # ImageDescription
    out = io.BytesIO()
    craft.picture().save(out, "JPEG", exif=exif)
    data = out.getvalue()
    found, _ = craft.segments(data)
    assert any(s[1] == 0xE1 and len(s) >= 32 * 1024 for s in found)
    return data


def jpeg_app15() -> bytes:
    found, rest = craft.segments(craft.jpeg())
    return b"\xff\xd8" + found[0] + craft.segment(0xEF, b"MARKAPP15 camera serial 0042") + b"".join(found[1:]) + rest


def png_phone() -> bytes:
    out = io.BytesIO()
    craft.picture().save(out, "PNG")
    data = craft.exiftool_write(out.getvalue(), *craft.PHONE_TAGS[:-2], "-PNG:Comment=MARKCOMMENT")
    iend = data.rindex(b"IEND") - 4
    data = data[:iend] + craft.png_chunk(b"tIME", struct.pack(">HBBBBB", 2026, 11, 25, 8, 15, 42)) + data[iend:]
    kinds = {kind for kind, _ in craft.png_chunks(data)}
    assert {b"eXIf", b"tIME", b"iTXt"} <= kinds
    return data


def png_chunk_named_with_a_digit() -> bytes:
    data = png_phone()
    after_ihdr = 8 + 25
    return data[:after_ihdr] + craft.png_chunk(b"ab1c", b"odd") + data[after_ihdr:]


def png_text_after_iend() -> bytes:
    return png_phone() + craft.png_chunk(b"tEXt", b"Author\x00MARKAFTERIEND")


def webp_phone() -> bytes:
    return _pillow_phone("WEBP")


def heic_phone() -> bytes:
    return _pillow_phone("HEIF")


def avif_phone() -> bytes:
    return _pillow_phone("AVIF")


def _pillow_phone(kind: str) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "MARKMAKE"
    exif[0x0110] = "MARKMODEL"
    exif[0x0132] = "2026:11:25 08:15:42"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (13.0, 45.0, 22.68), 3: "E", 4: (100.0, 30.0, 6.48)})
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    xmp += b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="MARKXMP"/></rdf:RDF></x:xmpmeta>'
    out = io.BytesIO()
    craft.picture().save(out, kind, exif=exif.tobytes(), xmp=xmp, quality=90)
    return out.getvalue()


ATTACKS = [
    mpo_gps_in_every_frame,
    jpeg_junk_between_segments,
    jpeg_fill_bytes,
    jpeg_standalone_markers,
    jpeg_metadata_between_progressive_scans,
    jpeg_trailer,
    jpeg_segment_over_32_kib,
    jpeg_app15,
    png_phone,
    png_chunk_named_with_a_digit,
    png_text_after_iend,
    webp_phone,
    heic_phone,
    avif_phone,
]


@pytest.mark.parametrize("make", ATTACKS, ids=lambda f: f.__name__)
def test_cleaning_attack_file_leaves_nothing_to_find(make):
    original = make()
    assert MARK in original and (leaks(original) or make in (jpeg_app15, jpeg_trailer))
    cleaned, verdict = clean_every_way(original)
    assert verdict == CLEANED
    assert MARK not in cleaned
    assert leaks(cleaned) == []
    assert frames_pixels(cleaned) == frames_pixels(original)
    if original.startswith(craft.PNG_SIGNATURE):  # PNG: chunks left out, picture data kept
        assert [c for c in craft.png_chunks(cleaned) if c[0] in (b"IDAT", b"IHDR")] == [
            c for c in craft.png_chunks(original) if c[0] in (b"IDAT", b"IHDR")
        ]
        assert not {kind for kind, _ in craft.png_chunks(cleaned)} & {b"eXIf", b"tIME", b"tEXt", b"iTXt", b"zTXt", b"ab1c"}
    else:  # in place: same length, every change a zero or a neutral name
        assert only_neutralised(original, cleaned) == []


def test_cleaning_jpeg_tem_markers_between_segments_leave_nothing():
    # Pillow refuses TEM markers (so it cannot judge here); exiftool and libjpeg skip them.
    original = _jpeg_between_segments(b"\xff\x01")
    assert exiftool_leaks(original)
    cleaned, verdict = clean_every_way(original)
    assert verdict == CLEANED
    assert MARK not in cleaned and exiftool_leaks(cleaned) == []
    assert only_neutralised(original, cleaned) == []


def test_cleaning_mpo_every_frame_still_decodes_where_the_index_says():
    cleaned, _ = clean_every_way(mpo_gps_in_every_frame())
    image = Image.open(io.BytesIO(cleaned))
    assert image.format == "MPO" and image.n_frames == 2
    for frame in range(2):
        image.seek(frame)
        image.load()


def test_cleaning_mpo_image_unique_ids_are_zeroed():
    """The MPF index may list each frame's unique ID (tag B003), which can name the camera:
    zeroed, and the index with its frame count (B004) still read."""
    uids = b"".join(f"{MARK.decode()}-UID-{n}".encode().ljust(33, b"0") for n in range(2))
    original = craft.mpo([craft.phone_jpeg(seed=1), craft.jpeg(seed=2)], uids=uids)
    cleaned, verdict = clean_every_way(original)
    assert verdict == CLEANED and MARK not in cleaned
    assert cleaned.count(bytes(66)) >= 1 and len(cleaned) == len(original)
    image = Image.open(io.BytesIO(cleaned))
    assert image.format == "MPO" and image.n_frames == 2


def jpeg_reserved_marker() -> bytes:
    found, rest = craft.segments(craft.phone_jpeg())
    return b"\xff\xd8" + found[0] + b"\xff\x02\x00\x04??" + b"".join(found[1:]) + rest


def jpeg_truncated() -> bytes:
    data = craft.phone_jpeg()
    return data[: data.index(b"\xff\xda") + 100]


def png_unknown_critical_chunk() -> bytes:
    data = png_phone()
    return data[: 8 + 25] + craft.png_chunk(b"ABCD", b"?") + data[8 + 25 :]


def webp_chunk_past_the_end() -> bytes:
    data = webp_phone()
    picture = data.index(b"VP8", 16)  # the picture's chunk, after VP8X
    return data[: picture + 4] + struct.pack("<I", 0x7FFFFFF0) + data[picture + 8 :]


def heic_truncated_in_meta() -> bytes:
    data = heic_phone()
    return data[: data.index(b"meta") + 40]


def heic_unknown_top_level_box() -> bytes:
    data = heic_phone()
    meta = data.index(b"meta") - 4
    return data[:meta] + struct.pack(">I", 12) + b"abcd" + b"MARK" + data[meta:]


def mpo_second_frame_not_a_jpeg() -> bytes:
    """The MPF index points at bytes that do not start a JPEG (0xFF, then not SOI)."""
    return craft.mpo([craft.phone_jpeg(seed=1), b"\xff\xe1" + craft.jpeg(seed=2)[2:]])


def heic_truncated_in_its_picture() -> bytes:
    data = heic_phone()
    assert data.index(b"mdat") > data.index(b"meta")  # the picture data comes last
    return data[:-10]


# Each with the offset from which the file must pass exactly as it came (the walker may
# have cleaned what came before its doubt).
UNCERTAIN = [
    (jpeg_reserved_marker, 0),
    (png_unknown_critical_chunk, 0),
    (heic_truncated_in_meta, 0),
    (heic_unknown_top_level_box, 0),
    (heic_truncated_in_its_picture, None),
    (mpo_second_frame_not_a_jpeg, None),
    (webp_chunk_past_the_end, 30),
    (jpeg_truncated, None),  # nothing after the cut
]


@pytest.mark.parametrize(("make", "unchanged_from"), UNCERTAIN, ids=lambda f: getattr(f, "__name__", ""))
def test_cleaning_file_not_understood_is_stored_as_sent(make, unchanged_from):
    original = make()
    cleaned, verdict = clean_every_way(original)
    assert verdict == AS_SENT
    assert len(cleaned) == len(original)
    if unchanged_from is not None:
        assert cleaned[unchanged_from:] == original[unchanged_from:]


def _jpeg_with_restart_markers() -> bytes:
    out = io.BytesIO()
    craft.picture((96, 64), seed=5).save(out, "JPEG", restart_marker_blocks=1, quality=90)
    return out.getvalue()


def test_cleaning_jpeg_with_restart_markers_keeps_them_and_cleans_metadata():
    plain = _jpeg_with_restart_markers()
    assert sum(plain.count(bytes([0xFF, rst])) for rst in range(0xD0, 0xD8)) > 8
    original = plain[:2] + craft.segment(0xE1, b"Exif\x00\x00" + MARK * 4) + plain[2:]
    cleaned, verdict = clean_every_way(original)
    assert verdict == CLEANED and MARK not in cleaned
    assert cleaned[-len(plain) + 2 :] == plain[2:]  # scans and restart markers byte for byte
    assert frames_pixels(cleaned) == frames_pixels(original)


def test_cleaning_jpeg_segment_right_after_a_restart_marker_is_neutralised():
    plain = _jpeg_with_restart_markers()
    rst = max(plain.rfind(bytes([0xFF, m])) for m in range(0xD0, 0xD8)) + 2
    original = plain[:rst] + craft.segment(0xFE, MARK * 4) + plain[rst:]
    cleaned, verdict = clean_every_way(original)
    assert verdict == CLEANED and MARK not in cleaned and len(cleaned) == len(original)


def _mpf_index(data: bytes) -> list[tuple[int, int]]:
    """(size, file offset) of every frame an MPO's MPF index lists, read here without
    the cleaner (offsets count from the index's TIFF header; 0 means the first frame)."""
    tiff = data.index(b"MPF\x00") + 4
    fmt = {b"MM\x00*": ">", b"II*\x00": "<"}[data[tiff : tiff + 4]]
    (ifd,) = struct.unpack_from(fmt + "I", data, tiff + 4)
    (count,) = struct.unpack_from(fmt + "H", data, tiff + ifd)
    for k in range(count):
        tag, _type, n, value = struct.unpack_from(fmt + "HHII", data, tiff + ifd + 2 + 12 * k)
        if tag == 0xB002:
            entries = struct.iter_unpack(fmt + "IIIHH", data[tiff + value : tiff + value + n])
            return [(size, tiff + offset if offset else 0) for _attr, size, offset, _a, _b in entries]
    raise AssertionError("no MP entry tag")


def _set_mpf_tag(data: bytes, order: str, tag: int, kind: int, n: int, value: int | bytes) -> bytes:
    """The MPO with one entry of its MPF index given another count and value."""
    head = struct.pack(order + "HH", tag, kind)
    at = data.index(head, 0, 200)
    value = value if isinstance(value, bytes) else struct.pack(order + "I", value)
    return data[: at + 4] + struct.pack(order + "I", n) + value + data[at + 12 :]


@pytest.mark.parametrize("order", [">", "<"])
def test_cleaning_mpo_index_read_in_either_byte_order_and_every_frame_where_it_says(order):
    """Big-endian (MM) and little-endian (II) MPF indexes are both read: the later frames,
    one with a phone's metadata, are cleaned and each decodes, to the same pixels, at the
    offset the index gives; the index itself is unchanged, its values exactly right."""
    frames = [craft.jpeg(seed=1), craft.phone_jpeg(seed=2), craft.jpeg(seed=3)]
    original = craft.mpo(frames, order=order)
    starts = [0, original.index(frames[1]), original.index(frames[2])]
    assert _mpf_index(original) == [(starts[1], 0), (len(frames[1]), starts[1]), (len(frames[2]), starts[2])]
    cleaned, verdict = clean_every_way(original)
    assert verdict == CLEANED and MARK not in cleaned and len(cleaned) == len(original)
    assert _mpf_index(cleaned) == _mpf_index(original)
    assert only_neutralised(original, cleaned) == []
    for k, (size, at) in enumerate(_mpf_index(cleaned)):
        frame = cleaned[at : at + size]
        assert frame[:3] == b"\xff\xd8\xff" and frame[-2:] == b"\xff\xd9"
        assert Image.open(io.BytesIO(frame)).tobytes() == Image.open(io.BytesIO(frames[k])).tobytes()
    assert cleaned[starts[2] :] == frames[2]
    image = Image.open(io.BytesIO(cleaned))
    assert image.format == "MPO" and image.n_frames == 3


@pytest.mark.parametrize("order", [">", "<"])
def test_cleaning_mpo_unique_ids_zeroed_exactly_and_zero_ones_leave_nothing_found(order):
    frames = [craft.jpeg(seed=1), craft.jpeg(seed=2)]
    uids = b"".join(f"{MARK.decode()}-UID-{n}".encode().ljust(33, b"1") for n in range(2))
    original = craft.mpo(frames, uids=uids, order=order)
    cleaned, verdict = clean_every_way(original)
    assert verdict == CLEANED and cleaned == original.replace(uids, bytes(66))
    zero = craft.mpo(frames, uids=bytes(66), order=order)
    cleaned, verdict = clean_every_way(zero)
    assert verdict == "nothing_found" and cleaned == zero


@pytest.mark.parametrize("order", [">", "<"])
def test_cleaning_mpo_unique_id_of_five_bytes_lies_at_its_offset_and_is_zeroed(order):
    original = craft.mpo([craft.jpeg(seed=1), craft.jpeg(seed=2)], uids=b"MARK5", order=order)
    cleaned, verdict = clean_every_way(original)
    assert verdict == CLEANED and cleaned == original.replace(b"MARK5", bytes(5))


@pytest.mark.parametrize("order", [">", "<"])
def test_cleaning_mpo_unique_id_of_four_bytes_is_in_its_entry_and_is_zeroed(order):
    """By the TIFF rule a value of four bytes or less lies in the entry itself, not at an
    offset: it is zeroed there, and what its bytes would point at is not touched."""
    original = craft.mpo([craft.jpeg(seed=1), craft.jpeg(seed=2)], uids=bytes(4), order=order)
    original = _set_mpf_tag(original, order, 0xB003, 7, 4, b"UID4")
    cleaned, verdict = clean_every_way(original)
    assert verdict == CLEANED and cleaned == original.replace(b"UID4", bytes(4))


@pytest.mark.parametrize("order", [">", "<"])
def test_cleaning_mpo_other_index_data_is_left_as_it_is(order):
    """Only the unique IDs are zeroed: another tag whose data lies at an offset (here the
    version, pointed at the MP entries) is left alone."""
    frames = [craft.jpeg(seed=1), craft.jpeg(seed=2)]
    original = craft.mpo(frames, order=order)
    entries_at = 8 + 2 + 3 * 12 + 4
    original = _set_mpf_tag(original, order, 0xB000, 7, 8, entries_at)
    cleaned, verdict = clean_every_way(original)
    assert verdict == "nothing_found" and cleaned == original


def _mpo_with_entry_tag(order: str, n: int | None = None, value: int | None = None) -> bytes:
    frames = [craft.jpeg(seed=1), craft.jpeg(seed=2), craft.jpeg(seed=3)]
    original = craft.mpo(frames, order=order)
    entries_at = 8 + 2 + 3 * 12 + 4
    return _set_mpf_tag(original, order, 0xB002, 7, 48 if n is None else n, entries_at if value is None else value)


def _mpf_length(order: str) -> int:
    """The length field of the MPF segment of the three-frame MPOs above."""
    return struct.unpack(">H", _mpo_with_entry_tag(order)[4:6])[0]


def _short_mpf(order: str, keep: int) -> bytes:
    """A JPEG whose MPF segment ends `keep` bytes into its TIFF header."""
    header = (b"MM\x00*" if order == ">" else b"II*\x00") + struct.pack(order + "I", 8)
    data = craft.jpeg(seed=1)
    return data[:2] + craft.segment(0xE2, b"MPF\x00" + header[:keep]) + data[2:]


@pytest.mark.parametrize("order", [">", "<"])
@pytest.mark.parametrize(
    "make",
    [
        lambda order: _mpo_with_entry_tag(order, n=0),  # no entries
        lambda order: _mpo_with_entry_tag(order, n=40),  # not whole entries of 16 bytes
        lambda order: _mpo_with_entry_tag(order, value=0xFF00),  # entries past the segment
        lambda order: _mpo_with_entry_tag(order, value=0),  # entries in the index's own header
        lambda order: _mpo_with_entry_tag(order, value=4),
        lambda order: _set_mpf_tag(craft.mpo([craft.jpeg(seed=1)] * 2, uids=b"M" * 66, order=order),
                                   order, 0xB003, 7, 66, 0),  # unique IDs over the index's header
        lambda order: _short_mpf(order, 4),  # an index cut inside its header
        lambda order: _short_mpf(order, 7),
        lambda order: _mpo_with_entry_tag(order, value=_mpf_length(order) - 50 + 4),  # last entry cut by 4 bytes
        lambda order: _set_mpf_tag(craft.mpo([craft.jpeg(seed=1)] * 2, uids=b"M" * 66, order=order),
                                   order, 0xB003, 7, 66, 8 + 2 + 5 * 12 + 4 + 32 + 4),  # unique IDs cut by 4 bytes
        lambda order: _set_mpf_tag(craft.mpo([craft.jpeg(seed=1)] * 2, uids=b"M" * 66, order=order),
                                   order, 0xB003, 7, 66, 0xFF00),  # unique IDs past the segment
    ],
)  # fmt: skip
def test_cleaning_mpo_index_not_understood_is_stored_as_sent(make, order):
    original = make(order)
    cleaned, verdict = clean_every_way(original)
    assert verdict == AS_SENT and cleaned == original


def _webp_chunks(data: bytes, at: int, end: int):
    """(offset, fourcc, size) of the RIFF chunks in data[at:end], frames walked inside."""
    while at < end:
        fourcc, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
        yield at, fourcc, size
        if fourcc == b"ANMF":
            yield from _webp_chunks(data, at + 8 + 16, at + 8 + size + (size & 1))
        at += 8 + size + (size & 1)


def _webp_cleaned_by_hand(data: bytes) -> bytes:
    """What the cleaner must make of a WebP, worked out here: EXIF and XMP chunks become
    JUNK of zeros, the VP8X flags stop announcing them; every other byte is kept."""
    out = bytearray(data)
    for at, fourcc, size in _webp_chunks(data, 12, 8 + int.from_bytes(data[4:8], "little")):
        if fourcc in (b"EXIF", b"XMP "):
            out[at : at + 4] = b"JUNK"
            out[at + 8 : at + 8 + size] = bytes(size)
        if fourcc == b"VP8X":
            out[at + 8] &= ~0x0C
    return bytes(out)


def _webp(lossless: bool, frames: int, icc: bool = True, metadata: bool = True) -> bytes:
    from PIL import ImageCms

    pictures = [craft.picture(seed=n).convert("RGBA") for n in range(1, frames + 1)]
    for n, image in enumerate(pictures):
        image.putalpha(Image.linear_gradient("L").resize(image.size).point(lambda v, n=n: (v + 40 * n) % 256))
    save = {"lossless": lossless, "quality": 90}
    if frames > 1:
        save.update(save_all=True, append_images=pictures[1:], duration=100, loop=0)
    if icc:
        save["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    if metadata:
        exif = Image.Exif()
        exif[0x010F] = "MARKMAKE"
        save.update(exif=exif.tobytes(), xmp=b"<x:xmpmeta>MARKXMP</x:xmpmeta>")
    out = io.BytesIO()
    pictures[0].save(out, "WEBP", **save)
    return out.getvalue()


WEBPS = {
    "lossy-alpha": lambda: _webp(lossless=False, frames=1),
    "lossless": lambda: _webp(lossless=True, frames=1),
    "animated-lossy-alpha": lambda: _webp(lossless=False, frames=3),
    "animated-lossless": lambda: _webp(lossless=True, frames=2),
    "lossless-no-icc": lambda: _webp(lossless=True, frames=1, icc=False),
}


@pytest.mark.parametrize("make", WEBPS.values(), ids=WEBPS.keys())
def test_cleaning_webp_keeps_every_chunk_decoding_needs_and_only_blanks_metadata(make):
    """Lossy pictures with their alpha (VP8 + ALPH), lossless ones (VP8L), the colour
    profile (ICCP), animation (ANIM, ANMF) are kept byte for byte; only EXIF and XMP become
    JUNK, and the VP8X flags stop announcing them."""
    original = make()
    kinds = {fourcc for _at, fourcc, _size in _webp_chunks(original, 12, len(original))}
    assert {b"EXIF", b"XMP "} <= kinds
    cleaned, verdict = clean_every_way(original)
    assert verdict == CLEANED and MARK not in cleaned
    assert cleaned == _webp_cleaned_by_hand(original)
    assert frames_pixels(cleaned) == frames_pixels(original)
    assert Image.open(io.BytesIO(cleaned)).info.get("icc_profile") == Image.open(io.BytesIO(original)).info.get(
        "icc_profile"
    )


def test_cleaning_webp_reserved_vp8x_flags_pass_as_they_are():
    """Only the EXIF and XMP flags are cleared: the others, reserved ones included, are kept."""
    original = bytearray(_webp(lossless=True, frames=1))
    assert original[12:16] == b"VP8X"
    original[20] |= 0xC1  # reserved bits 7, 6 and 0
    cleaned, verdict = clean_every_way(bytes(original))
    assert verdict == CLEANED and cleaned[20] == original[20] & ~0x0C
    assert cleaned == _webp_cleaned_by_hand(bytes(original))


@pytest.mark.parametrize("tail", [b"M", b"MARK-TRAILER" * 10])
def test_cleaning_webp_bytes_after_the_riff_body_are_zeroed_even_one(tail):
    webp = _webp(lossless=True, frames=1)
    cleaned, verdict = clean_every_way(webp + tail)
    assert verdict == CLEANED and cleaned == _webp_cleaned_by_hand(webp) + bytes(len(tail))


def test_cleaning_webp_cut_between_two_chunks_is_stored_as_sent():
    webp = _webp(lossless=True, frames=1)
    chunks = list(_webp_chunks(webp, 12, len(webp)))
    cut = webp[: chunks[-1][0]]  # just before the XMP chunk: the RIFF size says more follows
    cleaned, verdict = clean_every_way(cut)
    assert verdict == AS_SENT and cleaned == _webp_cleaned_by_hand(webp)[: len(cut)]


def test_cleaning_webp_without_a_picture_is_stored_as_sent():
    """A RIFF body without VP8 or VP8L: its sizes cannot be trusted to be a WebP's."""
    exif = b"EXIF" + struct.pack("<I", 8) + b"MARKGPS!"
    data = b"RIFF" + struct.pack("<I", 4 + len(exif)) + b"WEBP" + exif
    cleaned, verdict = clean_every_way(data)
    assert verdict == AS_SENT and cleaned == _webp_cleaned_by_hand(data)


def test_cleaning_says_which_format_it_cleaned():
    """The format is kept with the file (FileMeta.cleaned) and shown to officers."""
    from whistle.cleaning import MetadataCleaner

    for data, kind in [
        (craft.phone_jpeg(), "jpeg"),
        (png_phone(), "png"),
        (_webp(lossless=True, frames=1), "webp"),
    ]:
        cleaner = MetadataCleaner()
        cleaner.feed(data)
        cleaner.close()
        assert cleaner.kind == kind and cleaner.cleaned == kind


@pytest.mark.parametrize("kind", [b"JUNK", b"EXIF"])
def test_cleaning_webp_empty_chunk_at_the_very_end_of_the_riff_body(kind):
    """A chunk that is only its 8-byte header, ending exactly where the RIFF body ends."""
    webp = _webp(lossless=True, frames=1)
    data = b"RIFF" + struct.pack("<I", len(webp) - 8 + 8) + webp[8:] + kind + bytes(4)
    cleaned, verdict = clean_every_way(data)
    assert verdict == CLEANED and cleaned == _webp_cleaned_by_hand(data)


def _webp_vp8x_flags(flags_or: int, drop_metadata: bool) -> bytes:
    webp = _webp(lossless=True, frames=1)
    chunks = list(_webp_chunks(webp, 12, len(webp)))
    body = b"".join(webp[at : at + 8 + size + (size & 1)] for at, fourcc, size in chunks
                    if not (drop_metadata and fourcc in (b"EXIF", b"XMP ")))  # fmt: skip
    data = bytearray(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body)
    data[20] = (data[20] & ~0x0C) | flags_or
    return bytes(data)


@pytest.mark.parametrize(
    "flags_or, drop_metadata, verdict",
    [(0x08, True, CLEANED), (0x04, True, CLEANED), (0x00, True, "nothing_found"), (0x00, False, CLEANED)],
    ids=["exif-flag-only", "xmp-flag-only", "nothing", "chunks-only"],
)
def test_cleaning_webp_flags_alone_or_chunks_alone_are_a_change(flags_or, drop_metadata, verdict):
    data = _webp_vp8x_flags(flags_or, drop_metadata)
    cleaned, got = clean_every_way(data)
    assert got == verdict and cleaned == _webp_cleaned_by_hand(data)


def test_cleaning_webp_walks_20000_chunks_and_gives_up_after():
    webp = _webp(lossless=True, frames=1)
    parts = len(list(_webp_chunks(webp, 12, len(webp))))

    def with_junk(n: int) -> bytes:
        body = webp[12:] + (b"JUNK" + bytes(4)) * n
        return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body

    cleaned, verdict = clean_every_way(with_junk(20_000 - parts))
    assert verdict == CLEANED
    cleaned, verdict = clean_every_way(with_junk(20_000 - parts + 1))
    assert verdict == AS_SENT


def _riff(body: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _animated_with_first_frame_extra(extra: bytes) -> bytes:
    webp = _webp(lossless=True, frames=2)
    anmf = webp.index(b"ANMF")
    size = int.from_bytes(webp[anmf + 4 : anmf + 8], "little")
    end = anmf + 8 + size + (size & 1)
    frame = b"ANMF" + struct.pack("<I", size + (size & 1) + len(extra)) + webp[anmf + 8 : end] + extra
    return _riff(webp[12:anmf] + frame + webp[end:])


def test_cleaning_webp_frame_chunks_other_than_picture_become_junk():
    """Inside an animation frame only VP8, VP8L and ALPH are kept: a colour profile chunk
    there (allowed only at the top) becomes JUNK."""
    data = _animated_with_first_frame_extra(b"ICCP" + struct.pack("<I", 4) + b"MARK")
    cleaned, verdict = clean_every_way(data)
    assert verdict == CLEANED and MARK not in cleaned
    assert cleaned == _webp_cleaned_by_hand(data).replace(b"ICCP\x04\x00\x00\x00MARK", b"JUNK" + struct.pack("<I", 4) + bytes(4))


def test_cleaning_webp_empty_animation_frame_is_walked():
    """An ANMF chunk of exactly its 16-byte frame header (no picture in it)."""
    webp = _webp(lossless=True, frames=2)
    data = _riff(webp[12:] + b"ANMF" + struct.pack("<I", 16) + bytes(16))
    cleaned, verdict = clean_every_way(data)
    assert verdict == CLEANED and cleaned == _webp_cleaned_by_hand(data)


def test_cleaning_webp_vp8x_of_another_size_is_stored_as_sent():
    webp = _webp(lossless=True, frames=1)
    assert webp[12:16] == b"VP8X"
    data = _riff(b"VP8X" + struct.pack("<I", 12) + webp[20:30] + b"\x00\x00" + webp[30:])
    cleaned, verdict = clean_every_way(data)
    assert verdict == AS_SENT and cleaned == data
