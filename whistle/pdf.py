"""PDF documents from the service's own HTML pages: WeasyPrint lays them out with Pango
and HarfBuzz, which shape Thai (stacked vowels and tone marks) and break Thai lines
between words (libthai's dictionary), as no simple PDF writer does.

The Thai font comes from the system (Debian's `fonts-tlwg-laksaman-otf`, installed by
`.ci/run` and README's production steps; Laksaman is metric-compatible with TH Sarabun
PSK, the font of Thai official documents). Rendering never reaches the network: the
only resources a page may load are this package's static files.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

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


class UnsafeResource(ValueError):
    """A page asked the renderer for something other than the package's static files."""


def _fetch(url: str, *args, **kwargs):
    from weasyprint.urls import URLFetcherResponse

    prefix = BASE_URL + "static/"
    if not url.startswith(prefix):
        raise UnsafeResource("only the service's own static files are loaded")
    path = (STATIC / url[len(prefix):].split("?")[0]).resolve()
    if STATIC not in path.parents or not path.is_file():
        raise UnsafeResource("no such static file")
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": mime})


def render(html: str) -> bytes:
    """The PDF of a page of ours (its HTML as rendered for the browser)."""
    import weasyprint  # loads Pango: only when a PDF is asked for

    document = weasyprint.HTML(string=html, base_url=BASE_URL, url_fetcher=_fetch)
    return document.write_pdf(stylesheets=[weasyprint.CSS(string=PRINT_CSS)])
