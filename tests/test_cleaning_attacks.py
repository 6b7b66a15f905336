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
