"""The officers' case list and case page: what each role sees, the workflow, deadlines
against a moving clock, notes, messages, files, and the audit trail of every look."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from whistle import cases, db
from whistle.config import Organisation
from whistle.models import AuditEntry, Note, Report, Role, Status

from .conftest import csrf_token


@pytest.fixture
def signed_in(officer_app, make_account, officer_browser):
    officer_browser.sign_in(make_account())
    return officer_browser


def _ids(officer_app) -> list[int]:
    with officer_app.app_context():
        return list(db.session().scalars(select(Report.id).order_by(Report.id)))


def _actions(officer_app) -> list[str]:
    with officer_app.app_context():
        return [e.action for e in db.session().scalars(select(AuditEntry).order_by(AuditEntry.seq))]


def _step(browser, case_id: int, **data):
    page = browser.client.get(f"/cases/{case_id}").get_data(as_text=True)
    return browser.client.post(f"/cases/{case_id}/step", data={**data, "csrf_token": csrf_token(page)})


class TestList:
    def test_lists_metadata_and_no_content(self, reporter, signed_in, officer_app):
        reporter.submit_ok(what="MARKER-LIST-CONTENT")
        page = signed_in.client.get("/cases").get_data(as_text=True)
        case_id = _ids(officer_app)[0]
        assert f"#{case_id}" in page and "MARKER-LIST-CONTENT" not in page

    def test_overdue_and_due_soon_stand_out_and_filter(self, reporter, signed_in, officer_app, clock):
        reporter.submit_ok(what="old")
        clock.advance(6)
        reporter.submit_ok(what="new")
        clock.advance(2)  # first: 8 days old, unacknowledged (ack due at 7); second: ack due in 5 days
        old, new = _ids(officer_app)
        page = signed_in.client.get("/cases?due=overdue").get_data(as_text=True)
        assert f"#{old}<" in page.replace("</a>", "<") and f"#{new}<" not in page.replace("</a>", "<")
        assert "overdue-row" in page
        clock.advance(3)  # second: ack due in 2 days -> due soon
        page = signed_in.client.get("/cases?due=soon").get_data(as_text=True)
        assert f"#{new}</a>" in page and f"#{old}</a>" not in page and "soon-row" in page

    def test_assignee_filter_and_pages(self, reporter, signed_in, officer_app, monkeypatch):
        monkeypatch.setattr(cases, "PER_PAGE", 2)
        for i in range(5):
            reporter.submit_ok(what=f"tip {i}")
        first = _ids(officer_app)[0]
        page = signed_in.client.get(f"/cases/{first}").get_data(as_text=True)
        me = re.search(r'<option value="(\d+)">Officer-A</option>', page).group(1)
        signed_in.client.post(f"/cases/{first}/assign", data={"assignee": me, "csrf_token": csrf_token(page)})
        mine = signed_in.client.get("/cases?assignee=me").get_data(as_text=True)
        assert mine.count('href="/cases/') == 1 and f"/cases/{first}\"" in mine
        listing = signed_in.client.get("/cases?order=asc&page=3&lang=en").get_data(as_text=True)
        assert listing.count('href="/cases/') == 1 and "page 3 of 3" in listing

    def test_list_needs_a_role_that_sees_cases(self, make_account, officer_browser):
        officer_browser.sign_in(make_account("admin1", role=Role.ADMIN))
        assert officer_browser.client.get("/cases").status_code == 403


class TestCasePage:
    def test_officer_reads_the_tip_escaped(self, reporter, signed_in, officer_app):
        reporter.submit_ok(what="<script>alert(1)</script> MARKER-READ", people="Head of works")
        case_id = _ids(officer_app)[0]
        page = signed_in.client.get(f"/cases/{case_id}").get_data(as_text=True)
        assert "MARKER-READ" in page and "Head of works" in page
        assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
        assert _actions(officer_app)[-1] == "tip_decrypt"

    def test_supervisor_sees_details_and_timeline_but_no_content(self, reporter, officer_app, make_account, officer_browser):
        reporter.submit_ok(what="MARKER-SUPERVISOR")
        officer_browser.sign_in(make_account("sup", role=Role.SUPERVISOR))
        case_id = _ids(officer_app)[0]
        page = officer_browser.client.get(f"/cases/{case_id}?lang=en").get_data(as_text=True)
        assert "MARKER-SUPERVISOR" not in page and f"#{case_id}" in page and 'class="timeline"' in page
        assert _actions(officer_app)[-1] == "case_view"

    def test_unknown_case_is_404(self, signed_in):
        assert signed_in.client.get("/cases/999999").status_code == 404

    def test_file_downloads_as_an_attachment_never_inline(self, reporter, signed_in, officer_app):
        body = b"%PDF-1.4 MARKER-FILE " + b"x" * 70_000
        reporter.submit_ok(files=[(__import__("io").BytesIO(body), "สัญญา <b>.pdf", "application/pdf")])
        case_id = _ids(officer_app)[0]
        page = signed_in.client.get(f"/cases/{case_id}").get_data(as_text=True)
        link = re.search(rf'href="(/cases/{case_id}/files/\d+)"', page).group(1)
        response = signed_in.client.get(link)
        assert response.status_code == 200 and response.data == body
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert "filename*=UTF-8''" in response.headers["Content-Disposition"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response.headers["Content-Security-Policy"]
        assert _actions(officer_app)[-1] == "file_download"

    def test_a_file_of_another_case_is_404(self, reporter, signed_in, officer_app):
        reporter.submit_ok(files=[(__import__("io").BytesIO(b"data"), "a.txt", "text/plain")])
        reporter.submit_ok(what="second")
        first, second = _ids(officer_app)
        page = signed_in.client.get(f"/cases/{first}").get_data(as_text=True)
        file_id = re.search(rf'/cases/{first}/files/(\d+)', page).group(1)
        assert signed_in.client.get(f"/cases/{second}/files/{file_id}").status_code == 404


class TestWorkflow:
    def test_steps_move_forward_only_with_actor_and_date(self, reporter, signed_in, officer_app, clock):
        reporter.submit_ok()
        case_id = _ids(officer_app)[0]
        clock.advance(2)
        assert _step(signed_in, case_id, status="acknowledged").status_code == 303
        assert _step(signed_in, case_id, status="investigating").status_code == 303
        _step(signed_in, case_id, status="under_review")  # backwards: refused
        with officer_app.app_context():
            report = db.session().get(Report, case_id)
            assert report.status is Status.INVESTIGATING and report.acknowledged_on == clock()
            steps = [(e.status, e.on, e.actor.username if e.actor else None) for e in report.events]
        assert steps[-2:] == [(Status.ACKNOWLEDGED, clock(), "officer-a"), (Status.INVESTIGATING, clock(), "officer-a")]
        assert _actions(officer_app).count("status_change") == 2

    def test_referral_names_the_agency_and_closing_the_outcome(self, reporter, signed_in, officer_app):
        reporter.submit_ok()
        case_id = _ids(officer_app)[0]
        _step(signed_in, case_id, status="referred", agency="nacc")
        _step(signed_in, case_id, status="closed", outcome="")
        with officer_app.app_context():
            report = db.session().get(Report, case_id)
            assert report.referred_to.value == "nacc" and report.status is Status.REFERRED
        _step(signed_in, case_id, status="closed", outcome="substantiated")
        with officer_app.app_context():
            report = db.session().get(Report, case_id)
            assert report.status is Status.CLOSED and report.outcome.value == "substantiated"

    def test_supervisor_cannot_take_steps(self, reporter, officer_app, make_account, officer_browser):
        reporter.submit_ok()
        officer_browser.sign_in(make_account("sup", role=Role.SUPERVISOR))
        case_id = _ids(officer_app)[0]
        assert _step(officer_browser, case_id, status="acknowledged").status_code == 403

    def test_closing_late_marks_the_deadline_missed(self, reporter, signed_in, officer_app, clock):
        reporter.submit_ok()
        case_id = _ids(officer_app)[0]
        clock.advance(16)
        _step(signed_in, case_id, status="closed", outcome="unsubstantiated")
        with officer_app.app_context():
            assert db.session().get(Report, case_id).resolve_missed


class TestNotesAndMessages:
    def test_note_is_sealed_and_shown_to_officers(self, reporter, signed_in, officer_app, officer_key):
        reporter.submit_ok()
        case_id = _ids(officer_app)[0]
        signed_in.post(f"/cases/{case_id}/notes", {"text": "MARKER-NOTE check the tender file"}, page=f"/cases/{case_id}")
        assert "MARKER-NOTE" in signed_in.client.get(f"/cases/{case_id}").get_data(as_text=True)
        with officer_app.app_context():
            note = db.session().scalar(select(Note))
            assert b"MARKER-NOTE" not in note.body
        assert "note_added" in _actions(officer_app)

    def test_message_reaches_the_reporter(self, reporter, signed_in, officer_app):
        code = reporter.submit_ok()
        case_id = _ids(officer_app)[0]
        signed_in.post(f"/cases/{case_id}/messages", {"text": "Which building?"}, page=f"/cases/{case_id}")
        reporter.open_case(code)
        assert "Which building?" in reporter.client.get("/case").get_data(as_text=True)
        assert "message_sent" in _actions(officer_app)

    def test_explanation_sets_the_next_deadline(self, reporter, signed_in, officer_app, clock):
        code = reporter.submit_ok()
        case_id = _ids(officer_app)[0]
        clock.advance(14)
        new_due = clock() + dt.timedelta(days=15)
        response = signed_in.post(
            f"/cases/{case_id}/messages",
            {"text": "We are waiting for the audit office.", "explains": "y", "new_due": new_due.isoformat()},
            page=f"/cases/{case_id}",
        )
        assert response.status_code == 303
        with officer_app.app_context():
            report = db.session().get(Report, case_id)
            assert report.resolve_due == new_due and not report.resolve_missed
            assert report.messages[-1].explains
        reporter.open_case(code)
        assert "We are waiting for the audit office." in reporter.client.get("/case").get_data(as_text=True)

    def test_explanation_needs_a_later_date(self, reporter, signed_in, officer_app, clock):
        reporter.submit_ok()
        case_id = _ids(officer_app)[0]
        response = signed_in.post(
            f"/cases/{case_id}/messages", {"text": "later", "explains": "y", "new_due": clock().isoformat()}, page=f"/cases/{case_id}"
        )
        assert response.status_code == 400 and "later" in response.get_data(as_text=True)

    def test_late_explanation_leaves_the_deadline_missed(self, reporter, signed_in, officer_app, clock):
        reporter.submit_ok()
        case_id = _ids(officer_app)[0]
        clock.advance(16)
        signed_in.post(
            f"/cases/{case_id}/messages",
            {"text": "sorry", "explains": "y", "new_due": (clock() + dt.timedelta(days=10)).isoformat()},
            page=f"/cases/{case_id}",
        )
        with officer_app.app_context():
            assert db.session().get(Report, case_id).resolve_missed


class TestDeadlines:
    """Calendar and working days, across weekends and holidays (cases.add_days, deadline_state)."""

    WORKING = Organisation(day_count="working", holidays=frozenset({dt.date(2026, 12, 7), dt.date(2026, 12, 10)}))
    CALENDAR = Organisation()

    @pytest.mark.parametrize(
        "org, start, days, due",
        [
            (CALENDAR, dt.date(2026, 11, 27), 7, dt.date(2026, 12, 4)),  # Friday + 7 calendar days
            (WORKING, dt.date(2026, 11, 27), 1, dt.date(2026, 11, 30)),  # Friday + 1 working day = Monday
            (WORKING, dt.date(2026, 11, 28), 1, dt.date(2026, 11, 30)),  # a Saturday tip: Monday
            (WORKING, dt.date(2026, 12, 4), 7, dt.date(2026, 12, 17)),  # skips two weekends and 7 and 10 December
            (WORKING, dt.date(2026, 11, 25), 15, dt.date(2026, 12, 18)),
        ],
    )
    def test_add_days(self, org, start, days, due):
        assert cases.add_days(org, start, days) == due

    @pytest.mark.parametrize("org", [CALENDAR, WORKING])
    def test_days_between_inverts_add_days(self, org):
        start = dt.date(2026, 11, 25)
        for n in range(0, 40):
            assert cases.days_between(org, start, cases.add_days(org, start, n)) == n

    def test_state_flips_to_overdue_the_day_after(self):
        report = Report(status=Status.RECEIVED, ack_due=dt.date(2026, 12, 2), resolve_due=dt.date(2026, 12, 10), acknowledged_on=None)
        on_due = cases.deadline_state(self.CALENDAR, report, dt.date(2026, 12, 2))
        after = cases.deadline_state(self.CALENDAR, report, dt.date(2026, 12, 3))
        assert on_due.due_soon and not on_due.overdue and on_due.ack_days_left == 0
        assert after.overdue and after.ack_days_left == -1

    def test_working_days_left_over_a_weekend(self):
        report = Report(status=Status.ACKNOWLEDGED, ack_due=dt.date(2026, 11, 30), resolve_due=dt.date(2026, 11, 30), acknowledged_on=dt.date(2026, 11, 26))
        friday = cases.deadline_state(self.WORKING, report, dt.date(2026, 11, 27))
        assert friday.resolve_days_left == 1 and friday.due_soon

    def test_new_tips_get_working_day_deadlines(self, make_app, reporter, officer_app, clock):
        app = make_app(day_count="working")
        from .conftest import Reporter

        Reporter(app.test_client()).submit_ok()
        with app.app_context():
            report = db.session().scalar(select(Report))
            org = app.extensions["whistle.settings"].organisation
            assert report.ack_due == cases.add_days(org, clock(), 7) != clock() + dt.timedelta(days=7)


class TestWorkingDaysOnThePages:
    """With working days, the case list and the case page say the same as deadline_state
    on every day of a weekend: never "due today" for a case already overdue."""

    @pytest.fixture
    def app(self, make_app):
        return make_app(day_count="working")

    @pytest.fixture
    def officer_app(self, make_app):
        from whistle import create_officer_app

        return make_app(factory=create_officer_app, day_count="working")

    @staticmethod
    def _deadline_words(page: str) -> list[str]:
        return re.findall(r"\(([^()<]*)\)", re.sub(r"\s+", " ", page))

    def test_a_friday_deadline_across_the_weekend(self, reporter, signed_in, officer_app, clock):
        clock.today = dt.date(2026, 11, 18)  # a Wednesday; 7 working days: due Friday 27 November
        reporter.submit_ok()
        (case_id,) = _ids(officer_app)
        org = officer_app.extensions["whistle.settings"].organisation
        with officer_app.app_context():
            report = db.session().get(Report, case_id)
            assert report.ack_due == dt.date(2026, 11, 27)
        expected = {
            dt.date(2026, 11, 26): ("1 day left", False),  # Thursday
            dt.date(2026, 11, 27): ("due today", False),  # Friday
            dt.date(2026, 11, 28): ("the deadline has passed", True),  # Saturday: no working day has passed
            dt.date(2026, 11, 29): ("the deadline has passed", True),  # Sunday
            dt.date(2026, 11, 30): ("1 day late", True),  # Monday
        }
        for day, (words, overdue) in expected.items():
            clock.today = day
            state = cases.deadline_state(org, report, day)
            assert state.overdue is overdue and state.ack.late is overdue, day
            listed = signed_in.client.get("/cases?lang=en").get_data(as_text=True)
            shown = signed_in.client.get(f"/cases/{case_id}?lang=en").get_data(as_text=True)
            assert words in self._deadline_words(listed), (day, self._deadline_words(listed))
            assert words in self._deadline_words(shown), (day, self._deadline_words(shown))
            for page in (listed, shown):
                assert ("due today" in page) is (words == "due today"), day
            assert ("This case is overdue." in shown) is overdue, day
            assert ("overdue-row" in listed) is overdue, day

    def test_days_left_never_says_today_for_another_day(self):
        org = TestDeadlines.WORKING
        friday = dt.date(2026, 11, 27)
        for today in (friday - dt.timedelta(days=n) for n in range(-4, 5)):
            left = cases.days_left(org, friday, today)
            assert left.today is (today == friday)
            assert left.late is (today > friday)
        # A deadline on a coming Saturday (a holiday list changed after it was set): a day ahead.
        assert cases.days_left(org, dt.date(2026, 11, 28), friday) == cases.DaysLeft(1, late=False)
