"""Reporters' ratings of how their closed case was handled: one per case, the comment
sealed to the officers, the score counted by the statistics and kept by a purge."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from whistle import cases, db, items, retention, statistics
from whistle.models import Rating, Report

from .conftest import csrf_token


def _case_id(app) -> int:
    with app.app_context():
        return db.session().scalars(select(Report.id).order_by(Report.id.desc())).first()


def _close(app, case_id: int) -> None:
    with app.app_context():
        cases.close_case(db.session(), case_id, "substantiated", app.extensions["whistle.clock"]())


def _rate(client, score: str | None, comment: str = ""):
    page = client.get("/case").get_data(as_text=True)
    data = {"comment": comment, "csrf_token": csrf_token(page)}
    if score is not None:
        data["score"] = score
    return client.post("/case/rate", data=data)


def test_rating_offered_only_once_the_case_is_closed(app, client, reporter):
    reporter.open_case(reporter.submit_ok())
    assert 'action="/case/rate"' not in client.get("/case").get_data(as_text=True)
    response = _rate(client, "5")
    assert response.status_code == 303
    assert "cannot be rated" in client.get("/case?lang=en").get_data(as_text=True)
    _close(app, _case_id(app))
    assert 'action="/case/rate"' in client.get("/case").get_data(as_text=True)


def test_rating_once_with_a_sealed_comment(app, client, reporter, officer_key):
    reporter.open_case(reporter.submit_ok())
    case_id = _case_id(app)
    _close(app, case_id)
    assert _rate(client, "4", "MARKER-RATING-COMMENT quick and fair").status_code == 303
    page = client.get("/case?lang=en").get_data(as_text=True)
    assert "you rated the handling 4 out of 5" in page and 'action="/case/rate"' not in page
    _rate(client, "1")  # a second rating is refused
    with app.app_context():
        ratings = list(db.session().scalars(select(Rating)))
        assert [r.score for r in ratings] == [4]
        assert b"MARKER-RATING" not in ratings[0].comment
        report = db.session().get(Report, case_id)
        assert items.open_rating_comment(report, ratings[0].comment, officer_key) == "MARKER-RATING-COMMENT quick and fair"


def test_rating_form_keeps_the_comment_when_no_score_is_chosen(app, client, reporter):
    reporter.open_case(reporter.submit_ok())
    _close(app, _case_id(app))
    response = _rate(client, None, "my words")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "my words" in page and "has-error" in page


def test_rating_counted_and_kept_by_a_purge(make_app, clock):
    app = make_app(retention_days=30)
    client = app.test_client()
    from .conftest import Reporter

    reporter = Reporter(client)
    clock.today = dt.date(2025, 10, 6)
    reporter.open_case(reporter.submit_ok())
    case_id = _case_id(app)
    _close(app, case_id)
    _rate(client, "2", "slow")
    clock.today = dt.date(2026, 1, 10)
    with app.app_context():
        retention.purge_closed(db.session(), app.extensions["whistle.blobs"], clock(), 30)
        rating = db.session().scalar(select(Rating))
        assert rating.score == 2 and rating.comment is None
        figures = statistics.current(db.session(), app.extensions["whistle.settings"].organisation, statistics.FiscalYear(2569), clock())
    assert figures.tables["satisfaction"] == {"satisfied": None, "not_satisfied": None}  # 1 of 1: suppressed
    counts = json.loads(client.get("/statistics/2569.json").get_data())
    assert counts["totals"]["completed"] == 1


def test_officers_read_the_score_and_the_comment_on_the_case_page(app, client, reporter, officer_app, make_account, officer_browser):
    reporter.open_case(reporter.submit_ok())
    case_id = _case_id(app)
    _close(app, case_id)
    _rate(client, "2", "MARKER-RATING slow <b>answers</b>")
    officer_browser.sign_in(make_account())
    page = officer_browser.client.get(f"/cases/{case_id}?lang=en").get_data(as_text=True)
    assert "2 out of 5" in page
    assert "MARKER-RATING slow &lt;b&gt;answers&lt;/b&gt;" in page  # the reporter's words, escaped


def test_a_comment_moved_from_another_case_is_flagged_not_shown(app, client, reporter, officer_app, make_account, officer_browser):
    for words in ("MARKER-FIRST", "MARKER-SECOND"):
        reporter.open_case(reporter.submit_ok())
        _close(app, _case_id(app))
        _rate(client, "3", words)
    with app.app_context():
        first, second = db.session().scalars(select(Rating).order_by(Rating.id))
        second.comment = first.comment  # a database writer moves the first case's comment
        second_case = second.report_id
        db.session().commit()
    officer_browser.sign_in(make_account())
    page = officer_browser.client.get(f"/cases/{second_case}?lang=en").get_data(as_text=True)
    assert "MARKER-FIRST" not in page and "could not be opened" in page


def test_the_rating_travels_in_the_case_bundle(app, client, reporter, officer_app, officer_key, tmp_path):
    from whistle import bundles

    reporter.open_case(reporter.submit_ok())
    case_id = _case_id(app)
    _close(app, case_id)
    _rate(client, "5", "MARKER-RATING thank you")
    with officer_app.app_context():
        out = bundles.export_case(db.session(), officer_app.extensions["whistle.blobs"], case_id, tmp_path / "case.zip")
    assert b"MARKER-RATING" not in out.read_bytes()
    written = bundles.open_bundle(out, officer_key, tmp_path / "opened")
    rating = next(p for p in written if p.name == "rating.txt").read_text("utf-8")
    assert "5 out of 5" in rating and "MARKER-RATING thank you" in rating
