"""Tips from other channels: an officer records a tip received by telephone, letter, in
person, e-mail or the general channel; it is sealed like any tip, its deadlines count from
the day it was received, and the officer gets a printable Thai receipt with the code,
which is never put in a URL, a log, the audit trail, the database or the cookie."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re

import pytest
from sqlalchemy import select

from whistle import cases, create_officer_app, db, items
from whistle.models import AuditEntry, Channel, Report, Role

from .conftest import TIP, OfficerBrowser, Reporter, csrf_token, file_plaintext, hidden
from .test_proof import _dump_database

CODE = re.compile(r'<p class="code unbroken">([\d\u00a0]+)</p>')


def _record(browser: OfficerBrowser, day: dt.date, files=(), **fields):
    page = browser.client.get("/record").get_data(as_text=True)
    data = {**TIP, "channel": "phone", "received_on": day.isoformat(), "once": hidden(page, "once"), **fields,
            "csrf_token": csrf_token(page)}
    if files:
        data["files"] = list(files)
    return browser.client.post("/record", data=data, content_type="multipart/form-data")


def _code(html: str) -> str:
    match = CODE.search(html)
    assert match, "no code on the receipt"
    return match.group(1)


def _report(app) -> Report:
    with app.app_context():
        report = db.session().scalar(select(Report).order_by(Report.id.desc()))
        db.session().expunge(report)
        return report


@pytest.fixture
def officer(officer_app, make_account, officer_browser) -> OfficerBrowser:
    officer_browser.sign_in(make_account())
    return officer_browser


class TestRecording:
    def test_sealed_like_any_tip_with_its_channel_day_and_files(self, officer, officer_app, clock, officer_key, recovery_key):
        received = clock() - dt.timedelta(days=3)
        response = _record(
            officer, received, channel="letter", what="MARKER-LETTER the mayor's nephew won every tender",
            files=[(io.BytesIO(b"%PDF-1.4 scanned letter MARKER-SCAN"), "letter.pdf", "application/pdf")],
        )
        assert response.status_code == 200, response.get_data(as_text=True)[:2000]
        report = _report(officer_app)
        assert report.channel is Channel.LETTER and report.received_on == received
        assert b"MARKER-LETTER" not in report.content
        org = officer_app.extensions["whistle.settings"].organisation
        assert (report.ack_due, report.resolve_due) == (cases.add_days(org, received, 7), cases.add_days(org, received, 15))
        for key in (officer_key, recovery_key):
            assert items.open_tip(report, key)["what"].startswith("MARKER-LETTER")
        with officer_app.app_context():
            attachment = db.session().get(Report, report.id).attachments[0]
            assert file_plaintext(officer_app, report, attachment, officer_key) == b"%PDF-1.4 scanned letter MARKER-SCAN"
        page = officer.client.get(f"/cases/{report.id}?lang=en").get_data(as_text=True)
        assert "MARKER-LETTER" in page and "Letter" in page and "letter.pdf" in page

    @pytest.mark.parametrize("channel", ["phone", "letter", "walk_in", "email", "general_channel"])
    def test_every_other_channel(self, officer, officer_app, clock, channel):
        assert _record(officer, clock(), channel=channel).status_code == 200
        assert _report(officer_app).channel.value == channel

    def test_the_web_channel_is_not_recorded_by_hand(self, officer, officer_app, clock):
        response = _record(officer, clock(), channel="web")
        assert response.status_code == 400
        with officer_app.app_context():
            assert db.session().scalar(select(Report)) is None

    def test_a_day_in_the_future_refused_and_text_kept(self, officer, officer_app, clock):
        response = _record(officer, clock() + dt.timedelta(days=1), what="MARKER-KEPT")
        page = response.get_data(as_text=True)
        assert response.status_code == 400
        assert "ต้องไม่เลยวันนี้" in page and "MARKER-KEPT" in page and CODE.search(page) is None
        with officer_app.app_context():
            assert db.session().scalar(select(Report)) is None

    def test_the_same_form_sent_twice_records_one_tip(self, officer, officer_app, clock):
        page = officer.client.get("/record").get_data(as_text=True)
        data = {**TIP, "channel": "phone", "received_on": clock().isoformat(), "once": hidden(page, "once"),
                "csrf_token": csrf_token(page)}
        first = officer.client.post("/record", data=data, content_type="multipart/form-data")
        again = officer.client.post("/record", data=data, content_type="multipart/form-data")
        assert first.status_code == 200 and CODE.search(first.get_data(as_text=True))
        assert again.status_code == 303 and again.headers["Location"].endswith("/record")
        with officer_app.app_context():
            assert len(db.session().scalars(select(Report)).all()) == 1
        assert "แบบฟอร์มนี้ส่งไปแล้ว" in officer.client.get("/record").get_data(as_text=True)

    def test_an_earlier_day_counts_the_deadlines_from_it(self, officer, officer_app, clock):
        response = _record(officer, clock() - dt.timedelta(days=10))
        report = _report(officer_app)
        assert report.ack_due == clock() - dt.timedelta(days=3)  # already late: shown so
        html = response.get_data(as_text=True)
        assert "15 พฤศจิกายน 2569" in html and "22 พฤศจิกายน 2569" in html and "30 พฤศจิกายน 2569" in html
        with officer_app.app_context():
            state = cases.deadline_state(officer_app.extensions["whistle.settings"].organisation, report, clock())
        assert state.overdue

    def test_on_the_audit_trail_without_content(self, officer, officer_app, clock):
        html = _record(officer, clock(), what="MARKER-AUDIT").get_data(as_text=True)
        code = _code(html).replace("\u00a0", "")
        with officer_app.app_context():
            entry = db.session().scalar(select(AuditEntry).where(AuditEntry.action == "tip_recorded"))
            detail = json.loads(entry.detail)
        assert entry.actor == "officer-a" and entry.case_id == _report(officer_app).id
        assert detail == {"channel": "phone", "received_on": clock().isoformat(), "files": 0, "identity": False}
        assert "MARKER-AUDIT" not in entry.detail and code not in entry.detail


class TestReceipt:
    def test_code_in_eight_unbroken_groups_opens_the_case(self, officer, officer_app, make_app, clock):
        html = _record(officer, clock() - dt.timedelta(days=1), channel="walk_in").get_data(as_text=True)
        shown = _code(html)
        groups = shown.split("\u00a0")
        assert len(groups) == 8 and all(re.fullmatch(r"\d{4}", g) for g in groups)
        css = officer.client.get("/static/officer.css").get_data(as_text=True)
        assert re.search(r"\.code\.unbroken\s*\{[^}]*white-space:\s*nowrap", css)
        reporter = Reporter(make_app().test_client())
        assert reporter.open_case(shown).status_code == 303
        page = reporter.client.get("/case?lang=en").get_data(as_text=True)
        assert "Your report was received (channel: In person)." in re.sub(r"\s+", " ", page)
        assert "24 November 2569 B.E." in page

    def test_thai_receipt_with_addresses_dates_and_advice(self, officer_app, make_app, make_account, wallclock, clock):
        configured = make_app(factory=create_officer_app, site_url="https://whistle.example.go.th/",
                              onion_address="exampleonionaddressxyz.onion")
        browser = OfficerBrowser(configured.test_client(), wallclock)
        browser.sign_in(make_account())
        response = _record(browser, clock(), identity_name="", identity_contact="")
        html = response.get_data(as_text=True)
        receipt = html[html.index('<section class="receipt tip-receipt" lang="th"'):]
        for words in ("ใบรับแจ้งเรื่องร้องเรียน", "รหัสติดตามของท่าน", "https://whistle.example.go.th/status",
                      "http://exampleonionaddressxyz.onion/status", "25 พฤศจิกายน 2569", "2 ธันวาคม 2569",
                      "10 ธันวาคม 2569", "นับเป็นวันตามปฏิทิน", "เก็บรักษารหัส"):
            assert words in receipt, words
        # Thai even when the officer reads the workspace in English.
        browser.client.get("/record?lang=en")
        html = _record(browser, clock()).get_data(as_text=True)
        assert "Receipt for the reporter" in html and "รหัสติดตามของท่าน" in html

    def test_print_hides_everything_but_the_receipt(self, officer, clock):
        html = _record(officer, clock()).get_data(as_text=True)
        css = officer.client.get("/static/style.css").get_data(as_text=True)
        print_rules = css[css.index("@media print"):]
        assert "header.site" in print_rules and ".no-print" in print_rules and ".notice" in print_rules
        before_receipt = html[: html.index('class="receipt tip-receipt"')]
        assert '<div class="no-print">' in before_receipt and '<header class="site">' in before_receipt

    def test_missing_site_address_is_said_to_the_officer(self, officer, clock):
        html = _record(officer, clock()).get_data(as_text=True)
        assert "site_url" in html and "ช่องทางแจ้งเรื่องร้องเรียนการทุจริตบนเว็บไซต์ของเทศบาล" in html

    def test_code_never_in_url_cookie_log_audit_or_database(self, officer, officer_app, clock, caplog):
        caplog.set_level(logging.DEBUG)
        response = _record(officer, clock(), what="MARKER-NOWHERE")
        code = _code(response.get_data(as_text=True))
        digits = code.replace("\u00a0", "")
        assert response.status_code == 200 and "Location" not in response.headers
        assert response.headers["Cache-Control"] == "no-store"
        serializer = officer_app.session_interface.get_signing_serializer(officer_app)
        cookie = officer.client.get_cookie("whistle_officer")
        assert digits not in json.dumps(serializer.loads(cookie.value)) and digits not in cookie.value
        assert digits not in caplog.text and digits[7:27] not in caplog.text
        dump = _dump_database(officer_app)
        assert digits.encode() not in dump and digits[7:27].encode() not in dump
        case_page = officer.client.get(f"/cases/{_report(officer_app).id}").get_data(as_text=True)
        assert digits[7:27] not in case_page.replace("\u00a0", "").replace(" ", "")


class TestAccess:
    def test_only_officers_record(self, officer_app, make_account, officer_browser, clock):
        for username, role in (("sup", Role.SUPERVISOR), ("adm", Role.ADMIN)):
            browser = OfficerBrowser(officer_app.test_client(), officer_browser.wallclock)
            browser.sign_in(make_account(username, role=role))
            assert browser.client.get("/record").status_code == 403
            token = csrf_token(browser.client.get("/passphrase").get_data(as_text=True))
            assert browser.client.post("/record", data={**TIP, "csrf_token": token}).status_code == 403
            assert "/record" not in browser.client.get("/passphrase").get_data(as_text=True)

    def test_linked_from_the_nav_for_officers(self, officer):
        assert 'href="/record"' in officer.client.get("/cases").get_data(as_text=True)

    def test_needs_the_form_token(self, officer, officer_app, clock):
        data = {**TIP, "channel": "phone", "received_on": clock().isoformat()}
        assert officer.client.post("/record", data=data, content_type="multipart/form-data").status_code == 400
        with officer_app.app_context():
            assert db.session().scalar(select(Report)) is None

    def test_signed_out_goes_to_sign_in(self, officer_app):
        assert officer_app.test_client().get("/record").status_code == 303


class TestIdentityGiven:
    def test_a_name_only_with_the_reporters_agreement(self, officer, officer_app, clock, officer_key):
        response = _record(officer, clock(), identity_name="MARKER-CALLER", identity_contact="081 000 0000")
        assert response.status_code == 400 and "MARKER-CALLER" in response.get_data(as_text=True)
        response = _record(officer, clock(), identity_name="MARKER-CALLER", identity_contact="081 000 0000",
                           identity_consent="y")
        assert response.status_code == 200
        report = _report(officer_app)
        assert b"MARKER-CALLER" not in report.identity
        assert items.open_identity(report, officer_key) == {"name": "MARKER-CALLER", "contact": "081 000 0000"}
        assert "MARKER-CALLER" not in officer.client.get(f"/cases/{report.id}").get_data(as_text=True)
        assert "ท่านได้ให้ชื่อและช่องทางติดต่อไว้โดยเป็นความลับ" in response.get_data(as_text=True)

    def test_no_identity_when_left_empty(self, officer, officer_app, clock):
        _record(officer, clock(), identity_consent="y")
        assert _report(officer_app).identity is None
