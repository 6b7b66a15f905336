"""Public pages: `/statistics/<year>` (HTML, embeddable), `.csv`, `.json`, the charts,
`/manual` and `/reports/<year>/<period>`. The address of a fiscal year's figures never
changes; what it serves changes once a month, at the cut (statistics.py)."""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for

from .. import db, pdf, publication, publicity, security, statistics, summaries
from ..extensions import now, settings, today
from ..i18n import select_locale
from ..statistics import FiscalYear

bp = Blueprint("public", __name__)

#: Years before this are not a fiscal year anyone will ask this service for.
FIRST_YEAR = 2560


def _year(year: int) -> FiscalYear:
    fiscal_year = FiscalYear(year)
    if year < FIRST_YEAR or fiscal_year.start > today():
        abort(404)
    return fiscal_year


def _figures(fiscal_year: FiscalYear) -> statistics.Figures | None:
    """Today's cut of the year. A stored cut never changes, so each process keeps the
    ones it has read."""
    cut = statistics.cut_for(fiscal_year, today())
    if cut is None:
        return None
    cache = current_app.extensions.setdefault("whistle.public_figures", {})
    figures = cache.get((fiscal_year.year, cut))
    if figures is None:
        figures = statistics.publication(db.session(), settings().organisation, fiscal_year, cut, today())
        cache[(fiscal_year.year, cut)] = figures
    return figures


#: Seconds a process goes on listing the signed-off reports it last read: a report a
#: supervisor signs off appears on the statistics page within this time.
REPORTS_TTL = 60


def _signed_off(fiscal_year: FiscalYear) -> tuple[str, ...]:
    cache = current_app.extensions.setdefault("whistle.public_reports", {})
    read_at, keys = cache.get(fiscal_year.year, (None, ()))
    if read_at is None or now() - read_at > REPORTS_TTL:
        keys = tuple(summaries.signed_off_keys(db.session(), fiscal_year))
        cache[fiscal_year.year] = (now(), keys)
    return keys


@bp.get("/statistics")
def statistics_now():
    """This fiscal year's figures: the address the website snippet frames (with
    `?embed=1`, kept through the redirect, which may be framed as the page it leads to)."""
    embed = request.args.get("embed") == "1"
    response = redirect(url_for(".statistics_page", year=FiscalYear.of(today()).year, embed=1 if embed else None), 303)
    return security.allow_framing(response, settings().organisation.embed_origins) if embed else response


def _render_statistics(fiscal_year: FiscalYear, figures: statistics.Figures | None, embed: bool) -> str:
    org = settings().organisation
    years = statistics.years_published(db.session(), today())
    return render_template(
        "public/statistics.html",
        year=fiscal_year,
        figures=figures,
        embed=embed,
        years=years,
        organisation_settings=org,
        rows=(lambda table: publication.rows(figures, org, table)) if figures else None,
        shares=publication.shares(figures) if figures else {},
        percent=publication.percent,
        titles=publication.TABLE_TITLES,
        total_labels=publication.TOTAL_LABELS,
        chart=(lambda table: publication.table_chart(figures, org, table)) if figures else None,
        ita=org.ita_items,
        reports=summaries.signed_off(db.session(), fiscal_year),
        first_cut=fiscal_year.month_ends(fiscal_year.end)[0],
    )


@bp.get("/statistics/<int:year>")
def statistics_page(year: int):
    """The year's figures as of the last cut. Rendered pages are kept per cut, language
    and list of signed-off reports: a cut never changes once published."""
    fiscal_year = _year(year)
    figures = _figures(fiscal_year)
    embed = request.args.get("embed") == "1"
    key = (
        year, figures.cut_on if figures else None, select_locale(), embed,
        _signed_off(fiscal_year),
    )
    cache = current_app.extensions.setdefault("whistle.public_pages", {})
    body = cache.get(key)
    if body is None:
        body = _render_statistics(fiscal_year, figures, embed).encode("utf-8")
        if len(cache) > 256:
            cache.clear()
        cache[key] = body
    response = Response(body, mimetype="text/html")
    return security.allow_framing(response, settings().organisation.embed_origins)


def _download(body: str, mimetype: str, name: str) -> Response:
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/statistics/<int:year>.csv")
def statistics_csv(year: int):
    figures = _figures(_year(year))
    if figures is None:
        abort(404)
    name = f"whistle-statistics-{year}-{figures.cut_on.isoformat()}.csv"
    # A byte-order mark, so that spreadsheet programs read the Thai labels as UTF-8.
    return _download("\ufeff" + publication.to_csv(figures, settings().organisation), "text/csv", name)


@bp.get("/statistics/<int:year>.json")
def statistics_json(year: int):
    figures = _figures(_year(year))
    if figures is None:
        abort(404)
    body = json.dumps(publication.to_json(figures), ensure_ascii=False, indent=1)
    return Response(body, mimetype="application/json")


@bp.get("/statistics/<int:year>/<table>.svg")
def statistics_chart(year: int, table: str):
    figures = _figures(_year(year))
    if figures is None or table not in figures.tables:
        abort(404)
    return Response(publication.table_chart(figures, settings().organisation, table), mimetype="image/svg+xml")


def _render_manual() -> str:
    org = settings().organisation
    return render_template("public/manual.html", org=org, manual=org.manual, ita=org.ita_items, onion=settings().onion_address)


@bp.get("/manual")
def manual():
    return _render_manual()


@bp.get("/manual.pdf")
def manual_pdf():
    """The manual to print; made once per language (it changes only with the settings)."""
    cache = current_app.extensions.setdefault("whistle.manual_pdf", {})
    language = select_locale()
    if language not in cache:
        cache[language] = pdf.render(_render_manual())
    return Response(cache[language], mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="manual-{language}.pdf"'})


@bp.get("/reports/<int:year>/<period>")
def report(year: int, period: str):
    fiscal_year = _year(year)
    if period not in statistics.PERIODS:
        abort(404)
    summary = summaries.public_summary(db.session(), settings().organisation, fiscal_year, period, today())
    if summary is None:
        abort(404)
    org = settings().organisation
    return render_template(
        "public/report.html", summary=summary, year=fiscal_year, period=period,
        rows=lambda table: publication.rows(summary.figures, org, table),
        shares=publication.shares(summary.figures), percent=publication.percent,
        titles=publication.TABLE_TITLES, total_labels=publication.TOTAL_LABELS, ita=org.ita_items,
        target=org.satisfaction_target,
    )


@bp.get("/share.png")
def share_image():
    """The picture a link to the channel shows in LINE or Facebook (the landing page's
    Open Graph tags name it). Made once per process from the settings."""
    try:
        body = publicity.share_png(settings())
    except publicity.NotConfigured:
        abort(404)
    return Response(body, mimetype="image/png")
