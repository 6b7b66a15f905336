"""PDF documents (and their PNG pictures) from the service's own HTML pages: WeasyPrint lays them out with Pango
and HarfBuzz, which shape Thai (stacked vowels and tone marks) and break Thai lines
between words (libthai's dictionary), as no simple PDF writer does. Pictures of a page
(`to_png`) come from poppler's `pdftoppm` (Debian's `poppler-utils`).

The Thai font comes from the system (Debian's `fonts-tlwg-laksaman-otf`, installed by
`.ci/run` and README's production steps; Laksaman is metric-compatible with TH Sarabun
PSK, the font of Thai official documents). Rendering never reaches the network: the
only resources a page may load are this package's static files and `data:` addresses
(a picture the page carries inside itself, such as the organisation's seal).
"""

from __future__ import annotations

import base64
import mimetypes
import re
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote_to_bytes

STATIC = Path(__file__).resolve().parent / "static"
#: The address pages are laid out under; only its /static/ files are served to the renderer.
BASE_URL = "http://whistle.invalid/"
PRINT_CSS = """
@page { size: A4; margin: 18mm 16mm 20mm; @bottom-right { content: counter(page) " / " counter(pages); font-size: 10pt; } }
body, body * { font-family: "Laksaman", "TH Sarabun New", "Garuda", "Loma", sans-serif !important; }
body { font-size: 15pt; line-height: 1.35; }
header.site, footer.site, .no-print, .notice, nav { display: none !important; }
.wrap, .wrap.wide { max-width: none; padding: 0; }
h1 { font-size: 21pt; } h2 { font-size: 17pt; margin-top: 12pt; } h3 { font-size: 15pt; }
table { border-collapse: collapse; width: 100%; page-break-inside: auto; }
th, td { border: 0.5pt solid #999; padding: 2pt 4pt; vertical-align: top; }
"""


#: A glyph named for one code point, plainly or as a variant: "uni0E39", "uni0E48.low".
_GLYPH_NAME = re.compile(r"uni([0-9A-F]{4})(?:\.[A-Za-z0-9_]+)?")


def _true_text(fonts) -> None:
    """Give each Thai glyph the character it draws in the PDF's text layer.

    WeasyPrint maps each glyph to the text of its cluster the first time it draws it, and
    in a cluster of stacked marks it can give a glyph its neighbour's text: with Laksaman,
    SARA UU in "อยู่" came back from pdftotext as MAI EK once "ผ่าน" had been drawn. A
    glyph whose name says its code point (uniXXXX, or a variant uniXXXX.low) is mapped
    to that character; ligatures of several characters keep theirs."""
    import io

    from fontTools.ttLib import TTFont

    for font in fonts.values():
        if getattr(font, "bitmap", False) or not font.to_unicode:
            continue
        names = TTFont(io.BytesIO(font.file_content), fontNumber=font.index, lazy=True).getGlyphOrder()
        for glyph, text in list(font.to_unicode.items()):
            match = _GLYPH_NAME.fullmatch(names[glyph]) if glyph < len(names) else None
            if match is None:
                continue
            char = chr(int(match.group(1), 16))
            if len(text) <= 1 or char not in text:
                font.to_unicode[glyph] = char


def _with_true_text() -> None:
    """Have WeasyPrint correct the text of the glyphs just before it writes the fonts."""
    import weasyprint.pdf as writer

    if getattr(writer.build_fonts_dictionary, "whistle_true_text", False):
        return
    original = writer.build_fonts_dictionary

    def build_fonts_dictionary(pdf, fonts, *args, **kwargs):
        _true_text(fonts)
        return original(pdf, fonts, *args, **kwargs)

    build_fonts_dictionary.whistle_true_text = True  # type: ignore[attr-defined]
    writer.build_fonts_dictionary = build_fonts_dictionary


class UnsafeResource(ValueError):
    """A page asked the renderer for something other than the package's static files."""


def _fetch(url: str, *args, **kwargs):
    from weasyprint.urls import URLFetcherResponse

    if url.startswith("data:"):
        head, _, data = url[5:].partition(",")
        mime = head.split(";")[0] or "text/plain"
        body = base64.b64decode(data) if head.endswith(";base64") else unquote_to_bytes(data)
        return URLFetcherResponse(url, body, {"Content-Type": mime})
    prefix = BASE_URL + "static/"
    if not url.startswith(prefix):
        raise UnsafeResource("only the service's own static files are loaded")
    path = (STATIC / url[len(prefix):].split("?")[0]).resolve()
    if STATIC not in path.parents or not path.is_file():
        raise UnsafeResource("no such static file")
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": mime})


def render(html: str, stylesheet: str = PRINT_CSS) -> bytes:
    """The PDF of a page of ours (its HTML as rendered for the browser). `stylesheet` lays
    a browser page out on A4; a page made for paper brings its own and passes ""."""
    import weasyprint  # loads Pango: only when a PDF is asked for

    _with_true_text()
    document = weasyprint.HTML(string=html, base_url=BASE_URL, url_fetcher=_fetch)
    return document.write_pdf(stylesheets=[weasyprint.CSS(string=stylesheet)] if stylesheet else [])


def to_png(pdf: bytes, *, dpi: int = 150, size: tuple[int, int] | None = None) -> bytes:
    """The first page of a PDF as a PNG, at `dpi`, or scaled to exactly `size` pixels."""
    with tempfile.TemporaryDirectory(prefix="whistle-png-") as folder:
        source, target = Path(folder) / "page.pdf", Path(folder) / "page"
        source.write_bytes(pdf)
        scale = ["-scale-to-x", str(size[0]), "-scale-to-y", str(size[1])] if size else ["-r", str(dpi)]
        subprocess.run(["pdftoppm", "-png", "-singlefile", "-f", "1", "-l", "1", *scale, str(source), str(target)],
                       check=True, capture_output=True, timeout=120)
        return target.with_suffix(".png").read_bytes()
