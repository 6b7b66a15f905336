"""The publicity kit: what makes the channel found, all of it made from configuration.

* two snippets for the municipality's own website (a button that opens the channel, and
  a frame of the public statistics), plain HTML to paste: no script, no tracking, and no
  Referer sent to the channel;
* an A4 poster, an A5 flyer and an A5 flyer for the organisation's own staff, in Thai
  and English, as PDF and PNG, with a QR code of the channel's plain address;
* the share image (1200 x 630 PNG) that the landing page names in its Open Graph and
  Twitter card tags, so that a link pasted into LINE or Facebook shows a proper card.

The channel's address is `site_url`; nothing here is made without it (`NotConfigured`).
Rendering needs a request context (for the language): the views have one, and the
`whistle publicity` command makes one. Nothing here reads a case.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from pathlib import Path

import segno
from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _

from . import pdf
from .config import SEAL_TYPES, Settings, seal_path

LANGUAGES = ("th", "en")
#: The printed documents: name -> (paper, audience).
DOCUMENTS = {"poster": ("A4", "public"), "flyer": ("A5", "public"), "staff-flyer": ("A5", "staff")}
#: The snippets for the municipality's website: name -> template.
SNIPPETS = {"button": "publicity/button.html", "statistics": "publicity/statistics_embed.html"}
SHARE_SIZE = (1200, 630)
#: Pixels per inch of the PNG pictures of the poster and flyers (A4: 1240 x 1754).
PNG_DPI = 150


class NotConfigured(ValueError):
    """A setting the kit needs is missing or unusable; the message names it."""


@dataclass(frozen=True)
class Channel:
    """Where the channel is, as the kit prints and links it."""

    address: str  # site_url exactly as configured: what the QR code holds
    link: str  # the landing page: the address with its path
    shown: str  # the address as printed for typing (no https://)
    onion: str
    statistics: str  # the statistics page to embed (always the current fiscal year)


def channel(settings: Settings) -> Channel:
    if not settings.site_url:
        raise NotConfigured(_("Set site_url in config.toml to the channel's public address (https://…): the snippets, poster and flyers all point there."))
    address = settings.site_url
    shown = address.removeprefix("https://")
    onion = settings.onion_address.strip()
    if onion and not onion.startswith(("http://", "https://")):
        onion = "http://" + onion
    return Channel(address, address + "/", shown, onion, address + "/statistics?embed=1")


def seal_data_uri(settings: Settings) -> str | None:
    """The seal as a `data:` address (the PDF renderer loads nothing else), or None.
    The file was checked at start-up (config.seal_path)."""
    path = seal_path(settings)
    if path is None:
        return None
    try:
        body = path.read_bytes()
    except OSError:
        raise NotConfigured(_("The seal file cannot be read: %(path)s", path=str(path))) from None
    return f"data:{SEAL_TYPES[path.suffix.lower()]};base64," + base64.b64encode(body).decode("ascii")


def qr_svg(address: str) -> str:
    """The QR code of the address alone (no tracking parameter), as inline SVG."""
    code = segno.make_qr(address, error="m")
    return code.svg_inline(scale=1, border=4, omitsize=True, dark="#000", light="#fff")


# --------------------------------------------------------------------------- snippets


def snippet(settings: Settings, name: str) -> str:
    """The HTML to paste into the municipality's site: Thai first, English beside it."""
    where = channel(settings)
    words = {}
    for lang in LANGUAGES:
        with force_locale(lang):
            words[lang] = {
                "report": _("Report corruption"),
                "anonymous": _("Anonymous and safe: no name needed"),
                "statistics": _("Statistics of corruption complaints"),
                "open_statistics": _("Open the statistics of corruption complaints in a new page"),
                "organisation": settings.organisation.name_th if lang == "th" else settings.organisation.name_en,
            }
    return render_template(SNIPPETS[name], channel=where, th=words["th"], en=words["en"],
                           origins=settings.organisation.embed_origins).strip() + "\n"


# --------------------------------------------------------------------------- paper


def document_html(settings: Settings, name: str, lang: str) -> str:
    paper, audience = DOCUMENTS[name]
    org = settings.organisation
    with force_locale(lang):
        return render_template(
            "publicity/print.html", paper=paper, audience=audience, channel=channel(settings), org=org,
            organisation_name=org.name_en if lang == "en" and org.name_en else org.name_th,
            seal=seal_data_uri(settings), qr=qr_svg(channel(settings).address), lang=lang,
        )


def share_html(settings: Settings) -> str:
    org = settings.organisation
    with force_locale("th"):
        return render_template("publicity/share.html", channel=channel(settings), organisation_name=org.name_th,
                               seal=seal_data_uri(settings), width=SHARE_SIZE[0], height=SHARE_SIZE[1])


_lock = threading.Lock()


def _made(key: tuple, make) -> bytes:
    """Each file is made once per process (it changes only with the settings, read at
    start), and one at a time: a burst of first requests renders it once."""
    cache = current_app.extensions.setdefault("whistle.publicity", {})
    if key not in cache:
        with _lock:
            if key not in cache:
                cache[key] = make()
    return cache[key]


def document_pdf(settings: Settings, name: str, lang: str) -> bytes:
    return _made((name, lang, "pdf"), lambda: pdf.render(document_html(settings, name, lang), stylesheet=""))


def document_png(settings: Settings, name: str, lang: str) -> bytes:
    return _made((name, lang, "png"), lambda: pdf.to_png(document_pdf(settings, name, lang), dpi=PNG_DPI))


def share_png(settings: Settings) -> bytes:
    return _made(("share", "th", "png"), lambda: pdf.to_png(pdf.render(share_html(settings), stylesheet=""), size=SHARE_SIZE))


def file_names() -> list[str]:
    """The names of every file of the kit, as served and as written by the command."""
    names = [f"{name}-{lang}.{ext}" for name in DOCUMENTS for lang in LANGUAGES for ext in ("pdf", "png")]
    return names + ["share.png"] + [f"{name}.html" for name in SNIPPETS]


def kit_file(settings: Settings, filename: str) -> tuple[bytes, str] | None:
    """One file of the kit by its name, with its type; None for a name not in the kit."""
    if filename not in file_names():
        return None
    if filename == "share.png":
        return share_png(settings), "image/png"
    stem, ext = filename.rsplit(".", 1)
    if ext == "html":
        return snippet(settings, stem).encode("utf-8"), "text/html"
    name, lang = stem.rsplit("-", 1)
    if ext == "pdf":
        return document_pdf(settings, name, lang), "application/pdf"
    return document_png(settings, name, lang), "image/png"


def share_card(settings: Settings) -> dict[str, str] | None:
    """What the landing page's Open Graph and Twitter card tags say (None without site_url:
    a card needs absolute addresses)."""
    if not settings.site_url:
        return None
    return {
        "url": settings.site_url + "/",
        "image": settings.site_url + "/share.png",
        "width": str(SHARE_SIZE[0]),
        "height": str(SHARE_SIZE[1]),
    }


def init_app(app) -> None:
    app.jinja_env.globals["share_card"] = lambda: share_card(app.extensions["whistle.settings"])
