"""The reporter's journey: report, receipt, check-you-saved-it, status, conversation."""

from __future__ import annotations

import io
import re

import pytest

from whistle import db
from whistle.models import Author, Report
from whistle.intake import read_tip

from .conftest import TIP, csrf_token, hidden, message_text, officer_says, receipt_code


def _case_page(reporter) -> str:
    return reporter.client.get("/case?lang=en").get_data(as_text=True)


class TestLanding:
    def test_landing_explains_channel_without_javascript(self, client):
        page = client.get("/?lang=en").get_data(as_text=True)
        for text in ("What belongs here", "general complaints", "How your report is handled", "work computer"):
            assert text in page
        assert "<script" not in page

    def test_landing_links_general_channel_when_configured(self, make_app):
        app = make_app(general_complaints_url="https://example.go.th/complaints")
        page = app.test_client().get("/?lang=en").get_data(as_text=True)
        assert 'href="https://example.go.th/complaints"' in page

    def test_landing_shows_onion_address_when_configured(self, make_app):
        app = make_app(onion_address="abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvw.onion")
        page = app.test_client().get("/?lang=en").get_data(as_text=True)
        assert "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvw.onion" in page


class TestReport:
    def test_report_form_lists_configured_categories(self, client):
        page = client.get("/report?lang=en").get_data(as_text=True)
        assert 'value="procurement"' in page and "Procurement and bid rigging" in page

    def test_report_custom_categories_from_config(self, make_app):
        app = make_app(categories=[{"key": "roads", "label_th": "ถนน", "label_en": "Road works"}])
        page = app.test_client().get("/report?lang=en").get_data(as_text=True)
        assert 'value="roads"' in page and "Road works" in page and 'value="procurement"' not in page

    def test_report_stores_tip_and_shows_code_once(self, app, reporter, officer_key):
        response = reporter.submit()
        html = response.get_data(as_text=True)
        assert response.status_code == 200
        code = receipt_code(html)
        assert re.fullmatch(r"(\d{4} ){7}\d{4}", code)
        assert response.headers["Cache-Control"] == "no-store"
        with app.app_context():
            report = db.session().query(Report).one()
            assert read_tip(report, officer_key)["what"] == TIP["what"]
            assert report.category == "procurement"
            assert report.status.value == "received"

    def test_report_missing_required_field_keeps_typed_text(self, app, reporter):
        response = reporter.submit(what="", people="Mayor's driver ทดสอบ")
        html = response.get_data(as_text=True)
        assert response.status_code == 400
        assert "Mayor&#39;s driver ทดสอบ" in html
        assert "Please fill in this field." in html
        with app.app_context():
            assert db.session().query(Report).count() == 0

    def test_report_without_category_is_refused(self, app, reporter):
        response = reporter.submit(category="")
        assert response.status_code == 400
        assert "Please choose the kind of wrongdoing." in response.get_data(as_text=True)

    def test_report_unknown_category_is_refused(self, app, reporter):
        assert reporter.submit(category="not-a-category").status_code == 400

    def test_report_with_files_stores_them_sealed(self, app, reporter, officer_key):
        reporter.submit_ok(files=[(io.BytesIO(b"%PDF-1.4 evidence"), "order.pdf"), (io.BytesIO(b"\x89PNG..."), "photo.png")])
        with app.app_context():
            report = db.session().query(Report).one()
            assert len(report.attachments) == 2
            store = app.extensions["whistle.blobs"]
            assert sorted(p.name for p in store.root.iterdir() if p.is_file()) == sorted(
                a.blob_name for a in report.attachments
            )
            assert list(store.incoming.iterdir()) == []

    def test_report_expired_form_keeps_text(self, app, client):
        response = client.post("/report?lang=en", data={**TIP, "csrf_token": "forged"}, content_type="multipart/form-data")
        html = response.get_data(as_text=True)
        assert response.status_code == 400
        assert "This form had expired" in html
        assert TIP["what"] in html


class TestReceipt:
    def test_saved_step_accepts_last_group(self, reporter):
        html = reporter.submit().get_data(as_text=True)
        code = hidden(html, "code")
        response = reporter.client.post(
            "/report/saved",
            data={"code": code, "last_group": code[-4:], "csrf_token": csrf_token(html)},
        )
        assert response.status_code == 200
        assert "Your code is saved" in response.get_data(as_text=True)

    def test_saved_step_wrong_digits_shows_code_again(self, reporter):
        html = reporter.submit().get_data(as_text=True)
        code = hidden(html, "code")
        wrong = "0000" if code[-4:] != "0000" else "1111"
        response = reporter.client.post(
            "/report/saved", data={"code": code, "last_group": wrong, "csrf_token": csrf_token(html)}
        )
        page = response.get_data(as_text=True)
        assert response.status_code == 400
        assert "do not match" in page and code in page

    def test_saved_step_refuses_code_this_visit_was_not_shown(self, reporter):
        html = reporter.submit().get_data(as_text=True)
        other = reporter.client.application.test_client()
        page = other.get("/report").get_data(as_text=True)
        response = other.post(
            "/report/saved",
            data={"code": hidden(html, "code"), "last_group": hidden(html, "code")[-4:], "csrf_token": csrf_token(page)},
        )
        assert response.status_code == 400
        assert hidden(html, "code") not in response.get_data(as_text=True)

    def test_receipt_download_is_text_attachment_with_code(self, reporter):
        html = reporter.submit().get_data(as_text=True)
        code = hidden(html, "code")
        response = reporter.client.post("/report/receipt.txt", data={"code": code, "csrf_token": csrf_token(html)})
        assert response.status_code == 200
        assert response.mimetype == "text/plain"
        assert "attachment" in response.headers["Content-Disposition"]
        assert code in response.get_data(as_text=True)

    def test_receipt_closes_after_saved_step(self, reporter):
        html = reporter.submit().get_data(as_text=True)
        code = hidden(html, "code")
        reporter.client.post("/report/saved", data={"code": code, "last_group": code[-4:], "csrf_token": csrf_token(html)})
        again = reporter.client.post("/report/receipt.txt", data={"code": code, "csrf_token": csrf_token(html)})
        assert again.status_code == 400
        assert code not in again.get_data(as_text=True)


class TestStatus:
    def test_status_opens_case_with_dates_and_deadlines(self, reporter, clock):
        code = reporter.submit_ok()
        response = reporter.open_case(code)
        assert response.status_code == 303 and response.headers["Location"].endswith("/case")
        page = _case_page(reporter)
        assert "Received" in page
        assert "25 November 2569 B.E." in page  # received
        assert "2 December 2569 B.E." in page  # acknowledge within 7 days
        assert "10 December 2569 B.E." in page  # resolve within 15 days
        assert code not in page and code.replace(" ", "") not in page

    def test_status_accepts_code_without_spaces_and_thai_digits(self, reporter):
        code = reporter.submit_ok()
        thai = code.translate(str.maketrans("0123456789", "๐๑๒๓๔๕๖๗๘๙"))
        assert reporter.open_case(code.replace(" ", "")).status_code == 303
        assert reporter.open_case(thai).status_code == 303

    def test_status_wrong_check_digit_caught_before_lookup(self, reporter):
        code = reporter.submit_ok()
        digits = code.replace(" ", "")
        typo = digits[:5] + str((int(digits[5]) + 1) % 10) + digits[6:]
        response = reporter.open_case(typo)
        assert response.status_code == 400
        assert "not a valid tracking code" in response.get_data(as_text=True)

    def test_case_view_shows_overdue_when_past_deadline(self, reporter, clock):
        reporter.open_case(reporter.submit_ok())
        clock.advance(16)
        page = _case_page(reporter)
        assert '<strong class="overdue">(1 day late)</strong>' in page and "has passed without either" in page

    def test_case_view_expires(self, reporter, app, monkeypatch):
        reporter.open_case(reporter.submit_ok())
        import time as _time

        real = _time.time
        monkeypatch.setattr("whistle.reporter.views.time.time", lambda: real() + 16 * 60)
        response = reporter.client.get("/case")
        assert response.status_code == 303 and response.headers["Location"].endswith("/status")

    def test_case_view_closed_by_reporter(self, reporter):
        reporter.open_case(reporter.submit_ok())
        page = reporter.client.get("/case").get_data(as_text=True)
        reporter.client.post("/case/close", data={"csrf_token": csrf_token(page)})
        assert reporter.client.get("/case").status_code == 303

    def test_case_without_open_view_redirects(self, client):
        assert client.get("/case").status_code == 303


class TestConversation:
    def test_officer_message_shown_and_reply_sealed(self, app, reporter, officer_key, recovery_key):
        code = reporter.submit_ok()
        with app.app_context():
            report_id = db.session().query(Report).one().id
        officer_says(app, report_id, "Which contract number was it?", officer_key)
        reporter.open_case(code)
        assert "Which contract number was it?" in _case_page(reporter)
        response = reporter.reply("Contract 12/2569", files=[(io.BytesIO(b"scan"), "contract.jpg")])
        assert response.status_code == 303
        page = _case_page(reporter)
        assert "Contract 12/2569" in page and "1 file" in page
        from whistle import crypto

        with app.app_context():
            report = db.session().query(Report).one()
            assert message_text(report, report.messages[-1], officer_key) == "Contract 12/2569"
            assert message_text(report, report.messages[-1], recovery_key) == "Contract 12/2569"

    def test_reply_empty_is_refused_with_message(self, reporter):
        reporter.open_case(reporter.submit_ok())
        response = reporter.reply("")
        assert response.status_code == 400
        assert "Please fill in this field." in response.get_data(as_text=True)

    def test_reply_without_open_view_sends_nothing(self, app, client):
        page = client.get("/status").get_data(as_text=True)
        response = client.post("/case/reply", data={"text": "x", "csrf_token": csrf_token(page)})
        # Nothing is sent: the page asks for the code, keeping the text to send afterwards.
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and 'name="code"' in html and "x</textarea>" in html
        with app.app_context():
            assert db.session().query(Report).count() == 0

    def test_thread_escapes_html_from_reporter(self, reporter):
        reporter.open_case(reporter.submit_ok())
        reporter.reply('<script>alert(1)</script><img src=x onerror=alert(2)>')
        page = _case_page(reporter)
        assert "<script>alert(1)" not in page and "&lt;script&gt;" in page


@pytest.mark.parametrize("path", ["/", "/report", "/status"])
def test_pages_have_no_third_party_requests(client, path):
    page = client.get(path).get_data(as_text=True)
    assert not re.search(r'(src|href)="(https?:)?//', page.replace('href="https://example', ""))
    assert "<script" not in page
