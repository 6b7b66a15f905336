"""The reporter's status page after each officer step: every step dated and worded for a
citizen, every explanation of a delay with its new deadline, the current deadlines as
dates, calendar or working days said plainly, lateness shown honestly, and never which
officer did what. The clock moves across weekends and a public holiday."""

from __future__ import annotations

import datetime as dt
import html as html_module
import re

import pytest
from sqlalchemy import select

from whistle import create_officer_app, db
from whistle.models import Report

from .conftest import OfficerBrowser, Reporter, csrf_token


def _text(html: str) -> str:
    """The page's words, without tags, spaces squeezed."""
    html = re.sub(r'<span class="nw">([^<]*)</span>', r"\1", html)  # Thai words kept whole
    return re.sub(r"\s+", " ", html_module.unescape(re.sub(r"<[^>]+>", " ", html)))


class Desk:
    """A reporter with their case open, and the officer handling it, on one app pair."""

    def __init__(self, reporter: Reporter, officer: OfficerBrowser, officer_app) -> None:
        self.reporter, self.officer, self.officer_app = reporter, officer, officer_app
        reporter.open_case(reporter.submit_ok())
        with officer_app.app_context():
            self.case_id = db.session().scalar(select(Report.id))

    def page(self, lang: str = "en") -> str:
        response = self.reporter.client.get(f"/case?lang={lang}")
        assert response.status_code == 200
        return response.get_data(as_text=True)

    def step(self, status: str, **data) -> None:
        path = f"/cases/{self.case_id}"
        token = csrf_token(self.officer.client.get(path).get_data(as_text=True))
        response = self.officer.client.post(f"{path}/step", data={"status": status, **data, "csrf_token": token})
        assert response.status_code == 303

    def explain(self, text: str, new_due: dt.date) -> None:
        response = self.officer.post(
            f"/cases/{self.case_id}/messages", {"text": text, "explains": "y", "new_due": new_due.isoformat()},
            page=f"/cases/{self.case_id}",
        )
        assert response.status_code == 303


@pytest.fixture
def desk(reporter, officer_app, make_account, officer_browser) -> Desk:
    officer_browser.sign_in(make_account("somchai"))
    return Desk(reporter, officer_browser, officer_app)


@pytest.fixture
def working_desk(make_app, make_account, wallclock) -> Desk:
    """Working days, with the shipped holidays (7 and 10 December 2026 among them)."""
    app = make_app(organisation={"day_count": "working"})
    officer_app = make_app(factory=create_officer_app, organisation={"day_count": "working"})
    browser = OfficerBrowser(officer_app.test_client(), wallclock)
    browser.sign_in(make_account("somchai"))
    return Desk(Reporter(app.test_client()), browser, officer_app)


class TestSteps:
    def test_every_step_dated_and_worded_for_the_reporter(self, desk, clock):
        clock.advance(1)
        desk.step("acknowledged")
        clock.advance(1)
        desk.step("under_review")
        clock.advance(2)
        desk.step("investigating")
        clock.advance(3)
        desk.step("referred", agency="nacc")
        page = _text(desk.page())
        assert "25 November 2569 B.E. Your report was received through this website." in page
        assert "26 November 2569 B.E. The designated officers acknowledged your report." in page
        assert "27 November 2569 B.E. The designated officers began to review your report." in page
        assert "29 November 2569 B.E. The designated officers began to investigate the facts." in page
        assert ("2 December 2569 B.E. Your report was referred to National Anti-Corruption Commission (NACC), "
                "which has authority over the matter.") in page
        assert "Acknowledged on 26 November 2569 B.E." in page
        clock.advance(1)
        desk.step("closed", outcome="insufficient_information")
        page = _text(desk.page())
        assert "3 December 2569 B.E. The case was closed. Result: There was not enough information to act on." in page
        assert "Closed on 3 December 2569 B.E." in page
        assert "To be resolved" not in page and "Reply to the officers" not in page

    def test_page_after_each_step_in_thai(self, desk, clock):
        expected = {
            "acknowledged": "เจ้าหน้าที่ผู้รับผิดชอบได้ตอบรับเรื่องของท่านแล้ว",
            "under_review": "เจ้าหน้าที่ผู้รับผิดชอบเริ่มพิจารณาเรื่องของท่านแล้ว",
            "investigating": "เจ้าหน้าที่ผู้รับผิดชอบเริ่มตรวจสอบข้อเท็จจริงแล้ว",
        }
        for status, words in expected.items():
            clock.advance(1)
            desk.step(status)
            page = _text(desk.page("th"))
            assert words in page, status
            assert f"{clock().day} พฤศจิกายน 2569 {words}" in page

    def test_officers_names_never_shown(self, desk, clock):
        desk.step("acknowledged")
        page = desk.officer.client.get(f"/cases/{desk.case_id}").get_data(as_text=True)
        me = re.search(r'<option value="(\d+)">Somchai</option>', page).group(1)
        desk.officer.post(f"/cases/{desk.case_id}/assign", {"assignee": me}, page=f"/cases/{desk.case_id}")
        desk.explain("We are waiting for documents from the finance division.", clock() + dt.timedelta(days=20))
        reporter_page = desk.page() + desk.page("th")
        assert "Somchai" not in reporter_page and "somchai" not in reporter_page
        # The assignment is the officers' business: received, acknowledged, explained, no more.
        timeline = re.search(r'<ol class="timeline">(.*?)</ol>', desk.page(), re.S).group(1)
        assert timeline.count("<li>") == 3
        assert "Officer in charge" not in reporter_page


class TestExplanations:
    def test_each_explanation_with_its_new_deadline(self, desk, clock):
        desk.step("acknowledged")
        clock.advance(14)
        desk.explain("We are waiting for the State Audit Office's findings.", dt.date(2026, 12, 24))
        clock.advance(15)
        desk.explain("The audit needs one more month.", dt.date(2027, 1, 22))
        page = _text(desk.page())
        first = ("9 December 2569 B.E. The designated officers explained why more time is needed. "
                 "New deadline: 24 December 2569 B.E. We are waiting for the State Audit Office's findings.")
        second = ("24 December 2569 B.E. The designated officers explained why more time is needed. "
                  "New deadline: 22 January 2570 B.E. The audit needs one more month.")
        assert first in page and second in page
        assert "To be resolved, or the delay explained to you, by 22 January 2570 B.E. (in 29 days)" in page
        assert "explains why more time is needed" in page  # marked in the conversation too
        assert "days late" not in page and "has passed" not in page and "not met" not in page

    def test_explanation_in_thai(self, desk, clock):
        clock.advance(10)
        desk.explain("รอเอกสารจากกองคลัง", dt.date(2026, 12, 20))
        page = _text(desk.page("th"))
        assert "เจ้าหน้าที่ผู้รับผิดชอบได้ชี้แจงเหตุที่ต้องใช้เวลาเพิ่ม กำหนดใหม่: 20 ธันวาคม 2569 รอเอกสารจากกองคลัง" in page


class TestDeadlines:
    def test_calendar_days_said_plainly(self, desk):
        page = _text(desk.page())
        assert "Days are counted in calendar days: every day counts, weekends and public holidays included." in page
        assert "A report is acknowledged within 7 days." in page
        assert "Due by 2 December 2569 B.E. (in 7 days)" in page
        assert "10 December 2569 B.E. (in 15 days)" in page
        thai = _text(desk.page("th"))
        assert "นับเป็นวันตามปฏิทิน" in thai and "ภายในวันที่ 2 ธันวาคม 2569 (อีก 7 วัน)" in thai

    def test_overdue_acknowledgement_shown_honestly(self, desk, clock):
        clock.advance(7)
        assert "late" not in _text(desk.page()) and "(today)" in _text(desk.page())
        clock.advance(1)
        page = _text(desk.page())
        assert "Due by 2 December 2569 B.E. (1 day late)" in page
        assert "should have been acknowledged by 2 December 2569 B.E., and it has not been yet. We apologise" in page
        desk.step("acknowledged")
        page = _text(desk.page())
        assert "should have been acknowledged" not in page and "Acknowledged on 3 December 2569 B.E." in page

    def test_overdue_resolution_then_late_explanation(self, desk, clock):
        desk.step("acknowledged")
        clock.advance(18)
        page = _text(desk.page())
        assert "10 December 2569 B.E. (3 days late)" in page
        assert "has passed without either. We apologise." in page
        desk.explain("Sorry for the delay: the contracts are with the auditors.", clock() + dt.timedelta(days=10))
        page = _text(desk.page())
        assert "has passed without either" not in page
        assert "An earlier deadline of this case was not met." in page
        assert "23 December 2569 B.E. (in 10 days)" in page

    def test_working_days_across_a_weekend_and_holidays(self, working_desk, clock):
        desk = working_desk
        page = _text(desk.page())
        assert "Days are counted in working days: Monday to Friday, without public holidays." in page
        assert "A report is acknowledged within 7 working days." in page
        # Wednesday 25 November + 7 working days = Friday 4 December; + 15, skipping 7 and
        # 10 December (holidays) and three weekends = Friday 18 December.
        assert "Due by 4 December 2569 B.E. (in 7 working days)" in page
        assert "18 December 2569 B.E. (in 15 working days)" in page
        assert "วันทำการ" in _text(desk.page("th"))
        clock.today = dt.date(2026, 12, 4)  # Friday: due today
        assert "Due by 4 December 2569 B.E. (today)" in _text(desk.page())
        clock.today = dt.date(2026, 12, 5)  # Saturday: no working day passed, yet late
        page = _text(desk.page())
        assert "Due by 4 December 2569 B.E. (the deadline has passed)" in page
        assert "should have been acknowledged by 4 December 2569 B.E." in page
        clock.today = dt.date(2026, 12, 8)  # Tuesday after the Monday holiday: 1 working day late
        assert "Due by 4 December 2569 B.E. (1 working day late)" in _text(desk.page())
        desk.step("acknowledged")
        clock.today = dt.date(2026, 12, 11)  # Friday; Thursday 10 December is a holiday
        assert "18 December 2569 B.E. (in 5 working days)" in _text(desk.page())


class TestChannels:
    def test_identity_line_for_an_anonymous_report(self, desk):
        page = _text(desk.page())
        assert "Your name and contact Not given: your report is anonymous." in page
