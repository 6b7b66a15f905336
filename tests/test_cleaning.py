"""Photos lose their identifying metadata before they are sealed; other files pass as sent."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

PIL = pytest.importorskip("PIL")
from PIL import Image, PngImagePlugin  # noqa: E402

from whistle import crypto, db  # noqa: E402
from whistle.cleaning import JPEG_MAGIC, PNG_MAGIC, MetadataCleaner  # noqa: E402
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
    assert cleaned == data and cleaner.cleaned is None


@settings(max_examples=150, deadline=None)
@given(magic=st.sampled_from([JPEG_MAGIC, PNG_MAGIC, b""]), body=st.binary(max_size=3000), step=st.integers(1, 500))
def test_cleaner_never_fails_and_does_not_depend_on_chunking(magic, body, step):
    data = magic + body
    whole, _ = _clean(data, len(data) or 1)
    assert _clean(data, step)[0] == whole
    assert len(whole) <= len(data)


def test_submitted_photo_stored_without_metadata_and_reporter_told(app, reporter, officer_key):
    response = reporter.submit(files=[(io.BytesIO(_jpeg_with_metadata()), "IMG_0001.jpg"),
                                      (io.BytesIO(b"%PDF-1.4 " + GPS_MARK.encode()), "memo.pdf")])
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "removed from: IMG_0001.jpg" in html
    assert "stored as sent, without removing hidden details: memo.pdf" in html
    store = app.extensions["whistle.blobs"]
    with app.app_context():
        report = db.session().query(Report).one()
        photo, memo = report.attachments
        plain = file_plaintext(app, report, photo, officer_key)
        meta = file_meta(report, photo, officer_key)
    assert GPS_MARK.encode() not in plain and CAMERA_MARK.encode() not in plain
    assert meta.cleaned == "jpeg" and meta.size == len(plain)
    assert _pixels(plain) == _pixels(_jpeg_with_metadata())
