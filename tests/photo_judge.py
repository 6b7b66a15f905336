"""Independent judges of a cleaned photo: exiftool and Pillow (with pillow-heif), reading
every frame. Neither shares code with whistle's cleaner, and they fail differently (exiftool
stops reading a JPEG at junk between segments; Pillow reads past it), so both are asked.

`leaks(data)` lists what either reader still finds; an empty list means neither found
Exif, XMP, IPTC, GPS, maker notes, comments or text metadata in any frame. The cleaner is
only run here (`clean_every_way`), never consulted about its own output.
"""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
import tempfile
import warnings
from pathlib import Path

from PIL import Image

from whistle.cleaning import MetadataCleaner

try:
    import pillow_heif
except ImportError:  # pragma: no cover - a test dependency; HEIF tests then fail loudly
    pillow_heif = None
else:
    pillow_heif.register_heif_opener()

# exiftool family-0 groups a cleaned photo may show: the file itself, the picture's
# structure (JFIF, MPF frame index, Adobe colour transform, PNG header, RIFF and HEIF
# boxes), and the ICC colour profile kept for correct colours.
_EXIFTOOL_GROUPS = {"ExifTool", "File", "System", "Composite", "JFIF", "ICC_Profile", "MPF", "APP14", "PNG", "RIFF", "QuickTime"}
_COMPOSITE_ALLOWED = {"ImageSize", "Megapixels"}
# Tag names that say who, where, when or with what: never allowed outside the ICC profile.
_IDENTIFYING = re.compile(
    r"GPS|Make|Model|Serial|Owner|Artist|Author|Creator|Copyright|Rights|Date|Time|Software|Comment|"
    r"Description|Title|Keyword|Location|City|Country|Latitude|Longitude|Lens|Camera|UserData|Exif|XMP|IPTC",
    re.IGNORECASE,
)
# Harmless ones the pattern above would catch.
_STRUCTURAL = {"ExifToolVersion", "FileModifyDate", "FileAccessDate", "FileInodeChangeDate", "ImageDescription:none"}

# Pillow `info` keys that are decoding or display parameters, not metadata.
_PILLOW_INFO_ALLOWED = {
    "jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "adobe", "adobe_transform", "progressive",
    "progression", "icc_profile", "mp", "mpoffset", "gamma", "srgb", "chromaticity", "transparency", "aspect",
    "loop", "duration", "background", "bbox", "blend", "disposal", "default_image", "interlace",
    # pillow-heif
    "primary", "bit_depth", "chroma", "icc_profile_type", "original_orientation", "tiling", "thumbnails",
    "depth_images", "aux", "nclx_profile", "entity_groups", "content_light_level",
}  # fmt: skip
_PILLOW_INFO_EMPTY = {"exif", "xmp", "metadata"}  # may be present only when empty


def exiftool_leaks(data: bytes) -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "photo"
        path.write_bytes(data)
        result = subprocess.run(
            ["exiftool", "-json", "-a", "-u", "-ee", "-G3:0:1", "-n", str(path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if not result.stdout.strip():
        return [f"exiftool could not read the file: {result.stderr.strip()}"]
    found = []
    for key, value in json.loads(result.stdout)[0].items():
        if key == "SourceFile":
            continue
        groups, _, tag = key.rpartition(":")
        family0 = re.sub(r"^(Main|Doc[\d-]+):", "", groups).split(":")[0]  # Doc2: the MPO's frame 2
        if family0 not in _EXIFTOOL_GROUPS:
            found.append(f"exiftool {key} = {value!r}"[:160])
        elif family0 == "Composite" and tag not in _COMPOSITE_ALLOWED:
            found.append(f"exiftool {key} = {value!r}"[:160])
        elif family0 not in ("ICC_Profile", "File", "System", "ExifTool") and _IDENTIFYING.search(tag):
            found.append(f"exiftool {key} = {value!r}"[:160])
    return found


def pillow_leaks(data: bytes) -> list[str]:
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            image = Image.open(io.BytesIO(data))
        except Exception as error:  # noqa: BLE001 - a file Pillow cannot open is a finding
            return [f"Pillow cannot open the file: {error!r}"[:160]]
        for frame in range(getattr(image, "n_frames", 1)):
            try:
                image.seek(frame)
                exif = image.getexif()
            except Exception as error:  # noqa: BLE001 - a reader failing on what is left is a finding
                found.append(f"Pillow frame {frame}: getexif() failed: {error!r}")
                continue
            # Pillow's AVIF reader makes an Exif Orientation from the file's rotation and
            # mirroring boxes (a display parameter); only that alone is not a finding.
            if len(exif) and not (image.format == "AVIF" and set(exif) == {0x0112}):
                found.append(f"Pillow frame {frame}: Exif tags {sorted(exif)[:8]}")
            for ifd in (0x8769, 0x8825, 0xA005):  # Exif, GPS, Interop
                if exif.get_ifd(ifd):
                    found.append(f"Pillow frame {frame}: IFD {ifd:#x} {dict(exif.get_ifd(ifd))!r}"[:160])
            for key, value in image.info.items():
                if key == "exif" and image.format == "AVIF" and set(exif) == {0x0112}:
                    continue
                if key in _PILLOW_INFO_EMPTY:
                    if value:
                        found.append(f"Pillow frame {frame}: info[{key!r}] = {value!r}"[:160])
                elif key not in _PILLOW_INFO_ALLOWED:
                    found.append(f"Pillow frame {frame}: info[{key!r}] = {value!r}"[:160])
    return found


def leaks(data: bytes) -> list[str]:
    """What exiftool or Pillow still finds of identifying metadata in any frame."""
    return exiftool_leaks(data) + pillow_leaks(data)


def frames_pixels(data: bytes) -> list[bytes]:
    """The decoded pixels of every frame, for comparing before and after cleaning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = Image.open(io.BytesIO(data))
        pixels = []
        for frame in range(getattr(image, "n_frames", 1)):
            image.seek(frame)
            pixels.append(image.tobytes())
        return pixels


def clean_every_way(data: bytes) -> tuple[bytes, str]:
    """The cleaner's output and verdict, after checking that they are the same whether the
    file arrives whole, a byte at a time (small files), in 64 KiB pieces as uploads
    arrive, or in random pieces."""
    sizes: list[list[int] | int] = [len(data) or 1, 65536, 7]
    if len(data) <= 300_000:
        sizes.append(1)
    for seed in range(3):
        rng = random.Random(seed)
        pieces, left = [], len(data)
        while left > 0:
            pieces.append(min(left, rng.choice([1, 2, 3, 100, 4095, 65536, rng.randint(1, 200_000)])))
            left -= pieces[-1]
        sizes.append(pieces)
    results = set()
    for size in sizes:
        cleaner = MetadataCleaner()
        out, at = [], 0
        for piece in [size] * (len(data) // size + 1) if isinstance(size, int) else size:
            out.append(cleaner.feed(data[at : at + piece]))
            at += piece
        out.append(cleaner.close())
        results.add((b"".join(out), cleaner.verdict))
    assert len(results) == 1, "the output depends on how the upload was cut into pieces"
    return results.pop()


def only_neutralised(original: bytes, cleaned: bytes) -> list[int]:
    """Offsets where the cleaned file differs from the original other than by a byte set
    to zero, a JPEG marker turned into APP15 (0xEF after 0xFF), a box or chunk renamed
    `free` or `JUNK`, or a WebP's VP8X flags no longer announcing EXIF and XMP. Empty when
    the picture's compressed data cannot have changed."""
    assert len(original) == len(cleaned)
    odd = []
    step = 4096
    for block in range(0, len(original), step):
        if original[block : block + step] == cleaned[block : block + step]:
            continue
        for at in range(block, min(block + step, len(original))):
            was, now = original[at], cleaned[at]
            if was == now or now == 0 or (now == 0xEF and cleaned[at - 1] == 0xFF):
                continue
            if at == 20 and cleaned[:4] == b"RIFF" and cleaned[12:16] == b"VP8X" and now == was & ~0x0C:
                continue
            if any(cleaned[at - k : at - k + 4] in (b"free", b"JUNK") for k in range(4)):
                continue
            odd.append(at)
    return odd
