"""Real photos from phones and cameras of many makers (tests/photos/README.md says where
each comes from): after cleaning, neither exiftool nor Pillow finds anything identifying
in any frame, the pictures decode to the same pixels, and only metadata bytes changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.photo_craft import PNG_SIGNATURE, png_chunks
from tests.photo_judge import clean_every_way, frames_pixels, leaks, only_neutralised
from whistle.cleaning import AS_SENT, CLEANED

PHOTOS = sorted(p for p in (Path(__file__).parent / "photos").iterdir() if p.suffix != ".md")
# Real files the cleaner must not claim to have cleaned, and why.
STORED_AS_SENT = {
    "exiftool_ExifTool.jpg": "its MPF index names a second frame past the end of the file",
}


def test_cleaning_photos_cover_every_format():
    suffixes = {p.suffix for p in PHOTOS}
    assert {".jpg", ".mpo", ".png", ".webp", ".heic"} <= suffixes


@pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.name)
def test_cleaning_real_photo_leaves_nothing_identifying(path):
    original = path.read_bytes()
    cleaned, verdict = clean_every_way(original)
    if path.name in STORED_AS_SENT:
        assert verdict == AS_SENT
        return
    assert leaks(original), "a sample with nothing to remove tests nothing"
    assert verdict == CLEANED
    assert leaks(cleaned) == []
    assert frames_pixels(cleaned) == frames_pixels(original)
    if original.startswith(PNG_SIGNATURE):
        assert [c for c in png_chunks(cleaned) if c[0] == b"IDAT"] == [c for c in png_chunks(original) if c[0] == b"IDAT"]
    else:
        assert only_neutralised(original, cleaned) == []


@pytest.mark.parametrize("path", [p for p in PHOTOS if p.name not in STORED_AS_SENT], ids=lambda p: p.name)
def test_cleaning_a_cleaned_photo_again_finds_nothing(path):
    cleaned, _ = clean_every_way(path.read_bytes())
    again, verdict = clean_every_way(cleaned)
    assert (again, verdict) == (cleaned, "nothing_found")
