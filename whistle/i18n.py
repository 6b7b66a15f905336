"""Languages and dates: Thai first, English second; dates in the Buddhist Era.

The language is chosen with `?lang=en` / `?lang=th` on any page and kept in the visit's
session cookie (no cookie of its own, nothing that outlives the visit).
"""

from __future__ import annotations

import datetime as dt

from flask import Flask, request, session
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


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(app.root_path + "/translations")
    Babel(app, locale_selector=select_locale)
    app.jinja_env.filters["be_date"] = be_date
    app.jinja_env.globals["current_language"] = lambda: (get_locale().language if get_locale() else DEFAULT)
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
