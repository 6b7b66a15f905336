"""The Thai and English catalogs: complete, current with the source, compiled, and served.

Most reporters read Thai only, so a string that reaches the page untranslated is a bug. When
these tests fail after a change to the code or the templates, run `make translations` and
translate what it adds to whistle/translations/th/LC_MESSAGES/messages.po.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from flask_babel import ngettext

from whistle.i18n import be_date
from whistle.labels import STATUS_LABELS

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "whistle" / "translations"
LANGUAGES = ("th", "en")
#: The keywords `make translations` passes to `pybabel extract` (-k _l -k lazy_gettext).
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
#: Any %-conversion, named or not, and a stray '%' at the end of a string: Jinja applies
#: `%` to every translated string, so one the msgid lacks breaks the page.
CONVERSION = re.compile(r"%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?[a-zA-Z%]?")
#: The language does not depend on the database, so the app-level tests run on SQLite only.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def po_path(lang: str) -> Path:
    return TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"


def load_po(lang: str) -> Catalog:
    with po_path(lang).open("rb") as f:
        return read_po(f)


def entries(catalog: Catalog) -> list[Message]:
    return [m for m in catalog if m.id]


def singular(msgid: str | tuple[str, ...]) -> str:
    return msgid if isinstance(msgid, str) else msgid[0]


def conversions(text: str) -> list[str]:
    return sorted(CONVERSION.findall(text))


@pytest.fixture(scope="module")
def thai() -> Catalog:
    return load_po("th")


def translated(catalog: Catalog, msgid: str) -> str:
    message = catalog.get(msgid)
    assert message is not None and message.string, f"{msgid!r} has no Thai translation"
    return message.string


# --------------------------------------------------------------------------- complete


def test_thai_catalog_has_one_plural_form(thai):
    assert thai.num_plurals == 1


def test_thai_catalog_every_message_translated(thai):
    untranslated = [
        m.id
        for m in entries(thai)
        if m.fuzzy or not (m.string if isinstance(m.string, str) else all(m.string))
    ]
    assert not untranslated, f"untranslated or fuzzy in th/messages.po: {untranslated}"


def test_thai_catalog_placeholders_match(thai):
    mismatched = []
    for m in entries(thai):
        if m.pluralizable:
            # With one Thai form, msgstr[0] stands for every count, so it must carry what
            # the plural msgid carries (the count itself, as a rule).
            pairs = [(m.id[1], s) for s in m.string]
        else:
            pairs = [(m.id, m.string)]
        mismatched += [(source, target) for source, target in pairs if conversions(source) != conversions(target)]
    assert not mismatched


def test_thai_catalog_passes_babel_checks(thai):
    problems = [(m.id, [str(e) for e in errors]) for m, errors in thai.check()]
    assert not problems


# --------------------------------------------------------------------------- current


@pytest.fixture(scope="module")
def source_ids() -> dict[str, str | tuple[str, ...]]:
    """Every msgid in the code and templates, extracted as `make translations` does."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f, "babel.cfg")
    found = {}
    for _filename, _lineno, msgid, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        found.setdefault(singular(msgid), msgid)
    assert found, "extraction found no strings: check babel.cfg"
    return found


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalog_lists_every_source_string(source_ids, lang):
    catalog = load_po(lang)
    missing = sorted(key for key in source_ids if key not in catalog)
    assert not missing, f"not in {lang}/messages.po (run `make translations`, then translate): {missing}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalog_plural_strings_match_source(source_ids, lang):
    catalog = load_po(lang)
    changed = [
        (msgid, catalog[key].id)
        for key, msgid in source_ids.items()
        if key in catalog and catalog[key].id != msgid
    ]
    assert not changed, f"singular/plural differs from the source in {lang}/messages.po: {changed}"


# --------------------------------------------------------------------------- compiled


def hashable(value):
    """read_mo gives plural ids and strings as lists; read_po gives tuples."""
    return tuple(value) if isinstance(value, list) else value


def mo_messages(mo: io.BufferedIOBase) -> tuple[str | None, dict]:
    catalog = read_mo(mo)
    return catalog.plural_forms, {(hashable(m.id), m.context): hashable(m.string) for m in entries(catalog)}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_compiled_catalog_matches_po(lang):
    compiled = io.BytesIO()
    write_mo(compiled, load_po(lang))
    compiled.seek(0)
    with (po_path(lang).with_suffix(".mo")).open("rb") as shipped:
        assert mo_messages(shipped) == mo_messages(compiled), (
            f"{lang}/messages.mo is older than messages.po: run `make translations`"
        )


# --------------------------------------------------------------------------- served


def _page(client, path: str) -> str:
    """A page's HTML, with the Thai compounds kept whole for layout (i18n.keep_thai_words)
    joined back into the text around them."""
    html = client.get(path).get_data(as_text=True)
    return re.sub(r'<span class="nw">([^<]*)</span>', r"\1", html)


@sqlite_only
def test_landing_default_is_thai(client, thai):
    html = _page(client, "/")
    assert '<html lang="th">' in html
    assert translated(thai, "Report corruption or misconduct by officials") in html
    assert translated(thai, "Make a report") in html
    assert "Report corruption or misconduct by officials" not in html


@sqlite_only
def test_landing_lang_en_is_english(client, thai):
    html = _page(client, "/?lang=en")
    assert '<html lang="en">' in html
    assert "Report corruption or misconduct by officials" in html
    assert translated(thai, "Report corruption or misconduct by officials") not in html


@sqlite_only
def test_landing_language_choice_kept_for_visit(client, thai):
    client.get("/?lang=en")
    html = _page(client, "/")
    assert '<html lang="en">' in html
    assert "Make a report" in html

    client.get("/?lang=th")
    html = _page(client, "/")
    assert '<html lang="th">' in html
    assert translated(thai, "Make a report") in html


@sqlite_only
def test_landing_unknown_lang_is_thai(client):
    html = _page(client, "/?lang=fr")
    assert '<html lang="th">' in html


@sqlite_only
def test_lazy_labels_thai_by_default(app, thai):
    with app.test_request_context("/"):
        assert str(STATUS_LABELS["closed"]) == translated(thai, "Closed")


@sqlite_only
def test_ngettext_thai_one_form_for_every_count(app, thai):
    form = thai.get("%(num)d file").string[0]
    with app.test_request_context("/?lang=th"):
        assert ngettext("%(num)d file", "%(num)d files", 1) == form % {"num": 1}
        assert ngettext("%(num)d file", "%(num)d files", 3) == form % {"num": 3}


@sqlite_only
def test_ngettext_english_falls_back_to_msgids(app):
    with app.test_request_context("/?lang=en"):
        assert ngettext("%(num)d file", "%(num)d files", 1) == "1 file"
        assert ngettext("%(num)d file", "%(num)d files", 3) == "3 files"


# --------------------------------------------------------------------------- dates


@sqlite_only
@pytest.mark.parametrize(
    ("lang", "expected"),
    [("th", "25 พฤศจิกายน 2569"), ("en", "25 November 2569 B.E.")],
)
def test_be_date_follows_language(app, lang, expected):
    with app.test_request_context(f"/?lang={lang}"):
        assert be_date(dt.date(2026, 11, 25)) == expected


@sqlite_only
def test_be_date_none_is_empty(app):
    with app.test_request_context("/"):
        assert be_date(None) == ""


def test_templates_follow_the_language_and_a_forced_one(app):
    """The templates' _() keeps the request's translations (whistle.i18n.translations),
    yet follows a block that forces Thai inside an English request, and back."""
    from flask import render_template_string
    from flask_babel import force_locale

    template = '{{ _("due today") }}'
    with app.test_request_context("/?lang=en"):
        assert render_template_string(template) == "due today"
        with force_locale("th"):
            assert render_template_string(template) == "ครบกำหนดวันนี้"
        assert render_template_string(template) == "due today"
    with app.test_request_context("/?lang=th"):
        assert render_template_string(template) == "ครบกำหนดวันนี้"
        with force_locale("en"):
            assert render_template_string(template) == "due today"
        assert render_template_string(template) == "ครบกำหนดวันนี้"
