"""The statistics' copies on `reports` (`referred_on`, `rated_on`, `rating_score`) agree
with their sources, the referral event and the rating: as written by the services, and as
filled by migration 0010 for rows that existed before it. And the fast count
(`load_entries`, per table) gives exactly what the per-case groups give."""

from __future__ import annotations

import datetime as dt
import random
import secrets

import sqlalchemy as sa
from sqlalchemy import create_engine, func, select

from whistle import cases, db, migrate, retention, statistics
from whistle.models import Agency, Channel, EventKind, Outcome, Rating, Report, Status, StatusEvent

from .conftest import csrf_token


def _referral_days(session) -> dict[int, dt.date]:
    return dict(session.execute(
        select(StatusEvent.report_id, func.min(StatusEvent.on))
        .where(StatusEvent.kind == EventKind.STATUS, StatusEvent.status == Status.REFERRED)
        .group_by(StatusEvent.report_id)
    ).all())


def _copies(session) -> dict[int, tuple]:
    return {r.id: (r.referred_on, r.rated_on, r.rating_score) for r in session.execute(
        select(Report.id, Report.referred_on, Report.rated_on, Report.rating_score)
    )}


def test_copies_written_with_the_referral_and_the_rating(app, client, reporter, clock):
    codes = [reporter.submit_ok() for _ in range(3)]
    with app.app_context():
        session = db.session()
        first, second, third = session.scalars(select(Report).order_by(Report.id)).all()
        cases.move(session, first, Status.REFERRED, None, clock(), agency="nacc")
        clock.advance(days=4)
        cases.close_case(session, first.id, "substantiated", clock())
        cases.close_case(session, second.id, "substantiated", clock())
        ids = [first.id, second.id, third.id]
    clock.advance(days=2)
    reporter.open_case(codes[0])
    page = client.get("/case").get_data(as_text=True)
    assert client.post("/case/rate", data={"score": "2", "comment": "", "csrf_token": csrf_token(page)}).status_code == 303
    with app.app_context():
        session = db.session()
        copies = _copies(session)
        referred = _referral_days(session)
        ratings = {r.report_id: (r.rated_on, r.score) for r in session.scalars(select(Rating))}
        assert set(referred) == {ids[0]} and set(ratings) == {ids[0]}
        assert copies[ids[0]] == (referred[ids[0]], *ratings[ids[0]])
        assert copies[ids[1]] == copies[ids[2]] == (None, None, None)
        # A purge deletes the referral event but keeps the copy (and the rating's score).
        retention.purge_closed(session, app.extensions["whistle.blobs"], clock() + dt.timedelta(days=4000), 1)
        assert _referral_days(session) == {}
        assert _copies(session)[ids[0]] == copies[ids[0]]


# --------------------------------------------------------------------------- migration 0010


REPORTS = sa.table(
    "reports", *(sa.column(c) for c in (
        "id", "uid", "lookup", "channel", "category", "status", "outcome", "received_on", "ack_due", "resolve_due",
        "acknowledged_on", "resolve_missed", "referred_to", "closed_on", "purged_on", "code_salt", "code_time_cost",
        "code_memory_cost", "code_parallelism", "code_verifier", "reporter_public_key", "content",
    ))
)
EVENTS = sa.table("status_events", *(sa.column(c) for c in ("report_id", "kind", "status", "on")))
RATINGS = sa.table("ratings", *(sa.column(c) for c in ("report_id", "score", "rated_on")))


def _old_row(case_id: int, received: dt.date, **values) -> dict:
    return {
        "id": case_id, "uid": secrets.token_bytes(16), "lookup": f"m{case_id}", "channel": "web", "category": "bribery",
        "status": "closed" if values.get("closed_on") else "under_review", "outcome": None, "received_on": received,
        "ack_due": received + dt.timedelta(days=7), "resolve_due": received + dt.timedelta(days=30),
        "acknowledged_on": received, "resolve_missed": False, "referred_to": None, "closed_on": None,
        "purged_on": None, "code_salt": b"\0" * 16, "code_time_cost": 1, "code_memory_cost": 8, "code_parallelism": 1,
        "code_verifier": b"\0" * 32, "reporter_public_key": b"", "content": b"", **values,
    }


def test_migration_fills_the_copies_from_their_sources(instance, database_url):
    """Rows written at revision 0009 (before the copies existed) get them from the
    referral events and the ratings; a purged referred case without its event gets its
    closing day, the day the statistics counted its referral at before."""
    engine = create_engine(database_url)
    try:
        migrate.upgrade(engine, "0009")
        day = dt.date(2025, 11, 3)
        with engine.begin() as conn:
            conn.execute(REPORTS.insert(), [
                _old_row(1, day),  # nothing to copy
                _old_row(2, day, referred_to="nacc", status="referred"),
                _old_row(3, day, referred_to="pacc", closed_on=day + dt.timedelta(days=40), outcome="substantiated"),
                _old_row(4, day, referred_to="ombudsman", closed_on=day + dt.timedelta(days=50),
                         outcome="substantiated", purged_on=day + dt.timedelta(days=900)),  # its event purged
                _old_row(5, day, closed_on=day + dt.timedelta(days=9), outcome="unsubstantiated"),
            ])
            conn.execute(EVENTS.insert(), [
                {"report_id": 2, "kind": "status", "status": "referred", "on": day + dt.timedelta(days=5)},
                {"report_id": 3, "kind": "status", "status": "referred", "on": day + dt.timedelta(days=12)},
                {"report_id": 3, "kind": "status", "status": "closed", "on": day + dt.timedelta(days=40)},
                {"report_id": 4, "kind": "status", "status": "closed", "on": day + dt.timedelta(days=50)},
                {"report_id": 5, "kind": "assigned", "status": "referred", "on": day + dt.timedelta(days=1)},  # not a referral
            ])
            conn.execute(RATINGS.insert(), [
                {"report_id": 3, "score": 4, "rated_on": day + dt.timedelta(days=41)},
                {"report_id": 5, "score": 1, "rated_on": day + dt.timedelta(days=20)},
            ])
        migrate.upgrade(engine)
        with engine.connect() as conn:
            copies = {r.id: (r.referred_on, r.rated_on, r.rating_score) for r in conn.execute(
                select(Report.id, Report.referred_on, Report.rated_on, Report.rating_score)
            )}
        assert copies == {
            1: (None, None, None),
            2: (day + dt.timedelta(days=5), None, None),
            3: (day + dt.timedelta(days=12), day + dt.timedelta(days=41), 4),
            4: (day + dt.timedelta(days=50), None, None),
            5: (None, day + dt.timedelta(days=20), 1),
        }
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- both counts


def test_per_table_count_equals_the_per_case_groups(app):
    """`load_entries` (grouping sets on PostgreSQL, a CTE on SQLite) against
    `group_entries(load_groups(...))`, over cases with every kind of date, some after the
    cut, some odd (a closing or a rating dated before the case was received)."""
    rng = random.Random(2569)
    fy = statistics.FiscalYear(2569)
    channels, outcomes, agencies = list(Channel), list(Outcome), list(Agency)
    with app.app_context():
        session = db.session()
        org = app.extensions["whistle.settings"].organisation
        categories = [c.key for c in org.categories] + ["retired_category"]
        rows = []
        for i in range(600):
            received = fy.start + dt.timedelta(days=rng.randrange(-40, 400))

            def later(most: int, least: int = 0) -> dt.date:
                return received + dt.timedelta(days=rng.randrange(least, most))

            def odd_or_later(most: int) -> dt.date:  # now and then before the case was received
                return received - dt.timedelta(days=rng.randrange(1, 40)) if rng.random() < 0.15 else later(most)

            closed = odd_or_later(200) if rng.random() < 0.6 else None
            referred = rng.random() < 0.2
            rated = closed is not None and rng.random() < 0.5
            rows.append({
                "uid": secrets.token_bytes(16), "lookup": f"t{i}", "channel": rng.choice(channels),
                "category": rng.choice(categories), "status": Status.CLOSED if closed else Status.UNDER_REVIEW,
                "outcome": rng.choice(outcomes) if closed and rng.random() < 0.9 else None,
                "received_on": received, "ack_due": later(10, 1), "resolve_due": later(40, 10),
                "acknowledged_on": later(14) if rng.random() < 0.8 else None, "resolve_missed": rng.random() < 0.3,
                "closed_on": closed, "referred_to": rng.choice(agencies) if referred else None,
                "referred_on": odd_or_later(90) if referred and rng.random() < 0.9 else None,
                "rated_on": odd_or_later(260) if rated else None,
                "rating_score": rng.randint(1, 5) if rated else None,
                "code_salt": b"\0" * 16, "code_time_cost": 1, "code_memory_cost": 8, "code_parallelism": 1,
                "code_verifier": b"\0" * 32, "reporter_public_key": b"", "content": b"",
            })
        session.execute(sa.insert(Report), rows)
        session.commit()
        for cut in (dt.date(2025, 10, 31), dt.date(2026, 3, 31), fy.end):
            fast = statistics.load_entries(session, fy, cut)
            slow = statistics.group_entries(statistics.load_groups(session, fy, cut))
            month = statistics._month(cut)

            def upto(entries):  # months after the cut are counted by no cut: either may keep them
                kept = {key: {m: n for m, n in by_month.items() if m <= month} for key, by_month in entries.items()}
                return {key: by_month for key, by_month in kept.items() if by_month}

            assert upto(fast) == upto(slow)
            cuts = fy.month_ends(cut)
            assert statistics.count_entries(fast, org, cuts) == statistics.count_cuts(
                statistics.load_groups(session, fy, cut), fy, org, cuts)
