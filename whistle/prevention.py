"""Analysis for prevention (measure 3.2): officers tag each case with the unit it concerns
and the kind of weakness it shows, from the organisation's lists; officers and
supervisors read the counts by unit and kind across fiscal years. Never published: a
unit with one case could point at a person.

Services commit their own transaction; tagging is on the audit trail.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .config import Organisation
from .models import Account, PreventionTag, Report
from .statistics import FiscalYear


class UnknownTag(ValueError):
    """The unit or the kind of weakness is not on the organisation's lists."""


def tag_of(session: Session, report_id: int) -> PreventionTag | None:
    return session.scalar(select(PreventionTag).where(PreventionTag.report_id == report_id))


def set_tag(session: Session, organisation: Organisation, report: Report, unit: str, weakness: str, actor: Account, today: dt.date) -> None:
    """Tag the case (replacing its tag). Commits."""
    if unit not in {u.key for u in organisation.units} or weakness not in {w.key for w in organisation.weaknesses}:
        raise UnknownTag(f"{unit}/{weakness}")
    tag = tag_of(session, report.id)
    if tag is None:
        tag = PreventionTag(report_id=report.id)
        session.add(tag)
    tag.unit, tag.weakness, tag.tagged_on = unit, weakness, today
    audit.record(session, "tags_changed", actor, report.id, unit=unit, weakness=weakness)
    session.commit()


def counts(session: Session) -> dict[int, Counter]:
    """Per fiscal year (B.E.), the number of cases per (unit, weakness)."""
    out: dict[int, Counter] = {}
    rows = session.execute(
        select(Report.received_on, PreventionTag.unit, PreventionTag.weakness).join(PreventionTag, PreventionTag.report_id == Report.id)
    )
    for received_on, unit, weakness in rows:
        out.setdefault(FiscalYear.of(received_on).year, Counter())[(unit, weakness)] += 1
    return out
