"""Executive summary reports: a half (October to March) or a whole fiscal year.

For supervisors and executives (the officers' app): the year's raw figures, deadlines met
and missed, the median and 90th-percentile days of each step, referrals, outcomes,
satisfaction, and the officers' written analysis of problems, obstacles and solutions. A
supervisor signs a report off once its period is over; from then on it is public, with
the published (suppressed) figures of the period's last cut in place of the raw ones, so
the public version adds no figure to what the statistics page publishes.

Services commit their own transaction; writing and signing off are on the audit trail.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, cases, statistics
from .config import Organisation
from .models import Account, EventKind, Rating, Report, Status, StatusEvent, SummaryReport
from .statistics import FiscalYear

#: The longest each written part may be (characters).
MAX_TEXT = 20_000


class NotSignable(Exception):
    """The period is not over yet, or the report has no written analysis."""


class AlreadySignedOff(Exception):
    """A signed-off report is final: its analysis no longer changes."""


# --------------------------------------------------------------------------- stored reports


def stored(session: Session, fiscal_year: FiscalYear, period: str) -> SummaryReport | None:
    return session.scalar(
        select(SummaryReport).where(SummaryReport.fiscal_year == fiscal_year.year, SummaryReport.period == period)
    )


def signed_off(session: Session, fiscal_year: FiscalYear) -> list[SummaryReport]:
    return list(session.scalars(
        select(SummaryReport)
        .where(SummaryReport.fiscal_year == fiscal_year.year, SummaryReport.signed_off_on.is_not(None))
        .order_by(SummaryReport.period)
    ))


def signed_off_keys(session: Session, fiscal_year: FiscalYear) -> list[str]:
    return list(session.scalars(
        select(SummaryReport.period)
        .where(SummaryReport.fiscal_year == fiscal_year.year, SummaryReport.signed_off_on.is_not(None))
        .order_by(SummaryReport.period)
    ))


def save_analysis(
    session: Session, fiscal_year: FiscalYear, period: str, problems: str, obstacles: str, solutions: str,
    actor: Account, today: dt.date,
) -> SummaryReport:
    """Write (or rewrite) the officers' analysis of a report not yet signed off. Commits."""
    report = stored(session, fiscal_year, period)
    if report is None:
        report = SummaryReport(fiscal_year=fiscal_year.year, period=period)
        session.add(report)
    if report.signed_off_on is not None:
        raise AlreadySignedOff(f"{fiscal_year.year}/{period}")
    report.problems, report.obstacles, report.solutions = problems, obstacles, solutions
    report.written_by, report.written_on = actor.id, today
    audit.record(session, "report_written", actor, None, fiscal_year=fiscal_year.year, period=period)
    session.commit()
    return report


def sign_off(session: Session, fiscal_year: FiscalYear, period: str, actor: Account, today: dt.date) -> SummaryReport:
    """A supervisor signs the report off, which publishes it. Commits."""
    report = stored(session, fiscal_year, period)
    if report is not None and report.signed_off_on is not None:
        raise AlreadySignedOff(f"{fiscal_year.year}/{period}")
    if fiscal_year.period_end(period) >= today or report is None or not (report.problems or report.obstacles or report.solutions):
        raise NotSignable(f"{fiscal_year.year}/{period}")
    report.signed_off_by, report.signed_off_on = actor.id, today
    audit.record(session, "report_signed_off", actor, None, fiscal_year=fiscal_year.year, period=period)
    audit.record(session, "report_published", actor, None, fiscal_year=fiscal_year.year, period=period)
    session.commit()
    return report


# --------------------------------------------------------------------------- the figures


@dataclass(frozen=True)
class Spread:
    """Days one step took: how many cases, the median and the 90th percentile."""

    cases: int
    median: float | None
    p90: int | None


def spread(days: list[int]) -> Spread:
    """Median, and the 90th percentile by the nearest-rank method (a day some case took)."""
    if not days:
        return Spread(0, None, None)
    ordered = sorted(days)
    n = len(ordered)
    middle = n // 2
    median = float(ordered[middle]) if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return Spread(n, median, ordered[-(-9 * n // 10) - 1])


@dataclass(frozen=True)
class Deadlines:
    ack_on_time: int
    ack_late: int
    ack_pending: int
    resolved_on_time: int
    resolved_late: int
    open_overdue: int
    open_in_time: int


@dataclass(frozen=True)
class Executive:
    """What supervisors read: raw figures (no suppression) as of `as_of`."""

    fiscal_year: FiscalYear
    period: str
    start: dt.date
    end: dt.date
    as_of: dt.date
    counts: statistics.Counts
    deadlines: Deadlines
    steps: dict[str, Spread]
    ratings: dict[int, int]
    report: SummaryReport | None


STEPS = ("acknowledged", "referred", "closed")


def executive(session: Session, organisation: Organisation, fiscal_year: FiscalYear, period: str, today: dt.date) -> Executive:
    """The report's figures: the period's cases with their state at its end, or today
    while the period runs."""
    end = fiscal_year.period_end(period)
    as_of = min(end, today)
    counts = statistics.count_entries(statistics.load_entries(session, fiscal_year, as_of), organisation, [as_of])[0]
    rows = session.execute(
        select(Report.id, Report.received_on, Report.acknowledged_on, Report.ack_due, Report.resolve_due,
               Report.closed_on, Report.resolve_missed)
        .where(Report.received_on >= fiscal_year.start, Report.received_on <= as_of)
    ).all()
    referred = dict(session.execute(
        select(StatusEvent.report_id, StatusEvent.on)
        .join(Report, Report.id == StatusEvent.report_id)
        .where(StatusEvent.kind == EventKind.STATUS, StatusEvent.status == Status.REFERRED, StatusEvent.on <= as_of)
        .where(Report.received_on >= fiscal_year.start, Report.received_on <= as_of)
    ).all())
    days = {step: [] for step in STEPS}
    ack = {"on_time": 0, "late": 0, "pending": 0}
    resolved = {"on_time": 0, "late": 0, "overdue": 0, "in_time": 0}
    for r in rows:
        acknowledged = r.acknowledged_on if r.acknowledged_on and r.acknowledged_on <= as_of else None
        closed = r.closed_on if r.closed_on and r.closed_on <= as_of else None
        if acknowledged is not None:
            ack["on_time" if acknowledged <= r.ack_due else "late"] += 1
            days["acknowledged"].append(cases.days_between(organisation, r.received_on, acknowledged))
        else:
            ack["late" if r.ack_due < as_of else "pending"] += 1
        if r.id in referred:
            days["referred"].append(cases.days_between(organisation, r.received_on, referred[r.id]))
        if closed is not None:
            resolved["late" if r.resolve_missed else "on_time"] += 1
            days["closed"].append(cases.days_between(organisation, r.received_on, closed))
        else:
            resolved["overdue" if r.resolve_due < as_of or r.resolve_missed else "in_time"] += 1
    scores: dict[int, int] = {score: 0 for score in range(5, 0, -1)}
    for score in session.scalars(
        select(Rating.score).join(Report, Report.id == Rating.report_id)
        .where(Report.received_on >= fiscal_year.start, Report.received_on <= as_of, Rating.rated_on <= as_of)
    ):
        scores[score] = scores.get(score, 0) + 1
    return Executive(
        fiscal_year=fiscal_year, period=period, start=fiscal_year.start, end=end, as_of=as_of, counts=counts,
        deadlines=Deadlines(ack["on_time"], ack["late"], ack["pending"], resolved["on_time"], resolved["late"],
                            resolved["overdue"], resolved["in_time"]),
        steps={step: spread(values) for step, values in days.items()},
        ratings=scores,
        report=stored(session, fiscal_year, period),
    )


@dataclass(frozen=True)
class PublicSummary:
    """A signed-off report as the public reads it: published figures and the analysis."""

    report: SummaryReport
    figures: statistics.Figures


def public_summary(session: Session, organisation: Organisation, fiscal_year: FiscalYear, period: str, today: dt.date) -> PublicSummary | None:
    report = stored(session, fiscal_year, period)
    if report is None or report.signed_off_on is None:
        return None
    figures = statistics.publication(session, organisation, fiscal_year, fiscal_year.period_end(period), today)
    return PublicSummary(report, figures)
