"""Languages and dates: Thai first, English second; dates in the Buddhist Era.

The language is chosen with `?lang=en` / `?lang=th` on any page and kept in the visit's
session cookie (no cookie of its own, nothing that outlives the visit). A page that holds
something not yet saved (a form being typed, a code shown once) switches language with a
button that posts its own form instead (`switch_language`), so nothing on it is lost.

Thai is written without spaces between words, and browsers guess where a line may break
with a dictionary that splits some compounds ("ผู้รับผิด|ชอบ"): `keep_thai_words` wraps the
compounds the reporter pages use so that they never break in the middle.
"""

from __future__ import annotations

import datetime as dt
import re

import flask_babel
from flask import Flask, g, request, session
from flask_babel import Babel, get_locale, refresh

LANGUAGES = ("th", "en")
DEFAULT = "th"
BE_OFFSET = 543
#: Thailand keeps one offset all year (no daylight saving).
THAI_TIME = dt.timezone(dt.timedelta(hours=7), "ICT")


def select_locale() -> str:
    wanted = request.args.get("lang")
    if wanted in LANGUAGES:
        session["lang"] = wanted
        return wanted
    current = session.get("lang")
    return current if current in LANGUAGES else DEFAULT


def switch_language(wanted: object) -> bool:
    """Switch this visit to `wanted` (from a language button's form) if it is a language
    the service speaks; true if it did."""
    if wanted not in LANGUAGES:
        return False
    session["lang"] = wanted
    refresh()  # the locale of this very request too
    return True


def thai_clock(timestamp: float) -> str:
    """'14:05': the time of day in Thailand of a moment (seconds since the epoch)."""
    return dt.datetime.fromtimestamp(timestamp, THAI_TIME).strftime("%H:%M")


#: Thai compounds of the reporter pages that a browser's dictionary may split across two
#: lines (longest first, so that a phrase is kept whole rather than its first word).
THAI_COMPOUNDS = (
    "เจ้าหน้าที่ผู้รับผิดชอบ",
    "ผู้รับผิดชอบ",
    "ได้รับมอบหมาย",
    "ประพฤติมิชอบ",
    "ผู้ถูกร้องเรียน",
    "เจ้าหน้าที่รัฐ",
    "หน่วยงาน",
    "Wi-Fi",  # kept whole in either language: "Wi-" at a line's end reads as nothing
)
_COMPOUND = re.compile("|".join(sorted(THAI_COMPOUNDS, key=len, reverse=True)))
#: Elements whose text is not laid out as page text, or is the reporter's own typing.
_RAW = re.compile(r"<(title|textarea|script|style|svg|option)\b", re.I)
_TAG = re.compile(r"(<[^>]*>)")


def keep_thai_words(html: str) -> str:
    """`html` with each Thai compound of `THAI_COMPOUNDS` in page text wrapped in
    `<span class="nw">` (white-space: nowrap), so that no line breaks inside it. Tags,
    attributes, titles and text areas are left as they are.

    Works on the service's own rendered HTML, where every `<` of text is escaped, so a
    `<...>` is always a tag."""
    out, raw_until = [], None
    for part in _TAG.split(html):
        if part.startswith("<"):
            if raw_until is None:
                match = _RAW.match(part)
                if match and not part.endswith("/>"):
                    raw_until = "</" + match.group(1).lower()
            elif part.lower().startswith(raw_until):
                raw_until = None
            out.append(part)
        elif raw_until is None and part:
            out.append(_COMPOUND.sub(r'<span class="nw">\g<0></span>', part))
        else:
            out.append(part)
    return "".join(out)


def thai_today() -> dt.date:
    return dt.datetime.now(THAI_TIME).date()


def be_year(year: int) -> int:
    return year + BE_OFFSET


def be_date(day: dt.date | None) -> str:
    """'25 พฤศจิกายน 2569' in Thai, '25 November 2569 B.E.' in English."""
    if day is None:
        return ""
    locale = get_locale()
    month = locale.months["format"]["wide"][day.month] if locale else str(day.month)
    lang = locale.language if locale else DEFAULT
    suffix = "" if lang == "th" else " B.E."
    return f"{day.day} {month} {be_year(day.year)}{suffix}"


def translations():
    """This request's translations, looked up once per language rather than at every
    string: Flask-Babel finds them anew for each `_()` of a template (about 15 us, nine
    lookups of the request's globals and the locale's name rebuilt), which a case page does
    some seventy times. Kept beside the locale they belong to, so a block that forces
    another language (flask_babel.force_locale) gets its own."""
    try:
        ctx = g.get("_flask_babel")
    except RuntimeError:  # no app context: Flask-Babel's answer (no translation)
        return flask_babel.get_translations()
    if ctx is not None:
        locale, cached = getattr(ctx, "babel_locale", None), getattr(ctx, "whistle_translations", None)
        if locale is not None and cached is not None and cached[0] is locale:
            return cached[1]
    found = flask_babel.get_translations()
    ctx = g.get("_flask_babel")
    if ctx is not None and getattr(ctx, "babel_locale", None) is not None:
        ctx.whistle_translations = (ctx.babel_locale, found)
    return found


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(app.root_path + "/translations")
    Babel(app, locale_selector=select_locale)
    # The templates' _(), ngettext(), pgettext(): Flask-Babel's own, but through the
    # request's cached translations.
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: translations().ugettext(s),
        ngettext=lambda s, p, n: translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: translations().unpgettext(c, s, p, n),
    )
    app.jinja_env.filters["be_date"] = be_date
    app.jinja_env.globals["current_language"] = lambda: (get_locale().language if get_locale() else DEFAULT)
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
