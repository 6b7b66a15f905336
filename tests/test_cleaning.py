"""Photos lose their identifying metadata before they are sealed; other files pass as sent,
and the reporter is told which was which. Attack files and real photos, judged by
exiftool and Pillow, are in test_cleaning_attacks.py and test_cleaning_photos.py."""

from __future__ import annotations

import io
import struct
import zlib
import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from PIL import Image, PngImagePlugin  # noqa: E402

from whistle import crypto, db  # noqa: E402
from tests.photo_craft import jpeg, segment, segments  # noqa: E402
from whistle.cleaning import AS_SENT, CLEANED, JPEG_MAGIC, NOTHING_FOUND, PNG_MAGIC, MetadataCleaner  # noqa: E402
from whistle.models import Report  # noqa: E402

from .conftest import file_meta, file_plaintext  # noqa: E402

GPS_MARK = "MARKGPS-Khon-Kaen-16.43N"
CAMERA_MARK = "MARKCAMERA-SN-0042"


def _jpeg_with_metadata() -> bytes:
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    for x in range(64):
        image.putpixel((x, x % 48), (x * 4, 255 - x * 4, 7))
    exif = Image.Exif()
    exif[0x010F] = CAMERA_MARK  # Make
    exif[0x010E] = GPS_MARK  # ImageDescription
    exif[0x0132] = "2026:11:25 08:15:42"  # DateTime
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=GPS_MARK.encode(), quality=90)
    data = out.getvalue()
    assert GPS_MARK.encode() in data and CAMERA_MARK.encode() in data
    return data


def _png_with_metadata() -> bytes:
    image = Image.new("RGBA", (20, 10), (0, 128, 255, 200))
    info = PngImagePlugin.PngInfo()
    info.add_text("Location", GPS_MARK)
    info.add_itxt("Author", CAMERA_MARK)
    info.add_text("Comment", GPS_MARK, zip=True)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    data = out.getvalue()
    assert GPS_MARK.encode() in data
    return data


def _clean(data: bytes, step: int) -> tuple[bytes, MetadataCleaner]:
    cleaner = MetadataCleaner()
    out = b"".join(cleaner.feed(data[i : i + step]) for i in range(0, len(data), step)) + cleaner.close()
    return out, cleaner


def _pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).tobytes()


@pytest.mark.parametrize("step", [1, 3, 64, 4096, 10**9])
def test_jpeg_metadata_removed_pixels_untouched(step):
    original = _jpeg_with_metadata()
    cleaned, cleaner = _clean(original, step)
    assert cleaner.cleaned == "jpeg"
    assert GPS_MARK.encode() not in cleaned and CAMERA_MARK.encode() not in cleaned and b"Exif" not in cleaned
    assert _pixels(cleaned) == _pixels(original)
    assert not Image.open(io.BytesIO(cleaned)).getexif()


@pytest.mark.parametrize("step", [1, 5, 100, 10**9])
def test_png_text_and_time_removed_pixels_untouched(step):
    original = _png_with_metadata()
    cleaned, cleaner = _clean(original, step)
    assert cleaner.cleaned == "png"
    assert GPS_MARK.encode() not in cleaned and CAMERA_MARK.encode() not in cleaned
    assert b"tEXt" not in cleaned and b"iTXt" not in cleaned and b"zTXt" not in cleaned
    assert _pixels(cleaned) == _pixels(original)


@pytest.mark.parametrize("data", [b"%PDF-1.7\n" + b"x" * 500, b"", b"\xff\xd8", b"PK\x03\x04docx"])
def test_other_files_pass_unchanged(data):
    cleaned, cleaner = _clean(data, 7)
    assert cleaned == data and cleaner.cleaned is None and cleaner.verdict == AS_SENT


@pytest.mark.parametrize("kind", ["JPEG", "PNG", "WEBP"])
def test_cleaner_photo_without_metadata_is_checked_and_left_as_it_was(kind):
    out = io.BytesIO()
    Image.new("RGB", (16, 8), (1, 2, 3)).save(out, kind)
    cleaned, cleaner = _clean(out.getvalue(), 5)
    assert cleaned == out.getvalue()
    assert cleaner.verdict == NOTHING_FOUND and cleaner.cleaned is None


def test_cleaner_verdict_is_cleaned_only_when_the_file_ends_where_it_should():
    whole = _jpeg_with_metadata()
    assert _clean(whole, 100)[1].verdict == CLEANED
    assert _clean(whole[:-2], 100)[1].verdict == AS_SENT  # no end of image
    assert _clean(whole + b"trailer", 100)[1].verdict == CLEANED  # zeroed, as no decoder reads it


def test_cleaner_memory_stays_flat_whatever_the_file():
    """16 MiB of big metadata segments, fill bytes and scan data, fed in the 64 KiB pieces
    uploads arrive in: the cleaner holds a piece or two, never the file."""
    chunk = 64 * 1024
    exif = segment(0xE1, (b"Exif\x00\x00" + b"GPS!" * 16384)[: 0xFFFF - 2])  # the longest segment
    head, scan = jpeg(seed=4).split(b"\xff\xda", 1)
    parts = [head, *[exif] * 100, b"\xff" * (4 * 1024 * 1024), b"\xff\xda" + scan[:-2], b"\x55" * (5 * 1024 * 1024), b"\xff\xd9"]
    cleaner = MetadataCleaner()
    tracemalloc.start()
    try:
        for part in parts:
            for at in range(0, len(part), chunk):
                assert b"GPS!" not in cleaner.feed(part[at : at + chunk])
        cleaner.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert cleaner.verdict == CLEANED
    assert peak < 6 * chunk  # input, output and one temporary piece; not the 16 MiB


@settings(max_examples=150, deadline=None)
@given(
    magic=st.sampled_from([JPEG_MAGIC, PNG_MAGIC, b"RIFF\x40\x00\x00\x00WEBPVP8X", b"\x00\x00\x00\x10ftypheic", b""]),
    body=st.binary(max_size=3000),
    step=st.integers(1, 500),
)
def test_cleaner_never_fails_and_does_not_depend_on_chunking(magic, body, step):
    data = magic + body
    whole, cleaner = _clean(data, len(data) or 1)
    pieces, cut = _clean(data, step)
    assert (pieces, cut.verdict) == (whole, cleaner.verdict)
    assert len(whole) <= len(data)


def _doubtful_jpeg() -> bytes:
    """A JPEG with a reserved marker before its Exif: not understood, so stored as sent."""
    data = _jpeg_with_metadata()
    return data[:2] + b"\xff\x02\x00\x02" + data[2:]


def _plain_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(out, "PNG")
    return out.getvalue()


UPLOADS = [
    (_jpeg_with_metadata, "IMG_0001.jpg"),
    (_plain_png, "plain.png"),
    (_doubtful_jpeg, "odd.jpg"),
    (lambda: b"%PDF-1.4 " + GPS_MARK.encode(), "memo.pdf"),
]


def _told(html: str) -> None:
    assert "removed from: IMG_0001.jpg." in html
    assert "No hidden details such as location were found in: plain.png." in html
    assert "stored as sent, without removing hidden details: odd.jpg, memo.pdf." in html


def test_submitted_photos_reporter_told_which_were_cleaned_checked_or_stored_as_sent(app, reporter, officer_key):
    response = reporter.submit(files=[(io.BytesIO(make()), name) for make, name in UPLOADS])
    assert response.status_code == 200
    _told(response.get_data(as_text=True))
    store = app.extensions["whistle.blobs"]
    with app.app_context():
        report = db.session().query(Report).one()
        photo, plain, odd, memo = report.attachments
        stored = file_plaintext(app, report, photo, officer_key)
        metas = [file_meta(report, a, officer_key) for a in report.attachments]
    assert GPS_MARK.encode() not in stored and CAMERA_MARK.encode() not in stored
    assert [m.cleaned for m in metas] == ["jpeg", None, None, None]
    assert metas[0].size == len(stored)
    assert _pixels(stored) == _pixels(_jpeg_with_metadata())


def test_reply_photos_reporter_told_which_were_cleaned_checked_or_stored_as_sent(reporter):
    reporter.open_case(reporter.submit_ok())
    response = reporter.reply("Photos", files=[(io.BytesIO(make()), name) for make, name in UPLOADS])
    assert response.status_code == 303
    _told(reporter.client.get("/case").get_data(as_text=True))


def _jpeg_of_comments(n: int) -> bytes:
    """SOI, n empty comment segments, EOI: n + 1 parts for the walker."""
    return JPEG_MAGIC[:2] + b"\xff\xfe\x00\x02" * n + b"\xff\xd9"


def test_cleaner_walks_20000_parts_and_gives_up_after():
    """Millions of tiny segments are an attack on the walker's time: it walks up to 20,000
    parts (segments and markers), and a file with more passes as sent."""
    out, cleaner = _clean(_jpeg_of_comments(19_999), 65536)
    assert cleaner.verdict == CLEANED and b"\xff\xfe" not in out
    data = _jpeg_of_comments(20_000)
    out, cleaner = _clean(data, 65536)
    assert cleaner.verdict == AS_SENT and len(out) == len(data)


def _jpeg_with(insert: bytes) -> bytes:
    """A plain JPEG with `insert` after its first header segment."""
    found, rest = segments(jpeg(seed=3))
    return b"\xff\xd8" + found[0] + insert + b"".join(found[1:]) + rest


@pytest.mark.parametrize("marker", [0xF0, 0xF7, 0xFD])
def test_cleaner_passes_jpeg_extension_segments_unchanged(marker):
    """JPG0-JPG13 (F0-FD) may carry what a decoder needs: kept byte for byte, walked past."""
    extension = segment(marker, b"decoder data")
    out, cleaner = _clean(_jpeg_with(extension + segment(0xE1, b"Exif\x00\x00MARK")), 7)
    assert cleaner.verdict == CLEANED and extension in out and b"MARK" not in out


def test_cleaner_gives_up_on_a_start_of_image_inside_a_frame():
    data = _jpeg_with(b"\xff\xd8" + segment(0xE1, b"Exif\x00\x00MARK"))
    out, cleaner = _clean(data, 7)
    assert cleaner.verdict == AS_SENT and out == data


def test_cleaner_zeroes_the_jfif_thumbnail_and_keeps_its_header():
    header = b"JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x02\x02"  # version, density, 2x2 thumbnail
    app0 = segment(0xE0, header + b"MARK" * 3)
    data = b"\xff\xd8" + app0 + jpeg(seed=3)[2:]
    out, cleaner = _clean(data, 7)
    assert cleaner.verdict == CLEANED and len(out) == len(data)
    assert out[2 : 2 + 4 + len(header)] == app0[: 4 + len(header)] and b"MARK" not in out
    thumbnail_at = 2 + 4 + len(header)
    assert out == data[:thumbnail_at] + bytes(12) + data[thumbnail_at + 12 :]


def test_cleaner_counts_junk_zero_markers_as_parts():
    data = _jpeg_with(b"\xff\x00" * 20_000)
    out, cleaner = _clean(data, 65536)
    assert cleaner.verdict == AS_SENT and out[-1000:] == data[-1000:]


def test_cleaner_keeps_the_icc_colour_profile_byte_for_byte():
    """Colour is not identifying and a picture looks wrong without its profile: kept whole."""
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = Image.new("RGB", (32, 24), (10, 200, 30))
    exif = Image.Exif()
    exif[0x010F] = CAMERA_MARK
    out = io.BytesIO()
    image.save(out, "JPEG", icc_profile=profile, exif=exif)
    data = out.getvalue()
    icc = data[data.index(b"ICC_PROFILE\x00") - 4 :][: 4 + 14 + len(profile)]
    cleaned, cleaner = _clean(data, 7)
    assert cleaner.verdict == CLEANED and CAMERA_MARK.encode() not in cleaned
    assert icc in cleaned and Image.open(io.BytesIO(cleaned)).info["icc_profile"] == profile


def _palette_apng_with_every_kept_chunk() -> tuple[bytes, bytes]:
    """An animated palette PNG carrying every ancillary chunk the cleaner keeps (colour,
    gamma, transparency, background, histogram, pixel size, HDR, animation), and a text
    chunk it must leave out. Returns the file and that text chunk."""
    from tests.photo_craft import png_chunk, png_chunks

    frames = []
    for n in (1, 2):
        image = Image.new("P", (12, 8), 0)
        image.putpalette([v for c in range(16) for v in (c * 16, 255 - c * 16, (c * 7) % 256)])
        for x in range(12):
            image.putpixel((x, (x * n) % 8), (x + n) % 16)
        frames.append(image)
    out = io.BytesIO()
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:], transparency=0, duration=100)
    chunks = png_chunks(out.getvalue())
    palette_size = len(dict(chunks)[b"PLTE"]) // 3
    icc = b"sRGB\x00\x00" + zlib.compress(b"not a real profile, only kept bytes")
    before_plte = [
        (b"sBIT", b"\x08\x08\x08"),
        (b"gAMA", struct.pack(">I", 45455)),
        (b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)),
        (b"sRGB", b"\x00"),
        (b"iCCP", icc),
        (b"cICP", b"\x01\x0d\x00\x01"),
        (b"mDCV", struct.pack(">6H2H2I", *[1000] * 6, 3127, 3290, 10_000_000, 1)),
        (b"cLLI", struct.pack(">2I", 10_000_000, 4_000_000)),
        (b"pHYs", struct.pack(">IIB", 2835, 2835, 1)),
    ]
    after_plte = [(b"bKGD", b"\x03"), (b"hIST", struct.pack(f">{palette_size}H", *range(palette_size)))]
    text = png_chunk(b"tEXt", b"Author\x00" + CAMERA_MARK.encode())
    data = PNG_MAGIC
    for kind, payload in chunks:
        if kind == b"IEND":
            data += text
        data += png_chunk(kind, payload)
        if kind == b"IHDR":
            data += b"".join(png_chunk(k, p) for k, p in before_plte)
        if kind == b"PLTE":
            data += b"".join(png_chunk(k, p) for k, p in after_plte)
    return data, text


@pytest.mark.parametrize("step", [1, 7, 10**9])
def test_cleaner_keeps_every_chunk_a_palette_animation_needs(step):
    """Palette, transparency, colour, gamma, background, histogram, pixel size, HDR and
    animation chunks are not identifying and the picture is wrong or broken without them:
    every one is kept byte for byte, only the text chunk is left out."""
    from tests.photo_craft import png_chunks
    from tests.photo_judge import frames_pixels

    data, text = _palette_apng_with_every_kept_chunk()
    kinds = [kind for kind, _ in png_chunks(data)]
    for kind in (b"PLTE", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"bKGD", b"pHYs", b"hIST",
                 b"cICP", b"mDCV", b"cLLI", b"acTL", b"fcTL", b"fdAT", b"IDAT"):  # fmt: skip
        assert kind in kinds
    out, cleaner = _clean(data, step)
    assert cleaner.verdict == CLEANED
    assert out == data.replace(text, b"")
    assert [kind for kind, _ in png_chunks(out)] == [kind for kind in kinds if kind != b"tEXt"]
    image = Image.open(io.BytesIO(out))
    assert image.mode == "P" and image.n_frames == 2 and image.info["transparency"] == 0
    assert image.info["gamma"] == pytest.approx(0.45455)
    assert round(image.info["dpi"][0]) == 72 and image.info["icc_profile"].startswith(b"not a real")
    assert frames_pixels(out) == frames_pixels(data)


def _cmyk_jpeg() -> bytes:
    image = Image.new("CMYK", (32, 24), (10, 200, 30, 5))
    for x in range(32):
        image.putpixel((x, x % 24), (x * 8, 255 - x * 8, 7, x))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.mark.parametrize("step", [1, 7, 10**9])
def test_cleaner_keeps_the_adobe_segment_a_cmyk_jpeg_needs(step):
    """The Adobe APP14 segment says how to read CMYK and YCCK colour: a CMYK JPEG comes out
    byte for byte as it was, decoding to the same pixels."""
    data = _cmyk_jpeg()
    assert data[2:6] == b"\xff\xee\x00\x0e" and data[6:11] == b"Adobe"
    out, cleaner = _clean(data, step)
    assert cleaner.verdict == NOTHING_FOUND and out == data
    image = Image.open(io.BytesIO(out))
    assert image.mode == "CMYK" and image.tobytes() == _pixels(data)


def test_cleaner_keeps_only_the_twelve_bytes_of_the_adobe_segment_it_knows():
    data = _cmyk_jpeg()
    adobe = data[6:18]  # "Adobe", version, flags, colour transform
    longer = b"\xff\xd8" + segment(0xEE, adobe + b"MARK" * 3) + data[18:]
    out, cleaner = _clean(longer, 7)
    assert cleaner.verdict == CLEANED
    assert out == b"\xff\xd8" + segment(0xEE, adobe + bytes(12)) + data[18:]
    assert _pixels(out) == _pixels(data)


@pytest.mark.parametrize(
    "marker, payload",
    [
        (0xEE, b"MARKAdobe-not" + bytes(8)),  # APP14 that is not Adobe's
        (0xE0, b"JFXX\x00\x10MARK" + bytes(8)),  # APP0 that is not JFIF (a JFIF extension)
        (0xE1, b"JFIF\x00\x01\x02MARK" + bytes(8)),  # JFIF's name in another segment
        (0xED, b"Adobe\x00MARK" + bytes(8)),  # Adobe's name in another segment
    ],
)
def test_cleaner_neutralises_app_segments_that_only_look_kept(marker, payload):
    """Only APP0 JFIF and APP14 Adobe keep their header: the same names in other segments,
    and other data in those segments, are neutralised whole."""
    data = _jpeg_with(segment(marker, payload))
    out, cleaner = _clean(data, 7)
    assert cleaner.verdict == CLEANED and len(out) == len(data)
    assert out == data.replace(segment(marker, payload), segment(0xEF, bytes(len(payload))))


def _png_with_empty_text_chunks(n: int) -> tuple[bytes, bytes]:
    """A plain PNG with n empty tEXt chunks after IHDR, and its IEND chunk."""
    from tests.photo_craft import png_chunk

    data = _plain_png()
    ihdr_end = 8 + 12 + 13
    return data[:ihdr_end] + png_chunk(b"tEXt", b"") * n + data[ihdr_end:], data[-12:]


def test_cleaner_walks_20000_png_chunks_and_gives_up_after():
    """IHDR, 19,997 empty text chunks, IDAT and IEND are 20,000 chunks: walked; one more
    and the walker gives up (the rest passes as sent)."""
    data, iend = _png_with_empty_text_chunks(20_000 - 3)
    out, cleaner = _clean(data, 65536)
    assert cleaner.verdict == CLEANED and out == _plain_png()
    data, iend = _png_with_empty_text_chunks(20_000 - 2)
    out, cleaner = _clean(data, 65536)
    assert cleaner.verdict == AS_SENT and out.endswith(iend)


def test_cleaner_png_chunk_length_up_to_the_spec_limit_only():
    """PNG lengths are at most 2**31 - 1: such a chunk (cut short here) is walked; one
    claiming more is a doubt and the file is stored as sent."""
    from tests.photo_craft import png_chunk

    plain = _plain_png()
    ihdr_end = 8 + 12 + 13
    for length, verdict, expected in [
        (0x7FFFFFFF, AS_SENT, plain[:ihdr_end]),
        (0x80000000, AS_SENT, None),
    ]:
        data = plain[:ihdr_end] + length.to_bytes(4, "big") + b"tEXtAuthor\x00MARK" + plain[ihdr_end:]
        out, cleaner = _clean(data, 7)
        assert cleaner.verdict == verdict and out == (data if expected is None else expected)
    data = plain[:ihdr_end] + png_chunk(b"tEXt", b"Author\x00MARK") + plain[ihdr_end:]
    assert _clean(data, 7)[0] == plain


@pytest.mark.parametrize("where", ["first", "second"])
def test_cleaner_png_must_start_with_its_header_chunk_and_have_only_one(where):
    from tests.photo_craft import png_chunk

    plain = _plain_png()
    ihdr = plain[8 : 8 + 25]
    text = png_chunk(b"tEXt", b"Author\x00MARK")
    if where == "first":
        data = PNG_MAGIC + text + plain[8:]
    else:
        data = plain[: 8 + 25] + ihdr + text + plain[8 + 25 :]
    out, cleaner = _clean(data, 7)
    assert cleaner.verdict == AS_SENT and out == data


@pytest.mark.parametrize("tail", [b"\x00", b"M", b"MARK" * 100])
def test_cleaner_png_bytes_after_the_end_are_left_out_even_one(tail):
    plain = _plain_png()
    out, cleaner = _clean(plain + tail, 1)
    assert cleaner.verdict == CLEANED and out == plain


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, version: int, payload: bytes) -> bytes:
    return _box(kind, bytes([version, 0, 0, 0]) + payload)


HEIF_PICTURE_TYPES = [b"hvc1", b"hvt1", b"lhv1", b"av01", b"avc1", b"vvc1", b"jpeg", b"j2k1", b"unci", b"grid",
                      b"iden", b"iovl", b"tmap", b"mski"]  # fmt: skip


def _heif(
    brand: bytes,
    items: list[tuple[bytes, bytes]],
    meta_padding: int = 0,
    meta_extra: bytes = b"",
    top_extra: bytes = b"",
    software: bytes = b"MARKSOFTWARE\x00",
    infe_name: bytes = b"\x00",
) -> tuple[bytes, list[int]]:
    """A HEIF file built box by box: ftyp with `brand`, a meta box (hdlr naming the
    writing software, pitm, iinf, iloc, dinf, grpl, and a free box of `meta_padding`
    bytes, then `meta_extra`), `top_extra`, then mdat with each item's data. Returns the
    file and where each item's data lies in it."""
    hdlr = _full_box(b"hdlr", 0, bytes(4) + b"pict" + bytes(12) + software)
    pitm = _full_box(b"pitm", 0, struct.pack(">H", 1))
    infes = b"".join(_full_box(b"infe", 2, struct.pack(">HH", n + 1, 0) + kind + infe_name) for n, (kind, _) in enumerate(items))
    iinf = _full_box(b"iinf", 0, struct.pack(">H", len(items)) + infes)
    dinf = _box(b"dinf", _full_box(b"dref", 0, struct.pack(">I", 1) + _full_box(b"url ", 0, b"")[:8] + b"\x00\x00\x00\x01"))
    grpl = _box(b"grpl", b"")
    padding = _box(b"free", bytes(meta_padding)) if meta_padding else b""

    def meta(offsets: list[int]) -> bytes:
        iloc = struct.pack(">BBH", 0x44, 0x00, len(items))
        for n, ((_, data), offset) in enumerate(zip(items, offsets)):
            iloc += struct.pack(">HHHII", n + 1, 0, 1, offset, len(data))
        return _full_box(b"meta", 0, hdlr + pitm + iinf + _full_box(b"iloc", 0, iloc) + dinf + grpl + padding + meta_extra)

    ftyp = _box(b"ftyp", brand + bytes(4) + brand + b"mif1")
    start = len(ftyp) + len(meta([0] * len(items))) + len(top_extra) + 8
    offsets, at = [], start
    for _, data in items:
        offsets.append(at)
        at += len(data)
    return ftyp + meta(offsets) + top_extra + _box(b"mdat", b"".join(data for _, data in items)), offsets


@pytest.mark.parametrize("brand", [b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"mif2",
                                   b"avif", b"avis"])  # fmt: skip
def test_cleaner_heif_keeps_every_kind_of_picture_item_and_zeroes_the_rest(brand):
    """Every HEIF brand is walked; the data of every kind of picture item (coded, tiled,
    derived, overlays, tone maps, masks) is kept byte for byte, as are dinf and grpl; an
    Exif item's data, the writing software's name and the Exif item's entry are zeroed."""
    items = [(kind, b"PICTURE-" + kind) for kind in HEIF_PICTURE_TYPES]
    items.append((b"Exif", b"\x00\x00\x00\x00Exif\x00\x00MARKGPS"))
    data, offsets = _heif(brand, items)
    out, cleaner = _clean(data, 7)
    assert cleaner.kind == "heif" and cleaner.verdict == CLEANED
    assert len(out) == len(data) and b"MARK" not in out
    for (kind, item), at in zip(items[:-1], offsets):
        assert out[at : at + len(item)] == item
        assert b"infe" in out and out.count(kind + b"\x00") == data.count(kind + b"\x00")
    exif_at, exif = offsets[-1], items[-1][1]
    assert out[exif_at : exif_at + len(exif)] == bytes(len(exif))
    for kind in (b"dinf", b"grpl", b"iinf", b"iloc", b"pitm"):
        at = data.index(kind) - 4
        size = struct.unpack(">I", data[at : at + 4])[0]
        assert out[at : at + size] == data[at : at + size] or kind == b"iinf"
    assert out.replace(b"free", b"Exif", 1) != data  # the Exif entry's type was changed


def test_cleaner_heif_meta_box_up_to_one_mebibyte():
    """The meta box is read whole, up to 1 MiB; a bigger one is a doubt (stored as sent)."""
    items = [(b"hvc1", b"PICTURE"), (b"Exif", b"MARKGPS")]
    small, _ = _heif(b"heic", items)
    meta_size = struct.unpack(">I", small[small.index(b"meta") - 4 : small.index(b"meta")])[0]
    fits, _ = _heif(b"heic", items, meta_padding=(1 << 20) - meta_size - 8)
    assert struct.unpack(">I", fits[fits.index(b"meta") - 4 : fits.index(b"meta")])[0] == 1 << 20
    out, cleaner = _clean(fits, 65536)
    assert cleaner.verdict == CLEANED and b"MARK" not in out
    too_big, _ = _heif(b"heic", items, meta_padding=(1 << 20) - meta_size - 8 + 1)
    out, cleaner = _clean(too_big, 65536)
    assert cleaner.verdict == AS_SENT and out == too_big


def test_cleaner_png_cut_right_after_a_chunk_header_leaves_that_chunk_out():
    """The walker decides on a chunk from its 8-byte header alone: a file cut right after
    a text chunk's header is stored as sent from there, without that header."""
    from tests.photo_craft import png_chunk

    plain = _plain_png()
    data = plain[:33] + png_chunk(b"tEXt", b"Author\x00MARK")[:8]
    for step in (1, 8, 10**9):
        out, cleaner = _clean(data, step)
        assert cleaner.verdict == AS_SENT and out == plain[:33]


HEIF_DESCRIPTIVE_BOXES = [b"free", b"skip", b"uuid", b"udta", b"xml ", b"bxml"]
HEIF_DESCRIPTIVE_PROPERTIES = [b"udes", b"crtt", b"mdft", b"cmin", b"cmex", b"uuid"]


@pytest.mark.parametrize("where", ["meta", "top"])
@pytest.mark.parametrize("kind", HEIF_DESCRIPTIVE_BOXES)
def test_cleaner_heif_descriptive_boxes_become_free_boxes_of_zeros(kind, where):
    """XML, user data, vendor (uuid) and filler boxes, in the meta box or at the top level,
    only describe: each becomes a free box of zeros of the same size."""
    box = _box(kind, b"MARK-" + kind + b"-data")
    items = [(b"hvc1", b"PICTURE"), (b"Exif", b"MARKGPS")]
    data, offsets = _heif(b"heic", items, **{f"{where}_extra": box})
    out, cleaner = _clean(data, 7)
    assert cleaner.verdict == CLEANED and b"MARK" not in out and len(out) == len(data)
    at = data.index(box)
    assert out[at : at + len(box)] == box[:4] + b"free" + bytes(len(box) - 8)
    assert out[offsets[0] : offsets[0] + 7] == b"PICTURE"


@pytest.mark.parametrize("kind", HEIF_DESCRIPTIVE_PROPERTIES)
def test_cleaner_heif_descriptive_properties_become_free_boxes_of_zeros(kind):
    """Item properties that describe (text, creation and modification times, camera
    calibration, vendor ones) are blanked; those that decode (here the size, ispe) are kept."""
    prop = _box(kind, b"MARK-" + kind + b"-property")
    ispe = _full_box(b"ispe", 0, struct.pack(">II", 64, 48))
    iprp = _box(b"iprp", _box(b"ipco", ispe + prop) + _full_box(b"ipma", 0, struct.pack(">IHBBB", 1, 1, 2, 0x81, 0x02)))
    items = [(b"hvc1", b"PICTURE")]
    data, offsets = _heif(b"heic", items, meta_extra=iprp)
    out, cleaner = _clean(data, 7)
    assert cleaner.verdict == CLEANED and b"MARK" not in out and len(out) == len(data)
    at = data.index(prop)
    assert out[at : at + len(prop)] == prop[:4] + b"free" + bytes(len(prop) - 8)
    assert ispe in out and out.replace(out[at : at + len(prop)], prop) == data.replace(b"MARKSOFTWARE", bytes(12))


@pytest.mark.parametrize("step", [1, 7, 10**9])
def test_cleaner_heif_mdat_running_to_the_end_of_the_file(step):
    """A last mdat box of size 0 runs to the end of the file: walked, and the file ends
    where it may."""
    items = [(b"hvc1", b"PICTURE"), (b"Exif", b"MARKGPS")]
    data, offsets = _heif(b"heic", items)
    mdat = data.rindex(b"mdat") - 4
    data = data[:mdat] + bytes(4) + data[mdat + 4 :]
    out, cleaner = _clean(data, step)
    assert cleaner.verdict == CLEANED and b"MARK" not in out
    assert out[offsets[0] : offsets[0] + 7] == b"PICTURE" and out[mdat:] == bytes(4) + b"mdatPICTURE" + bytes(7)
    for cut in range(len(data) - 9, len(data)):  # the last bytes arriving alone
        cleaner = MetadataCleaner()
        pieces = cleaner.feed(data[:cut]) + cleaner.feed(data[cut:-1]) + cleaner.feed(data[-1:]) + cleaner.close()
        assert cleaner.verdict == CLEANED and pieces == out


def test_cleaner_heif_metadata_item_past_the_end_of_the_file_is_stored_as_sent():
    """An Exif item whose data iloc places after the end of the file: the walk cannot
    have zeroed it, so the verdict is not "cleaned"."""
    items = [(b"hvc1", b"PICTURE"), (b"Exif", b"MARKGPS")]
    data, offsets = _heif(b"heic", items)
    mdat = data.rindex(b"mdat") - 4
    data = data[:mdat] + struct.pack(">I", 8 + 7) + data[mdat + 4 : offsets[1]]
    out, cleaner = _clean(data, 7)
    assert cleaner.verdict == AS_SENT and len(out) == len(data)


@pytest.mark.parametrize("step", [1, 7, 10**9])
def test_cleaner_heif_box_with_a_64_bit_size(step):
    """A box whose size is 1 has its real size in the 8 bytes after its type: walked (here
    a skip box, blanked with its 16-byte header kept)."""
    payload = b"MARK-large-box-data"
    large = struct.pack(">I", 1) + b"skip" + struct.pack(">Q", 16 + len(payload)) + payload
    items = [(b"hvc1", b"PICTURE"), (b"Exif", b"MARKGPS")]
    data, offsets = _heif(b"heic", items, top_extra=large)
    out, cleaner = _clean(data, step)
    assert cleaner.verdict == CLEANED and b"MARK" not in out
    at = data.index(large)
    assert out[at : at + len(large)] == large[:4] + b"free" + large[8:16] + bytes(len(payload))
    assert out[offsets[0] : offsets[0] + 7] == b"PICTURE"


def test_cleaner_heif_ending_with_an_empty_box():
    items = [(b"hvc1", b"PICTURE"), (b"Exif", b"MARKGPS")]
    data, offsets = _heif(b"heic", items)
    data += _box(b"free", b"")
    out, cleaner = _clean(data, 7)
    assert cleaner.verdict == CLEANED and out.endswith(b"PICTURE" + bytes(7) + _box(b"free", b""))


def test_cleaner_walks_20000_heif_boxes_and_gives_up_after():
    items = [(b"hvc1", b"PICTURE"), (b"Exif", b"MARKGPS")]
    data, _ = _heif(b"heic", items, top_extra=_box(b"free", b"") * (20_000 - 3))  # with ftyp, meta, mdat
    out, cleaner = _clean(data, 65536)
    assert cleaner.verdict == CLEANED and b"MARK" not in out
    data, _ = _heif(b"heic", items, top_extra=_box(b"free", b"") * (20_000 - 2))
    out, cleaner = _clean(data, 65536)
    assert cleaner.verdict == AS_SENT and out.endswith(b"PICTUREMARKGPS")


def _heif_variant(
    *, iloc_version: int, sizes: tuple[int, int, int, int], id_width: int, in_idat: bool, cleaned: bool, brand=b"heic"
) -> bytes:
    """A HEIF file with a picture item (hvc1), a second picture (grid), an Exif item and an
    XMP (mime) item, in the layout the arguments choose: iloc version, its (offset, length,
    base offset, index) field sizes, 2- or 4-byte item ids (iinf, infe, iref versions), the
    Exif data in mdat or in the meta box's idat. With `cleaned`, the file as the cleaner
    must make it, worked out here: the metadata items' data, names and content types
    zeroed and their type made `free`, their `cdsc` references made `free`, the writing
    software's name zeroed, descriptive properties made free boxes of zeros."""
    offset_size, length_size, base_size, index_size = sizes
    picture, grid = b"PICTURE-DATA", b"GRID-DATA"
    exif, xmp = b"\x00\x00\x00\x00Exif\x00\x00MARKGPS", b"<x:xmpmeta>MARKXMP</x:xmpmeta>"
    meta_items = {3: exif, 4: xmp}

    def u(width: int, value: int) -> bytes:
        return value.to_bytes(width, "big")

    name = bytes(13) if cleaned else b"MARKSOFTWARE\x00"
    hdlr = _full_box(b"hdlr", 0, bytes(4) + b"pict" + bytes(12) + name)
    pitm = _full_box(b"pitm", 0 if id_width == 2 else 1, u(id_width, 1))
    infe_version = 2 if id_width == 2 else 3

    def infe(item: int, kind: bytes, rest: bytes) -> bytes:
        if cleaned and item in meta_items:
            kind, rest = b"free", bytes(len(rest))
        return _full_box(b"infe", infe_version, u(id_width, item) + u(2, 0) + kind + rest)

    infes = infe(1, b"hvc1", b"\x00") + infe(2, b"grid", b"\x00") + infe(3, b"Exif", b"MARKEXIF\x00")
    infes += infe(4, b"mime", b"MARKXMPNAME\x00application/rdf+xml\x00\x00")
    iinf = _full_box(b"iinf", 0 if id_width == 2 else 1, u(id_width, 4) + infes)
    refs = [(b"cdsc", 3, [1]), (b"cdsc", 4, [1]), (b"dimg", 2, [1])]
    iref = _full_box(
        b"iref",
        0 if id_width == 2 else 1,
        b"".join(
            _box(b"free" if cleaned and src in meta_items else kind, u(id_width, src) + u(2, len(to)) + b"".join(u(id_width, t) for t in to))
            for kind, src, to in refs
        ),
    )
    udes = _full_box(b"udes", 0, b"en\x00MARKTITLE\x00\x00\x00")
    if cleaned:
        udes = udes[:4] + b"free" + bytes(len(udes) - 8)
    ispe = _full_box(b"ispe", 0, struct.pack(">II", 64, 48))
    iprp = _box(b"iprp", _box(b"ipco", ispe + udes) + _full_box(b"ipma", 0, struct.pack(">IHBBB", 1, 1, 2, 0x81, 0x02)))
    idat_payload = (bytes(len(exif)) if cleaned else exif) if in_idat else b""
    idat = _box(b"idat", b"IDAT" + idat_payload) if in_idat else b""

    def iloc(file_offsets: dict[int, int]) -> bytes:
        body = bytes([offset_size << 4 | length_size, base_size << 4 | (index_size if iloc_version else 0)])
        body += u(4 if iloc_version == 2 else 2, 4)
        for item, data in ((1, picture), (2, grid), (3, exif), (4, xmp)):
            method = 1 if item == 3 and in_idat else 0
            body += u(4 if iloc_version == 2 else 2, item)
            if iloc_version:
                body += u(2, method)
            body += u(2, 0)  # data in this file
            target = 4 if method else file_offsets[item]  # in idat: after its 4-byte prefix
            base = target // 2 if base_size else 0
            body += u(base_size, base)
            pieces = [(target - base, len(data))] if item != 1 else [(target - base, 5), (target - base + 5, len(data) - 5)]
            body += u(2, len(pieces))
            for offset, length in pieces:
                body += u(index_size, 0) if iloc_version and index_size else b""
                body += u(offset_size, offset) + u(length_size, length)
        return _full_box(b"iloc", iloc_version, body)

    ftyp = _box(b"ftyp", brand + bytes(4) + brand + b"mif1")

    def meta(file_offsets: dict[int, int]) -> bytes:
        return _full_box(b"meta", 0, hdlr + pitm + iloc(file_offsets) + iinf + iref + iprp + idat)

    in_mdat = [(1, picture), (2, grid), (4, xmp)] + ([] if in_idat else [(3, exif)])
    at = len(ftyp) + len(meta(dict.fromkeys(range(1, 5), 0))) + 8
    offsets = {}
    for item, data in in_mdat:
        offsets[item] = at
        at += len(data)
    mdat = b"".join((bytes(len(d)) if cleaned and item in meta_items else d) for item, d in in_mdat)
    return ftyp + meta(offsets) + _box(b"mdat", mdat)


HEIF_LAYOUTS = [
    dict(iloc_version=0, sizes=(4, 4, 0, 0), id_width=2, in_idat=False),
    dict(iloc_version=1, sizes=(4, 4, 4, 0), id_width=2, in_idat=True),
    dict(iloc_version=1, sizes=(8, 8, 8, 4), id_width=2, in_idat=False),
    dict(iloc_version=2, sizes=(4, 8, 0, 8), id_width=4, in_idat=True),
    dict(iloc_version=2, sizes=(8, 4, 4, 4), id_width=4, in_idat=False),
]


@pytest.mark.parametrize("layout", HEIF_LAYOUTS, ids=lambda d: "v{iloc_version}-{sizes}-id{id_width}-idat{in_idat}".format(**d))
def test_cleaner_heif_every_item_layout_cleaned_to_the_exact_byte(layout):
    """iloc versions 0, 1 and 2 with every field size, base offsets, extent indexes, items
    in several extents, 2- and 4-byte item ids, metadata in mdat or in idat: the output is
    exactly the file worked out by hand (see _heif_variant)."""
    data = _heif_variant(**layout, cleaned=False)
    expected = _heif_variant(**layout, cleaned=True)
    assert len(data) == len(expected)
    for step in (1, 7, 10**9):
        out, cleaner = _clean(data, step)
        assert cleaner.verdict == CLEANED and out == expected


def test_cleaner_heif_meta_box_arriving_in_two_pieces_is_waited_for_whole():
    layout = HEIF_LAYOUTS[0]
    data, expected = _heif_variant(**layout, cleaned=False), _heif_variant(**layout, cleaned=True)
    meta = data.index(b"meta") - 4
    end = meta + struct.unpack(">I", data[meta : meta + 4])[0]
    for cut in (meta + 1, meta + 8, meta + 9, end - 30, end - 1, end):
        cleaner = MetadataCleaner()
        out = cleaner.feed(data[:cut]) + cleaner.feed(data[cut:]) + cleaner.close()
        assert cleaner.verdict == CLEANED and out == expected


def test_cleaner_heif_64_bit_box_header_split_anywhere():
    payload = b"MARK-large"
    large = struct.pack(">I", 1) + b"skip" + struct.pack(">Q", 16 + len(payload)) + payload
    empty_large = struct.pack(">I", 1) + b"free" + struct.pack(">Q", 16)
    items = [(b"hvc1", b"PICTURE"), (b"Exif", b"MARKGPS")]
    data, offsets = _heif(b"heic", items, top_extra=large)
    data += empty_large  # a last box that is only its 16-byte header
    at = data.index(large)
    expected = _clean(data, 10**9)[0]
    assert b"MARK" not in expected and expected.endswith(empty_large)
    for cut in [*range(at, at + 17), *range(len(data) - 16, len(data))]:
        cleaner = MetadataCleaner()
        out = cleaner.feed(data[:cut]) + cleaner.feed(data[cut:]) + cleaner.close()
        assert cleaner.verdict == CLEANED and out == expected
    out, cleaner = _clean(data, 1)
    assert cleaner.verdict == CLEANED and out == expected


@pytest.mark.parametrize(
    "data",
    [
        b"RIFF" + struct.pack("<I", 28) + b"WAVE" + b"LIST" + struct.pack("<I", 16) + b"INFOIART" + struct.pack("<I", 4) + b"MARK",
        b"RIFX" + struct.pack("<I", 20) + b"WEBP" + b"EXIF" + struct.pack("<I", 8) + b"MARKGPS!",
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41" + b"\x00\x00\x00\x10udtaMARKMARK",
        b"\x00\x00\x00\x18fytpheic\x00\x00\x00\x00heicmif1" + b"\x00\x00\x00\x10udtaMARKMARK",
    ],
    ids=["riff-wave", "webp-not-riff", "mp4", "heic-brand-without-ftyp"],
)
def test_cleaner_other_riff_and_iso_files_are_not_taken_for_photos(data):
    """Audio and video in RIFF or ISO media containers are not photos: they pass byte for
    byte, with no format named (a WebP walker would turn a WAVE's LIST chunk into JUNK)."""
    for step in (1, 10**9):
        out, cleaner = _clean(data, step)
        assert out == data and cleaner.kind is None and cleaner.verdict == AS_SENT


@pytest.mark.parametrize("kind, verdict", [(b"free", NOTHING_FOUND), (b"skip", CLEANED)])
def test_cleaner_heif_blank_free_box_is_nothing_found_but_a_skip_box_is_renamed(kind, verdict):
    """A top-level free box of zeros is already what the cleaner makes: nothing found. A
    skip box of zeros becomes a free box: that is a change."""
    data, _ = _heif(b"heic", [(b"hvc1", b"PICTURE")], top_extra=_box(kind, bytes(16)), software=b"\x00")
    out, cleaner = _clean(data, 7)
    assert cleaner.verdict == verdict and out == data.replace(_box(kind, bytes(16)), _box(b"free", bytes(16)))


def _heif_exif_at(where: str) -> bytes:
    """A HEIF file whose Exif item's data iloc places over the mdat box's header."""
    items = [(b"hvc1", b"PICTURE"), (b"Exif", b"MARKGPSX")]
    data, offsets = _heif(b"heic", items)
    mdat = data.rindex(b"mdat") - 4
    return data.replace(struct.pack(">II", offsets[1], 8), struct.pack(">II", mdat, 8), 1)


def _heif_meta_with_trailing_bytes() -> bytes:
    data, _ = _heif(b"heic", [(b"hvc1", b"PICTURE")], meta_extra=b"\x00\x00\x00")
    return data


def _heif_huge_64_bit_size() -> bytes:
    large = struct.pack(">I", 1) + b"skip" + struct.pack(">Q", (1 << 56) + 16 + 4) + b"MARK"
    data, _ = _heif(b"heic", [(b"hvc1", b"PICTURE")], top_extra=large)
    return data


@pytest.mark.parametrize("make", [_heif_exif_at, _heif_meta_with_trailing_bytes, _heif_huge_64_bit_size])
def test_cleaner_heif_not_understood_is_not_called_cleaned(make):
    """Metadata placed over a box header, a meta box ending in a fragment of a box, a box
    claiming more than 2**56 bytes: not "cleaned", and box headers left as they were."""
    data = make("mdat") if make is _heif_exif_at else make()
    for step in (1, 7, 10**9):
        out, cleaner = _clean(data, step)
        assert cleaner.verdict == AS_SENT and len(out) == len(data)
        mdat = data.rindex(b"mdat") - 4
        assert out[mdat : mdat + 8] == data[mdat : mdat + 8] or make is _heif_huge_64_bit_size


def _patched(layout: int, find: bytes, new: bytes, after: bytes = b"", cleaned: bool = False) -> bytes:
    """A _heif_variant file with the first `find` (after the first `after`) replaced by
    `new` of the same length."""
    data = _heif_variant(**HEIF_LAYOUTS[layout], cleaned=cleaned)
    at = data.index(find, data.index(after) if after else 0)
    assert len(new) == len(find)
    return data[:at] + new + data[at + len(find) :]


def _iloc_item_one(layout: int) -> int:
    data = _heif_variant(**HEIF_LAYOUTS[layout], cleaned=False)
    return data.index(b"iloc") + 4 + 4 + 2 + (4 if HEIF_LAYOUTS[layout]["iloc_version"] == 2 else 2)


def _with_byte(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + bytes([value]) + data[at + 1 :]


def _v0_extent(item_offset_of: str) -> bytes:
    """Layout 0 with the Exif item's single extent (offset, length) changed."""
    data = _heif_variant(**HEIF_LAYOUTS[0], cleaned=False)
    exif_at = data.index(b"\x00\x00\x00\x00Exif\x00\x00MARKGPS")
    picture_at = data.index(b"PICTURE-DATA")
    new = {
        "empty": struct.pack(">II", exif_at, 0),
        "in ftyp": struct.pack(">II", 8, 8),
        "over the picture": struct.pack(">II", picture_at + 2, 8),
    }[item_offset_of]
    old = struct.pack(">II", exif_at, 17)
    assert data.count(old) == 1
    return data.replace(old, new, 1)


HEIF_MALFORMED = {
    "meta version 1": lambda: _with_byte(_heif_variant(**HEIF_LAYOUTS[0], cleaned=False), _heif_variant(**HEIF_LAYOUTS[0], cleaned=False).index(b"meta") + 4, 1),
    "two iinf": lambda: _patched(0, b"pitm", b"iinf"),
    "no hdlr": lambda: _patched(0, b"hdlr", b"free"),
    "no iinf": lambda: _patched(0, b"iinf", b"free"),
    "no iloc": lambda: _patched(0, b"iloc", b"free"),
    "iloc version 3": lambda: _with_byte(_heif_variant(**HEIF_LAYOUTS[1], cleaned=False), _heif_variant(**HEIF_LAYOUTS[1], cleaned=False).index(b"iloc") + 4, 3),
    "construction method 2": lambda: _with_byte(_heif_variant(**HEIF_LAYOUTS[1], cleaned=False), _iloc_item_one(1) + 3, 2),
    "data in another file": lambda: _with_byte(_heif_variant(**HEIF_LAYOUTS[1], cleaned=False), _iloc_item_one(1) + 5, 1),
    "infe version 1": lambda: _patched(0, b"\x02\x00\x00\x00\x00\x03", b"\x01\x00\x00\x00\x00\x03"),
    "metadata of length 0": lambda: _v0_extent("empty"),
    "metadata in ftyp": lambda: _v0_extent("in ftyp"),
    "metadata over the picture": lambda: _v0_extent("over the picture"),
}  # fmt: skip


@pytest.mark.parametrize("make", HEIF_MALFORMED.values(), ids=HEIF_MALFORMED.keys())
def test_cleaner_heif_meta_not_understood_is_stored_as_sent(make):
    data = make()
    for step in (7, 10**9):
        out, cleaner = _clean(data, step)
        assert cleaner.verdict == AS_SENT and out == data


def test_cleaner_heif_meta_flags_and_free_boxes_in_meta_are_accepted():
    """The meta box's flags are not looked at; several free boxes in it are fine."""
    flagged = _heif_variant(**HEIF_LAYOUTS[0], cleaned=False)
    expected = _heif_variant(**HEIF_LAYOUTS[0], cleaned=True)
    meta = flagged.index(b"meta") + 4
    for flag in (1, 2, 3):
        out, cleaner = _clean(_with_byte(flagged, meta + flag, 1), 7)
        assert cleaner.verdict == CLEANED and out == _with_byte(expected, meta + flag, 1)
    two_free = _patched(0, b"pitm", b"free")
    two_free = two_free.replace(b"iref", b"free", 1)
    assert two_free.count(b"free") == 2
    out, cleaner = _clean(two_free, 7)
    assert cleaner.verdict == CLEANED and b"MARK" not in out


@pytest.mark.parametrize(
    "change, verdict",
    [
        ({}, NOTHING_FOUND),
        ({"meta_extra": _box(b"free", b"MARK")}, CLEANED),  # a free box in meta with something in it
        ({"software": b"MARKSOFT\x00"}, CLEANED),  # only the writing software's name
        ({"software": b""}, NOTHING_FOUND),  # a handler box without a name
        ({"infe_name": b""}, NOTHING_FOUND),  # item entries without names
        ({"meta_extra": _box(b"free", bytes(8))}, NOTHING_FOUND),  # already a free box of zeros
        ({"meta_extra": _box(b"xml ", bytes(8))}, CLEANED),  # renamed free: a change
        ({"meta_extra": _box(b"iprp", _box(b"ipco", _box(b"free", bytes(8))))}, NOTHING_FOUND),
        ({"meta_extra": _box(b"iprp", _box(b"ipco", _box(b"udes", bytes(8))))}, CLEANED),
    ],
)
def test_cleaner_heif_verdict_says_whether_anything_was_changed(change, verdict):
    data, _ = _heif(b"heic", [(b"hvc1", b"PICTURE")], **{"software": b"\x00", **change})
    out, cleaner = _clean(data, 7)
    assert cleaner.verdict == verdict and b"MARK" not in out and len(out) == len(data)


@pytest.mark.parametrize("reference, verdict", [(struct.pack(">H", 2), CLEANED), (b"\x02", AS_SENT)])
def test_cleaner_heif_shortest_reference_entry(reference, verdict):
    """A reference entry holds at least its source item id (2 bytes in iref version 0)."""
    iref = _full_box(b"iref", 0, _box(b"cdsc", reference))
    data, _ = _heif(b"heic", [(b"hvc1", b"PICTURE"), (b"Exif", b"MARKGPS")], meta_extra=iref)
    out, cleaner = _clean(data, 7)
    assert cleaner.verdict == verdict
    if verdict == CLEANED:
        assert _box(b"free", reference) in out and b"MARK" not in out


@pytest.mark.parametrize(
    "extra, verdict",
    [
        (struct.pack(">I", 1) + b"free" + struct.pack(">Q", 20) + b"MARK", CLEANED),  # a 64-bit size
        (struct.pack(">I", 0) + b"free" + b"MARK-to-the-end", CLEANED),  # size 0: to the end of meta
        (struct.pack(">I", 40) + b"free" + b"MARK", AS_SENT),  # past the end of meta
        (struct.pack(">I", 1) + b"free" + struct.pack(">Q", 12) + b"MARK", AS_SENT),  # smaller than its header
        (b"\x00\x00\x00", AS_SENT),  # a fragment of a box header
        (struct.pack(">I", 1) + b"free" + struct.pack(">Q", 16), CLEANED),  # only a 64-bit header
        (struct.pack(">I", 1) + b"free" + struct.pack(">Q", (1 << 56) + 20) + b"MARK", AS_SENT),  # over 2**56
        (struct.pack(">I", 1) + b"free" + b"\x00\x00\x00\x00", AS_SENT),  # a 64-bit header cut
    ],
    ids=["64-bit", "size-0", "past-the-end", "smaller-than-header", "fragment", "64-bit-empty", "64-bit-huge", "64-bit-cut"],
)
def test_cleaner_heif_boxes_inside_meta_strictly_bounded(extra, verdict):
    data, _ = _heif(b"heic", [(b"hvc1", b"PICTURE")], meta_extra=extra)
    for step in (7, 10**9):
        out, cleaner = _clean(data, step)
        assert cleaner.verdict == verdict
        if verdict == CLEANED:
            assert b"MARK" not in out and len(out) == len(data)
        else:
            assert out == data


_IDAT_EXIF = bytes.fromhex("0003000100000000000200010000000200000011")  # layout 1: Exif in idat, 17 bytes at 4


HEIF_MALFORMED_MORE = {
    "idat metadata past its end": lambda: _patched(1, _IDAT_EXIF, _IDAT_EXIF[:-4] + struct.pack(">I", 18)),
    "idat metadata of length 0": lambda: _patched(1, _IDAT_EXIF, _IDAT_EXIF[:-4] + struct.pack(">I", 0)),
    "idat metadata without idat": lambda: _patched(1, b"idat", b"free"),
    "infe cut in its type": lambda: _patched(0, _full_box(b"infe", 2, struct.pack(">HH", 1, 0) + b"hvc1\x00"),
                                             struct.pack(">I", 8 + 4 + 2 + 2 + 3) + b"infe" + bytes([2, 0, 0, 0]) + struct.pack(">HH", 1, 0) + b"hvc1\x00"),
    "iloc counting one item more": lambda: _patched(0, bytes.fromhex("44000004"), bytes.fromhex("44000005")),
}  # fmt: skip


@pytest.mark.parametrize("make", HEIF_MALFORMED_MORE.values(), ids=HEIF_MALFORMED_MORE.keys())
def test_cleaner_heif_item_data_not_understood_is_stored_as_sent(make):
    data = make()
    for step in (7, 10**9):
        out, cleaner = _clean(data, step)
        assert cleaner.verdict == AS_SENT and out == data


def test_cleaner_heif_metadata_in_idat_already_zero_is_nothing_found():
    """Exif data in idat that is already zeros, with nothing else to change: nothing found."""
    data = _heif_variant(**HEIF_LAYOUTS[1], cleaned=True)
    out, cleaner = _clean(data, 7)
    assert out == data and cleaner.verdict == NOTHING_FOUND


def test_cleaner_heif_second_meta_box_is_stored_as_sent():
    data, _ = _heif(b"heic", [(b"hvc1", b"PICTURE")])
    meta = data.index(b"meta") - 4
    meta_box = data[meta : meta + struct.unpack(">I", data[meta : meta + 4])[0]]
    twice, _ = _heif(b"heic", [(b"hvc1", b"PICTURE")], top_extra=meta_box)
    out, cleaner = _clean(twice, 7)
    assert cleaner.verdict == AS_SENT


def test_cleaner_heif_metadata_in_idat_is_a_change_on_its_own():
    cleaned = _heif_variant(**HEIF_LAYOUTS[1], cleaned=True)
    exif = b"\x00\x00\x00\x00Exif\x00\x00MARKGPS"
    data = cleaned.replace(b"IDAT" + bytes(len(exif)), b"IDAT" + exif, 1)
    assert data != cleaned
    out, cleaner = _clean(data, 7)
    assert out == cleaned and cleaner.verdict == CLEANED


@pytest.mark.parametrize(
    "iloc_body",
    [b"", b"\x44", b"\x44\x00", b"\x44\x00\x00", b"\x44\x00\x00\x01", b"\x44\x00\x00\x01\x00\x01\x00\x00"],
    ids=["no-sizes", "one-size-byte", "no-count", "half-count", "item-missing", "item-cut"],
)
def test_cleaner_heif_iloc_cut_at_the_end_of_meta_is_stored_as_sent(iloc_body):
    """An iloc box that ends early, as the last box in meta (nothing after it to misread):
    stored as sent, never an error."""
    hdlr = _full_box(b"hdlr", 0, bytes(4) + b"pict" + bytes(12) + b"\x00")
    iinf = _full_box(b"iinf", 0, struct.pack(">H", 1) + _full_box(b"infe", 2, struct.pack(">HH", 1, 0) + b"hvc1\x00"))
    meta = _full_box(b"meta", 0, hdlr + iinf + _full_box(b"iloc", 0, iloc_body))
    data = _box(b"ftyp", b"heic" + bytes(4) + b"heicmif1") + meta + _box(b"mdat", b"PICTURE")
    for step in (7, 10**9):
        out, cleaner = _clean(data, step)
        assert cleaner.verdict == AS_SENT and out == data


@pytest.mark.parametrize("type_bytes", [b"", b"E", b"Ex", b"Exi"])
def test_cleaner_heif_item_entry_cut_at_the_end_of_meta_is_stored_as_sent(type_bytes):
    """An item entry that ends inside its item type, as the last thing in meta (nothing
    after it to misread): stored as sent, never an error."""
    hdlr = _full_box(b"hdlr", 0, bytes(4) + b"pict" + bytes(12) + b"\x00")
    iloc = _full_box(b"iloc", 0, b"\x44\x00\x00\x00")
    iinf = _full_box(b"iinf", 0, struct.pack(">H", 1) + _full_box(b"infe", 2, struct.pack(">HH", 1, 0) + type_bytes))
    meta = _full_box(b"meta", 0, hdlr + iloc + iinf)
    data = _box(b"ftyp", b"heic" + bytes(4) + b"heicmif1") + meta + _box(b"mdat", b"PICTURE")
    for step in (7, 10**9):
        out, cleaner = _clean(data, step)
        assert cleaner.verdict == AS_SENT and out == data
