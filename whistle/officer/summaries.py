"""Executive summary reports in the officers' app: officers write the analysis,
supervisors read the figures and sign the report off, which publishes it. Printable page,
CSV and PDF."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import Length

from .. import db, pdf, publication, statistics, summaries
from ..extensions import settings, today
from ..models import Role
from ..statistics import FiscalYear
from . import current_account, roles

bp = Blueprint("officer_summaries", __name__, url_prefix="/summaries")

_LIMIT = Length(max=summaries.MAX_TEXT, message=_l("Please shorten this text to at most %(max)d characters.", max=summaries.MAX_TEXT))


class AnalysisForm(FlaskForm):
    problems = TextAreaField(_l("Problems"), validators=[_LIMIT])
    obstacles = TextAreaField(_l("Obstacles"), validators=[_LIMIT])
    solutions = TextAreaField(_l("Solutions"), validators=[_LIMIT])


class SignOffForm(FlaskForm):
    pass


STEP_LABELS = {
    "acknowledged": _l("Received to acknowledged"),
    "referred": _l("Received to referred"),
    "closed": _l("Received to closed"),
}
PERIOD_LABELS = {"h1": _l("First half (October to March)"), "year": _l("Whole fiscal year")}


def _period(year: int, period: str) -> FiscalYear:
    fiscal_year = FiscalYear(year)
    if period not in statistics.PERIODS or year < 2560 or fiscal_year.start > today():
        abort(404)
    return fiscal_year


def _executive(fiscal_year: FiscalYear, period: str) -> summaries.Executive:
    return summaries.executive(db.session(), settings().organisation, fiscal_year, period, today())


def _render(fiscal_year: FiscalYear, period: str, form: AnalysisForm | None = None, printable: bool = False, status: int = 200):
    report = _executive(fiscal_year, period)
    org = settings().organisation
    stored = report.report
    if form is None:
        form = AnalysisForm(obj=stored) if stored is not None else AnalysisForm()
    figures = statistics.Figures(fiscal_year.year, report.as_of, org.small_count, report.counts.totals, dict(report.counts.tables))
    return render_template(
        "officer/summary_print.html" if printable else "officer/summary.html",
        report=report, year=fiscal_year, period=period, form=form, sign_off_form=SignOffForm(),
        rows=lambda table: publication.rows(figures, org, table), titles=publication.TABLE_TITLES,
        total_labels=publication.TOTAL_LABELS, shares=publication.shares(figures), percent=publication.percent,
        step_labels=STEP_LABELS, period_label=PERIOD_LABELS[period], target=org.satisfaction_target,
        signable=fiscal_year.period_end(period) < today(), today=today(),
    ), status


@bp.get("")
@roles(Role.OFFICER, Role.SUPERVISOR)
def index():
    years = statistics.years_published(db.session(), today())
    reports = {}
    for fiscal_year in years:
        for period in statistics.PERIODS:
            reports[(fiscal_year.year, period)] = summaries.stored(db.session(), fiscal_year, period)
    return render_template("officer/summaries.html", years=list(reversed(years)), reports=reports, periods=statistics.PERIODS,
                           period_labels=PERIOD_LABELS, today=today())


@bp.get("/<int:year>/<period>")
@roles(Role.OFFICER, Role.SUPERVISOR)
def show(year: int, period: str):
    return _render(_period(year, period), period)


@bp.get("/<int:year>/<period>/print")
@roles(Role.OFFICER, Role.SUPERVISOR)
def printable(year: int, period: str):
    return _render(_period(year, period), period, printable=True)


@bp.get("/<int:year>/<period>.pdf")
@roles(Role.OFFICER, Role.SUPERVISOR)
def as_pdf(year: int, period: str):
    html, _status = _render(_period(year, period), period, printable=True)
    return Response(pdf.render(html), mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="summary-{year}-{period}.pdf"'})


@bp.get("/<int:year>/<period>.csv")
@roles(Role.OFFICER, Role.SUPERVISOR)
def as_csv(year: int, period: str):
    fiscal_year = _period(year, period)
    report = _executive(fiscal_year, period)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("fiscal_year", "period", "as_of", "section", "key", "value"))
    head = (year, period, report.as_of.isoformat())
    for key, value in report.counts.totals.items():
        writer.writerow((*head, "totals", key, value))
    for table, cells in report.counts.tables.items():
        for key, value in cells.items():
            writer.writerow((*head, table, key, value))
    for key, value in vars(report.deadlines).items():
        writer.writerow((*head, "deadlines", key, value))
    for step, spread in report.steps.items():
        writer.writerow((*head, "days_" + step, "cases", spread.cases))
        writer.writerow((*head, "days_" + step, "median", "" if spread.median is None else spread.median))
        writer.writerow((*head, "days_" + step, "p90", "" if spread.p90 is None else spread.p90))
    for score, n in report.ratings.items():
        writer.writerow((*head, "ratings", score, n))
    if report.report is not None:
        for part in ("problems", "obstacles", "solutions"):
            writer.writerow((*head, "analysis", part, getattr(report.report, part)))
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="summary-{year}-{period}.csv"'})


@bp.post("/<int:year>/<period>/analysis")
@roles(Role.OFFICER)
def write(year: int, period: str):
    fiscal_year = _period(year, period)
    form = AnalysisForm()
    if not form.validate_on_submit():
        return _render(fiscal_year, period, form=form, status=400)
    try:
        summaries.save_analysis(
            db.session(), fiscal_year, period, (form.problems.data or "").strip(), (form.obstacles.data or "").strip(),
            (form.solutions.data or "").strip(), current_account(), today(),
        )
    except summaries.AlreadySignedOff:
        flash(_("This report was signed off and can no longer be changed."), "error")
        return _render(fiscal_year, period, form=form, status=409)
    flash(_("The analysis was saved. It stays off the public pages until a supervisor signs the report off."), "success")
    return redirect(url_for(".show", year=year, period=period), 303)


@bp.post("/<int:year>/<period>/sign-off")
@roles(Role.SUPERVISOR)
def sign_off(year: int, period: str):
    fiscal_year = _period(year, period)
    SignOffForm().validate_on_submit()
    try:
        summaries.sign_off(db.session(), fiscal_year, period, current_account(), today())
    except summaries.NotSignable:
        flash(_("A report can be signed off once its period is over and its analysis is written."), "error")
    except summaries.AlreadySignedOff:
        flash(_("This report was signed off already."), "error")
    else:
        flash(_("The report was signed off and is now public."), "success")
    return redirect(url_for(".show", year=year, period=period), 303)
