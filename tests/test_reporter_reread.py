"""The reporter re-reads what they sent and adds to it (issue 9, item 5): their answers,
file names and the whole conversation, opened with their own key; additions with text and
photos, cleaned as the report's; the officers' files downloaded, never shown inline; and
cases sent before, which say so honestly."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select

from whistle import cases, crypto, db, keyring
from whistle.models import Attachment, Author, Message, Report, Status

from .conftest import TIP, csrf_token, file_meta, file_plaintext, message_text
from .photo_craft import phone_jpeg
from .photo_judge import leaks


def _page(reporter) -> str:
    return reporter.client.get("/case?lang=en").get_data(as_text=True)


def _case_id(app) -> int:
    with app.app_context():
        return db.session().scalars(select(Report.id).order_by(Report.id.desc())).first()


def _add(reporter, text: str = "", files=()):
    page = _page(reporter)
    data = {"add-text": text, "add-csrf_token": csrf_token(page)}
    if files:
        data["add-files"] = list(files)
    return reporter.client.post("/case/add?lang=en", data=data, content_type="multipart/form-data")


@pytest.fixture
def signed_in(officer_app, make_account, officer_browser):
    officer_browser.sign_in(make_account())
    return officer_browser


def _officer_sends(browser, case_id: int, text: str, files=()):
    data = {"text": text}
    if files:
        data["files"] = list(files)
    response = browser.post(f"/cases/{case_id}/messages", data, page=f"/cases/{case_id}", content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)[:800]


def _unseal_from_reporter(app, case_id: int, officer_key, recovery_key) -> None:
    """Make a case look as one sent before this feature: its tip and files sealed to the
    officers and the recovery key only (what `keys rewrap` would write for them)."""
    with app.app_context():
        session = db.session()
        report = session.get(Report, case_id)
        staff = [officer_key.public_key(), recovery_key.public_key()]
        report.content = crypto.rewrap_envelope(report.content, officer_key, staff, cases.context(report, cases.TIP_SLOT))
        for a in report.attachments:
            a.meta = crypto.rewrap_envelope(a.meta, officer_key, staff, cases.context(report, cases.file_slot(a.blob_name, "meta")))
            a.wraps = crypto.rewrap(a.wraps, officer_key, staff, crypto.KIND_FILE, cases.context(report, cases.file_slot(a.blob_name, "data")))
        session.commit()


class TestReread:
    def test_reporter_rereads_answers_file_names_and_the_whole_conversation(self, app, reporter, signed_in):
        code = reporter.submit_ok(
            where="Building <b>2</b>",
            files=[(io.BytesIO(b"%PDF-1.4 order"), "order <script>x</script>.pdf")],
        )
        case_id = _case_id(app)
        _officer_sends(signed_in, case_id, "Which contract number was it?")
        reporter.open_case(code)
        reporter.reply("Contract 12/2569")
        page = _page(reporter)
        for answer in (TIP["what"], TIP["people"], TIP["when"], TIP["how_known"], TIP["evidence"]):
            assert answer in page
        assert "Building &lt;b&gt;2&lt;/b&gt;" in page and "<b>2</b>" not in page
        assert "order &lt;script&gt;x&lt;/script&gt;.pdf" in page and "<script>x" not in page
        assert "Which contract number was it?" in page and "Contract 12/2569" in page
        # The conversation first (what the officers ask), then what the reporter sent, then
        # the form to add to it.
        assert page.index("Which contract number was it?") < page.index("What you sent") < page.index('action="/case/add"')

    def test_tip_and_files_are_sealed_to_the_reporter_but_the_identity_is_not(self, app, reporter):
        reporter.submit_ok(
            identity_name="Somchai", identity_contact="081 234 5678",
            files=[(io.BytesIO(b"%PDF-1.4 order"), "order.pdf")],
        )
        with app.app_context():
            report = db.session().scalar(select(Report))
            mine = cases.reporter_key_id(report)
            assert mine in crypto.envelope_recipients(report.content)
            assert mine not in crypto.envelope_recipients(report.identity)
            attachment = report.attachments[0]
            assert mine in crypto.envelope_recipients(attachment.meta)
            assert mine in crypto.recipient_ids(attachment.wraps)
        page = _page(reporter)
        assert "Somchai" not in page and "081 234 5678" not in page

    def test_a_case_sent_before_says_so_and_the_officers_still_read_it(self, app, reporter, officer_key, recovery_key):
        code = reporter.submit_ok(files=[(io.BytesIO(b"%PDF-1.4 order"), "old-order.pdf")])
        case_id = _case_id(app)
        _unseal_from_reporter(app, case_id, officer_key, recovery_key)
        reporter.open_case(code)
        page = _page(reporter)
        assert "sent before reports could be re-read here" in page and "still have it" in page
        assert TIP["what"] not in page and "old-order.pdf" not in page
        assert "A file sent before files could be re-read here" in page
        with app.app_context():
            report = db.session().get(Report, case_id)
            from whistle.intake import read_tip

            assert read_tip(report, officer_key)["what"] == TIP["what"]

    def test_rewrap_keeps_the_reporter_where_it_was_and_adds_it_nowhere_else(self, app, reporter, officer_key, recovery_key):
        Reporter = type(reporter)
        reporter.submit_ok(files=[(io.BytesIO(b"new"), "new.pdf")])
        new_id = _case_id(app)
        Reporter(app.test_client()).submit_ok(files=[(io.BytesIO(b"old"), "old.pdf")])
        old_id = _case_id(app)
        _unseal_from_reporter(app, old_id, officer_key, recovery_key)
        with app.app_context():
            from whistle.extensions import trust_of

            session = db.session()
            keyring.rewrap_all(session, trust_of(app), officer_key)
            session.commit()
            for case_id, expected in ((new_id, True), (old_id, False)):
                report = session.get(Report, case_id)
                mine = cases.reporter_key_id(report)
                assert (mine in crypto.envelope_recipients(report.content)) is expected
                assert (mine in crypto.envelope_recipients(report.attachments[0].meta)) is expected
                assert (mine in crypto.recipient_ids(report.attachments[0].wraps)) is expected


class TestAdd:
    def test_reporter_adds_text_and_a_photo_whose_metadata_is_removed(self, app, reporter, officer_key, signed_in):
        code = reporter.submit_ok()
        case_id = _case_id(app)
        reporter.open_case(code)
        photo = phone_jpeg()
        assert leaks(photo), "a photo with nothing to remove tests nothing"
        response = _add(reporter, "I found the second purchase order", [(io.BytesIO(photo), "ใบสั่งซื้อ.jpg", "image/jpeg")])
        assert response.status_code == 303 and response.headers["Location"].endswith("/case#sent")
        page = _page(reporter)
        assert "What you added was sent to the officers" in page
        assert "Hidden details such as location were removed from: ใบสั่งซื้อ.jpg" in page
        sent = page[page.index("What you sent") : page.index('action="/case/add"')]
        assert "I found the second purchase order" in sent and "ใบสั่งซื้อ.jpg" in sent
        with app.app_context():
            report = db.session().get(Report, case_id)
            message = report.messages[-1]
            assert message.author is Author.REPORTER
            assert message_text(report, message, officer_key) == "I found the second purchase order"
            attachment = message.attachments[0]
            stored = file_plaintext(app, report, attachment, officer_key)
            assert leaks(stored) == [] and b"MARK" not in stored
            assert file_meta(report, attachment, officer_key).name == "ใบสั่งซื้อ.jpg"
        officer_page = signed_in.client.get(f"/cases/{case_id}?lang=en").get_data(as_text=True)
        assert "I found the second purchase order" in officer_page and "added to the report" in officer_page
        assert "The reporter added to this report 1 time since it was sent" in officer_page
        timeline = officer_page[officer_page.index('class="timeline"') :]
        assert "The reporter added to the report" in timeline[: timeline.index("</ol>")]
        link = re.search(rf'href="(/cases/{case_id}/files/\d+)"[^>]*>ใบสั่งซื้อ.jpg<', officer_page).group(1)
        downloaded = signed_in.client.get(link)
        assert downloaded.status_code == 200 and downloaded.data == stored

    def test_a_file_alone_is_enough_and_html_in_the_text_is_escaped(self, reporter):
        reporter.open_case(reporter.submit_ok())
        assert _add(reporter, files=[(io.BytesIO(b"%PDF-1.4"), "more.pdf")]).status_code == 303
        assert _add(reporter, "<img src=x onerror=alert(1)>").status_code == 303
        page = _page(reporter)
        assert "more.pdf" in page and "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page

    def test_nothing_to_add_is_refused_with_a_clear_message(self, app, reporter):
        reporter.open_case(reporter.submit_ok())
        response = _add(reporter, "   ")
        assert response.status_code == 400
        assert "Please write what you would like to add, or attach a file." in response.get_data(as_text=True)
        with app.app_context():
            assert db.session().scalar(select(Message)) is None

    def test_too_long_text_is_kept_and_refused(self, app, reporter):
        reporter.open_case(reporter.submit_ok())
        response = _add(reporter, "ก" * 10_001)
        assert response.status_code == 400 and "ก" * 100 in response.get_data(as_text=True)

    def test_nothing_is_added_to_a_closed_case(self, app, reporter, clock):
        reporter.open_case(reporter.submit_ok())
        page = _page(reporter)
        assert 'action="/case/add"' in page
        with app.app_context():
            cases.close_case(db.session(), _case_id(app), "unsubstantiated", clock())
        assert 'action="/case/add"' not in _page(reporter)
        response = reporter.client.post(
            "/case/add?lang=en", data={"add-text": "late", "add-csrf_token": csrf_token(page)}, content_type="multipart/form-data"
        )
        assert response.status_code == 303
        assert "nothing can be added" in _page(reporter)
        with app.app_context():
            assert db.session().scalar(select(Message)) is None

    def test_nothing_is_added_without_an_open_view(self, app, client):
        page = client.get("/status").get_data(as_text=True)
        response = client.post("/case/add", data={"add-text": "x", "add-csrf_token": csrf_token(page)})
        assert response.status_code == 303 and response.headers["Location"].endswith("/status")

    def test_addition_is_capped_and_limited_like_a_reply(self, app):
        from whistle import bodies, ratelimit

        assert bodies.BODY_CAPS["reporter.add"] is bodies.upload_cap
        assert ratelimit.LIMITED_ENDPOINTS["reporter.add"] == "ratelimit_reply"


class TestOfficerFiles:
    def test_reporter_downloads_an_officers_file_as_an_attachment(self, app, reporter, signed_in):
        code = reporter.submit_ok()
        case_id = _case_id(app)
        body = b"<html><script>alert(1)</script>form to fill " + b"x" * 70_000
        _officer_sends(signed_in, case_id, "Please fill in this form", [(io.BytesIO(body), "แบบฟอร์ม <1>.html", "text/html")])
        reporter.open_case(code)
        page = _page(reporter)
        assert "แบบฟอร์ม &lt;1&gt;.html" in page
        link = re.search(r'href="(/case/files/\d+)" download', page).group(1)
        response = reporter.client.get(link)
        assert response.status_code == 200 and response.data == body
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert "filename*=UTF-8''" in response.headers["Content-Disposition"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"
        # Only while the case view is open.
        reporter.client.post("/case/close", data={"csrf_token": csrf_token(page)})
        closed = reporter.client.get(link)
        assert closed.status_code == 303 and body not in closed.data

    def test_only_officers_files_of_this_case_are_downloadable(self, app, reporter, signed_in):
        code = reporter.submit_ok(files=[(io.BytesIO(b"mine"), "mine.pdf")])
        first = _case_id(app)
        other = type(reporter)(app.test_client())
        other_code = other.submit_ok()
        second = _case_id(app)
        _officer_sends(signed_in, second, "for the other reporter", [(io.BytesIO(b"theirs"), "theirs.pdf")])
        with app.app_context():
            ids = {a.blob_name: a.id for a in db.session().scalars(select(Attachment))}
        reporter.open_case(code)
        assert "mine.pdf" in _page(reporter)
        for file_id in ids.values():  # their own file (not the officers'), and the other case's
            assert reporter.client.get(f"/case/files/{file_id}").status_code == 404
        other.open_case(other_code)
        assert re.search(r'href="/case/files/\d+" download', _page(other))
        assert first != second

    def test_an_officers_file_swapped_by_a_database_writer_is_not_delivered(self, app, reporter, signed_in):
        """The writer re-seals other bytes to the stored public keys in the file's own slot:
        the officer's signature names the file's SHA-256, so it is refused before a byte."""
        code = reporter.submit_ok()
        case_id = _case_id(app)
        _officer_sends(signed_in, case_id, "the form", [(io.BytesIO(b"genuine form"), "form.pdf")])
        reporter.open_case(code)
        link = re.search(r'href="(/case/files/\d+)" download', _page(reporter)).group(1)
        assert reporter.client.get(link).data == b"genuine form"
        with app.app_context():
            session = db.session()
            report = session.get(Report, case_id)
            attachment = session.scalar(select(Attachment))
            recipients = [crypto.PublicKey.from_bytes(r) for r in (k.public_key for k in keyring.active_keys(session))]
            recipients.append(crypto.PublicKey.from_bytes(report.reporter_public_key))
            store = app.extensions["whistle.blobs"]
            sink = io.BytesIO()
            sealer = crypto.FileSealer(sink)
            sealer.write(b"a lure that calls home")
            sealer.close()
            attachment.wraps = sealer.wrap_for(recipients, cases.context(report, cases.file_slot(attachment.blob_name, "data")))
            with open(store.root / attachment.blob_name, "wb") as f:
                f.write(sink.getvalue())
            session.commit()
            file_id = attachment.id
        reporter.open_case(code)
        response = reporter.client.get(f"/case/files/{file_id}")
        assert response.status_code == 404 and b"lure" not in response.data

    def test_a_file_slipped_under_an_officers_message_is_never_named(self, app, reporter, signed_in):
        code = reporter.submit_ok()
        case_id = _case_id(app)
        _officer_sends(signed_in, case_id, "Thank you")
        Reporter = type(reporter)
        Reporter(app.test_client()).submit_ok(files=[(io.BytesIO(b"x"), "Call 0812345678 now.pdf")])
        with app.app_context():
            session = db.session()
            attachment = session.scalar(select(Attachment))
            message = session.scalar(select(Message).where(Message.report_id == case_id))
            attachment.report_id, attachment.message_id = case_id, message.id
            session.commit()
            file_id = attachment.id
        reporter.open_case(code)
        page = _page(reporter)
        assert "0812345678" not in page and "could not be confirmed" in page
        assert reporter.client.get(f"/case/files/{file_id}").status_code == 404

    def test_officer_files_are_sealed_to_the_reporter_and_stay_so_after_rewrap(self, app, reporter, signed_in, officer_key):
        reporter.submit_ok()
        case_id = _case_id(app)
        _officer_sends(signed_in, case_id, "the form", [(io.BytesIO(b"form"), "form.pdf")])
        with app.app_context():
            from whistle.extensions import trust_of

            session = db.session()
            keyring.rewrap_all(session, trust_of(app), officer_key)
            session.commit()
            report = session.get(Report, case_id)
            attachment = report.messages[0].attachments[0]
            assert cases.sealed_to_reporter(report, attachment.meta)
            assert cases.sealed_to_reporter(report, attachment.wraps, "file")
            assert report.status is Status.RECEIVED


def test_an_expired_add_form_keeps_the_text_and_sends_nothing(app, reporter):
    reporter.open_case(reporter.submit_ok())
    response = reporter.client.post(
        "/case/add?lang=en", data={"add-text": "ข้อมูลที่พิมพ์ไว้", "add-csrf_token": "forged"}, content_type="multipart/form-data"
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "This form had expired" in page and "ข้อมูลที่พิมพ์ไว้" in page
    with app.app_context():
        assert db.session().scalar(select(Message)) is None


def test_an_exported_case_marks_the_addition(app, reporter, officer_key, tmp_path):
    """A bundle carries the addition like any message, marked as such in messages.txt."""
    from whistle import bundles

    code = reporter.submit_ok()
    reporter.open_case(code)
    assert _add(reporter, "Found the second order").status_code == 303
    case_id = _case_id(app)
    with app.app_context():
        bundle = bundles.export_case(db.session(), app.extensions["whistle.blobs"], case_id, tmp_path / "case.zip")
    bundles.open_bundle(bundle, officer_key, tmp_path / "out")
    messages = (tmp_path / "out" / "messages.txt").read_text("utf-8")
    assert "added to the report" in messages and "Found the second order" in messages
    assert TIP["what"] in (tmp_path / "out" / "report.txt").read_text("utf-8")
