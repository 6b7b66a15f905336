"""Languages and dates: Thai first, English second; dates in the Buddhist Era.

The language is chosen with `?lang=en` / `?lang=th` on any page and kept in the visit's
session cookie (no cookie of its own, nothing that outlives the visit).
"""

from __future__ import annotations

import datetime as dt

import flask_babel
from flask import Flask, g, request, session
from flask_babel import Babel, get_locale

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
