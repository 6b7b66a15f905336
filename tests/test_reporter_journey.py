"""The reporter's journey as a frightened person on a cheap phone meets it: nothing typed or
shown is lost (language switch, a view that closed, a rate limit), a receipt that works on
its own, safety advice before the first button, forms that say what is wrong in one
round, Thai words kept whole, and pages light enough for a slow connection."""

from __future__ import annotations

import html as html_module
import io
import math
import re
import time as _time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from whistle import config, db
from whistle.i18n import THAI_COMPOUNDS, keep_thai_words
from whistle.models import Message, Report

from .conftest import TIP, Reporter, csrf_token, hidden, receipt_code

ROOT = Path(__file__).resolve().parent.parent
ONION = "whistleabcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqr.onion"


def _html(response) -> str:
    return response.get_data(as_text=True)


def _text(html: str) -> str:
    """The words a reader sees: Thai compounds joined again, tags, the title and the text
    areas' own contents set aside, spaces squeezed."""
    html = re.sub(r'<span class="nw">([^<]*)</span>', r"\1", html)
    html = re.sub(r"<title>.*?</title>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", html_module.unescape(re.sub(r"<[^>]+>", " ", html)))


def _count(app, model) -> int:
    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(model))


def _later(monkeypatch, minutes: int) -> None:
    real = _time.time
    monkeypatch.setattr("whistle.reporter.views.time.time", lambda: real() + minutes * 60)


# --------------------------------------------------------------------------- nothing lost


class TestLanguageSwitchKeepsThePage:
    def test_pages_holding_nothing_switch_with_a_link(self, client):
        html = _html(client.get("/"))
        assert 'href="?lang=en"' in html and "<button" not in html.split("</header>")[0]

    def test_receipt_switch_keeps_the_code_and_the_saved_step(self, app, reporter):
        receipt = _html(reporter.submit())
        code = receipt_code(receipt)
        # The language control is a button of the receipt's own form, not a link that
        # would open an empty form and lose the code.
        header = receipt.split("</header>")[0]
        assert 'href="?lang=' not in header
        assert 'form="saved-form" name="switch_lang" value="th"' in header
        switched = reporter.client.post(
            "/report/saved",
            data={"code": hidden(receipt, "code"), "csrf_token": csrf_token(receipt), "last_group": "", "switch_lang": "th"},
        )
        html = _html(switched)
        assert switched.status_code == 200 and '<html lang="th">' in html
        assert receipt_code(html) == code and "รหัสติดตาม" in html
        # Still the one-time receipt: the saved step works afterwards, in Thai.
        saved = reporter.client.post(
            "/report/saved", data={"code": hidden(html, "code"), "csrf_token": csrf_token(html), "last_group": code[-4:]}
        )
        assert saved.status_code == 200 and "บันทึกรหัสไว้เรียบร้อยแล้ว" in _html(saved)
        assert _count(app, Report) == 1

    def test_report_form_switch_keeps_what_was_typed_and_sends_nothing(self, app, client):
        page = _html(client.get("/report"))
        assert 'form="report-form" name="switch_lang" value="en"' in page and "formnovalidate" in page
        typed = {**TIP, "what": "ครูใหญ่เก็บเงินค่าเทอมเกิน MARKER-WHAT", "identity_name": "MARKER-NAME"}
        response = client.post(
            "/report", data={**typed, "csrf_token": csrf_token(page), "switch_lang": "en"}, content_type="multipart/form-data"
        )
        html = _html(response)
        assert response.status_code == 200 and '<html lang="en">' in html
        assert "MARKER-WHAT</textarea>" in html and 'value="MARKER-NAME"' in html
        assert 'value="procurement" selected' in html or 'selected value="procurement"' in html
        assert "Please fill in" not in html  # a switch is not a send: no errors shown
        assert _count(app, Report) == 0

    def test_report_form_switch_asks_files_again(self, app, client):
        page = _html(client.get("/report?lang=en"))
        response = client.post(
            "/report", data={**TIP, "csrf_token": csrf_token(page), "switch_lang": "th", "files": [(io.BytesIO(b"%PDF-1.4 x"), "a.pdf")]},
            content_type="multipart/form-data",
        )
        html = _html(response)
        assert response.status_code == 200 and "กรุณาแนบไฟล์อีกครั้ง" in _text(html) and _count(app, Report) == 0

    def test_case_switch_keeps_the_reply_being_written(self, app, reporter):
        reporter.open_case(reporter.submit_ok())
        page = _html(reporter.client.get("/case"))
        assert 'form="reply-form" name="switch_lang"' in page
        response = reporter.client.post(
            "/case/reply", data={"text": "MARKER-DRAFT", "csrf_token": csrf_token(page), "switch_lang": "th"},
            content_type="multipart/form-data",
        )
        html = _html(response)
        assert response.status_code == 200 and '<html lang="th">' in html and "MARKER-DRAFT</textarea>" in html
        assert _count(app, Message) == 0


class TestReplyAfterTheViewClosed:
    def test_case_page_says_when_the_view_closes(self, reporter, monkeypatch):
        monkeypatch.setattr("whistle.reporter.views.time.time", lambda: 1_795_000_000.0)  # 18:06 in Bangkok
        reporter.open_case(reporter.submit_ok())
        html = _text(_html(reporter.client.get("/case?lang=en")))
        assert "this view closes by itself at 18:21, 15 minutes after you typed your code" in html

    def test_text_kept_code_asked_then_sent(self, app, reporter, monkeypatch, officer_key):
        from .conftest import message_text

        code = reporter.submit_ok()
        reporter.open_case(code)
        page = _html(reporter.client.get("/case"))
        _later(monkeypatch, 16)  # the reporter wrote slowly: the view closed meanwhile
        response = reporter.client.post(
            "/case/reply", data={"text": "ผมมีสำเนาใบเสร็จ MARKER-LATE", "csrf_token": csrf_token(page)},
            content_type="multipart/form-data",
        )
        html = _html(response)
        assert response.status_code == 200 and _count(app, Message) == 0
        assert 'name="code"' in html and "ผมมีสำเนาใบเสร็จ MARKER-LATE</textarea>" in html
        assert "has not been sent yet" in _text(html)
        assert 'enctype="multipart/form-data"' in html  # a long Thai reply fits the body cap
        # Switching language on that page keeps the reply too.
        switched = reporter.client.post(
            "/status", data={"code": "", "pending_reply": "ผมมีสำเนาใบเสร็จ MARKER-LATE", "csrf_token": csrf_token(html),
                             "switch_lang": "en"}, content_type="multipart/form-data",
        )
        assert '<html lang="en">' in _html(switched) and "ผมมีสำเนาใบเสร็จ MARKER-LATE</textarea>" in _html(switched)
        # The reporter types the code; the reply goes with it.
        sent = reporter.client.post(
            "/status", data={"code": code, "pending_reply": "ผมมีสำเนาใบเสร็จ MARKER-LATE", "csrf_token": csrf_token(html)},
            content_type="multipart/form-data",
        )
        assert sent.status_code == 303 and sent.headers["Location"].endswith("/case")
        with app.app_context():
            report = db.session().scalar(select(Report))
            assert message_text(report, report.messages[-1], officer_key) == "ผมมีสำเนาใบเสร็จ MARKER-LATE"
        assert "Your reply was sent" in _html(reporter.client.get("/case?lang=en"))

    def test_reply_from_another_site_not_kept(self, app, reporter, monkeypatch):
        reporter.open_case(reporter.submit_ok())
        _later(monkeypatch, 16)
        response = reporter.client.post("/case/reply", data={"text": "MARKER-FORGED"}, content_type="multipart/form-data")
        assert response.status_code == 303 and "MARKER-FORGED" not in _html(reporter.client.get("/status"))

    def test_longest_thai_reply_fits_the_code_page(self, app, reporter, monkeypatch):
        code = reporter.submit_ok()
        reporter.open_case(code)
        page = _html(reporter.client.get("/case"))
        _later(monkeypatch, 16)
        longest = "ก" * 10_000
        kept = _html(reporter.client.post("/case/reply", data={"text": longest, "csrf_token": csrf_token(page)},
                                          content_type="multipart/form-data"))
        sent = reporter.client.post("/status", data={"code": code, "pending_reply": longest, "csrf_token": csrf_token(kept)},
                                    content_type="multipart/form-data")
        assert sent.status_code == 303 and _count(app, Message) == 1

    def test_wrong_code_keeps_the_reply_and_echoes_no_code(self, app, reporter, monkeypatch):
        code = reporter.submit_ok()
        page = _html(reporter.client.get("/status"))
        wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
        response = reporter.client.post("/status", data={"code": wrong, "pending_reply": "MARKER-KEEP", "csrf_token": csrf_token(page)})
        html = _html(response)
        assert response.status_code == 400 and "MARKER-KEEP</textarea>" in html and wrong not in html
        assert _count(app, Message) == 0


class TestRateLimitKeepsTheReport:
    def _limited(self, make_app, **limits):
        return make_app(ratelimit_enabled=True, **limits)

    @staticmethod
    def _minutes_said(html: str) -> int:
        said = re.search(r"try again in about (?:(\d+) hours?)?(?: and )?(?:(\d+) minutes?)?\.", _text(html))
        assert said and any(said.groups()), _text(html)[:600]
        return int(said.group(1) or 0) * 60 + int(said.group(2) or 0)

    def test_report_kept_with_the_real_wait(self, make_app):
        app = self._limited(make_app, ratelimit_submit="1 per hour")
        reporter = Reporter(app.test_client())
        assert reporter.submit().status_code == 200
        response = reporter.submit(what="MARKER-REFUSED report of the bridge contract", people="MARKER-PEOPLE")
        html = _html(response)
        assert response.status_code == 429
        assert "MARKER-REFUSED report of the bridge contract</textarea>" in html and "MARKER-PEOPLE</textarea>" in html
        assert 'id="report-form"' in html and "Please wait a moment" not in html
        wait = int(response.headers["Retry-After"])
        assert 0 < wait <= 3600
        assert self._minutes_said(html) == math.ceil(wait / 60)
        assert _count(app, Report) == 1

    def test_hours_said_in_hours(self, make_app):
        app = self._limited(make_app, ratelimit_submit="1 per day")
        reporter = Reporter(app.test_client())
        reporter.submit()
        response = reporter.submit(what="MARKER-DAY")
        text = _text(_html(response))
        assert response.status_code == 429 and re.search(r"try again in about \d+ hours?", text), text[:500]

    def test_reply_kept_when_limited(self, make_app):
        app = self._limited(make_app, ratelimit_reply="1 per hour")
        reporter = Reporter(app.test_client())
        reporter.open_case(reporter.submit_ok())
        assert reporter.reply("first").status_code == 303
        response = reporter.reply("MARKER-SECOND")
        html = _html(response)
        assert response.status_code == 429 and "MARKER-SECOND</textarea>" in html and "Retry-After" in response.headers
        assert _count(app, Message) == 1

    def test_receipt_kept_when_its_step_is_limited(self, make_app):
        app = self._limited(make_app, ratelimit_other="1 per hour")
        reporter = Reporter(app.test_client())
        receipt = _html(reporter.submit())
        code = receipt_code(receipt)
        data = {"code": hidden(receipt, "code"), "csrf_token": csrf_token(receipt), "last_group": "0000"}
        assert reporter.client.post("/report/saved", data=data).status_code == 400  # a wrong last group
        response = reporter.client.post("/report/saved", data=data)
        html = _html(response)
        assert response.status_code == 429 and receipt_code(html) == code and "try again in about" in _text(html)

    def test_status_limited_echoes_no_code(self, make_app):
        app = self._limited(make_app, ratelimit_status="1 per hour")
        client = app.test_client()
        client.get("/?lang=en")
        code = "1234 5678 9012 3456 7890 1234 5670"
        for expected in (400, 429):
            page = _html(client.get("/status"))
            response = client.post("/status", data={"code": code, "csrf_token": csrf_token(page)})
            assert response.status_code == expected
        assert code not in _html(response) and "try again in about" in _text(_html(response))


# --------------------------------------------------------------------------- the receipt


class TestReceiptOnItsOwn:
    @pytest.fixture
    def reporter(self, make_app):
        app = make_app(onion_address=ONION, site_url="https://whistle.example.go.th")
        return Reporter(app.test_client())

    def test_receipt_page_names_addresses_dates_and_lost_code(self, reporter):
        html = _text(_html(reporter.submit()))
        assert "https://whistle.example.go.th" in html and ONION in html
        assert "Received on 25 November 2569 B.E." in html
        assert "To be acknowledged by 2 December 2569 B.E." in html
        assert "To be resolved, or the delay explained to you, by 10 December 2569 B.E." in html
        assert "If you lose the code" in html

    def test_downloaded_receipt_works_on_its_own(self, reporter):
        receipt = _html(reporter.submit())
        code = receipt_code(receipt)
        response = reporter.client.post("/report/receipt.txt", data={"code": hidden(receipt, "code"), "csrf_token": csrf_token(receipt)})
        text = response.get_data(as_text=True)
        for words in (code, "https://whistle.example.go.th", ONION, "25 November 2569 B.E.", "2 December 2569 B.E.",
                      "10 December 2569 B.E.", "If you lose the code", "191", "1205"):
            assert words in text, words
        assert "filename*=UTF-8''" in response.headers["Content-Disposition"]

    def test_thai_receipt_file_is_thai(self, reporter):
        receipt = _html(reporter.submit())
        thai = reporter.client.post(
            "/report/saved", data={"code": hidden(receipt, "code"), "csrf_token": csrf_token(receipt), "switch_lang": "th"}
        )
        html = _html(thai)
        text = reporter.client.post("/report/receipt.txt", data={"code": hidden(html, "code"), "csrf_token": csrf_token(html)})
        body = text.get_data(as_text=True)
        assert "25 พฤศจิกายน 2569" in body and "2 ธันวาคม 2569" in body and "B.E." not in body

    def test_saved_page_names_the_dates(self, reporter):
        receipt = _html(reporter.submit())
        code = receipt_code(receipt)
        saved = reporter.client.post(
            "/report/saved", data={"code": hidden(receipt, "code"), "csrf_token": csrf_token(receipt), "last_group": code[-4:]}
        )
        text = _text(_html(saved))
        assert "by 2 December 2569 B.E." in text and "By 10 December 2569 B.E." in text
        assert "within the time shown" not in text

    def test_code_shown_as_eight_unbreakable_groups(self, reporter, client):
        html = _html(reporter.submit())
        groups = re.findall(r'<span class="group">(\d{4})</span>', html)
        assert len(groups) == 8
        css = (ROOT / "whistle" / "static" / "style.css").read_text()
        assert re.search(r"\.code \.group[^{]*\{[^}]*white-space:\s*nowrap", css)


class TestStatusForm:
    def test_number_pad_and_both_spellings_of_the_code(self, app, reporter):
        code = reporter.submit_ok()
        page = _html(reporter.client.get("/status"))
        assert 'inputmode="numeric"' in page and 'required' in re.search(r"<input[^>]*name=\"code\"[^>]*>", page).group(0)
        response = reporter.client.post("/status", data={"code": code.replace(" ", ""), "csrf_token": csrf_token(page)})
        assert response.status_code == 303

    @pytest.mark.parametrize("lang, words", [("en", "eight groups of four"), ("th", "8 ชุด ชุดละ 4 หลัก")])
    def test_wrong_length_says_eight_groups_of_four(self, client, lang, words):
        page = _html(client.get(f"/status?lang={lang}"))
        response = client.post("/status", data={"code": "1234 5678 9012", "csrf_token": csrf_token(page)})
        assert response.status_code == 400 and words in _text(_html(response))


# --------------------------------------------------------------------------- safety


class TestSafetyAtTheRightMoment:
    def test_advice_before_the_first_button(self, make_app):
        client = make_app(onion_address=ONION).test_client()
        for lang, advice in (("en", "Do not report from a work computer"), ("th", "คอมพิวเตอร์ของที่ทำงาน")):
            html = _html(client.get(f"/?lang={lang}"))
            first_button = html.index('class="button')
            assert html.index(advice) < first_button, lang
            assert html.index(ONION) < first_button, lang
            assert "Tor Browser" in html[: first_button]

    def test_short_advice_at_top_of_form(self, client):
        html = _html(client.get("/report?lang=en"))
        assert html.index("not from a work computer") < html.index('id="report-form"')

    def test_law_and_emergency_numbers(self, client):
        text = _text(_html(client.get("/?lang=th")))
        for words in ("191", "1205", "1567", "พ.ศ. 2546", "พ.ศ. 2561", "ป.ป.ช."):
            assert words in text, words

    THAI_PAGES = ("/", "/report", "/status")

    def test_reader_and_reported_never_confused_in_thai(self, app, reporter):
        """Every 'เจ้าหน้าที่' on a Thai reporter page says which: the designated officers
        who read reports, or the state officials reported on."""
        pages = [_html(reporter.client.get(f"{p}?lang=th")) for p in self.THAI_PAGES]
        receipt = _html(reporter.submit())
        pages.append(_html(reporter.client.post(
            "/report/saved", data={"code": hidden(receipt, "code"), "csrf_token": csrf_token(receipt), "switch_lang": "th"})))
        reporter.open_case(receipt_code(receipt))
        pages.append(_html(reporter.client.get("/case?lang=th")))
        empty = _html(reporter.client.get("/report?lang=th"))
        pages.append(_html(reporter.client.post("/report", data={"csrf_token": csrf_token(empty)})))
        qualified = re.compile(r"เจ้าหน้าที่(?!ผู้รับผิดชอบ|ที่ได้รับมอบหมาย|รัฐ|ตำรวจ)")
        for html in pages:
            text = _text(html)
            bare = [text[max(0, m.start() - 30): m.end() + 30] for m in qualified.finditer(text)]
            assert not bare, bare
        landing = _text(pages[0])
        assert "เจ้าหน้าที่รัฐ" in landing and "เจ้าหน้าที่ผู้รับผิดชอบ" in landing


# --------------------------------------------------------------------------- forms


class TestFormsAPersonCanFinish:
    def _empty_report(self, client, lang="en"):
        page = _html(client.get(f"/report?lang={lang}"))
        return client.post("/report", data={"csrf_token": csrf_token(page)}, content_type="multipart/form-data")

    def test_empty_form_gets_every_error_in_one_round(self, client):
        response = self._empty_report(client)
        html = _html(response)
        assert response.status_code == 400
        summary = re.search(r'<div class="error-summary".*?</div>', html, re.S).group(0)
        assert 'href="#category"' in summary and 'href="#what"' in summary
        assert "Please choose the kind of wrongdoing." in summary and "Please fill in this field." in summary

    def test_errors_tied_to_their_fields(self, client):
        html = _html(self._empty_report(client))
        for name in ("category", "what"):
            tag = re.search(rf'<(?:select|textarea)[^>]*id="{name}"[^>]*>', html).group(0)
            assert 'aria-invalid="true"' in tag and f"{name}-error" in tag
            assert f'id="{name}-error"' in html
        what = re.search(r'<textarea[^>]*id="what"[^>]*>', html).group(0)
        assert "what-hint" in what  # its hint too

    def test_required_fields_marked_the_same_way(self, client):
        html = _html(client.get("/report?lang=en"))
        for name in ("category", "what"):
            tag = re.search(rf'<(?:select|textarea)[^>]*id="{name}"[^>]*>', html).group(0)
            assert "required" in tag
            label = re.search(rf'<label for="{name}">(.*?)</label>', html, re.S).group(1)
            assert '<span class="req">(required)</span>' in label
        for name in ("people", "when", "identity_name"):
            tag = re.search(rf'<(?:input|textarea)[^>]*id="{name}"[^>]*>', html).group(0)
            assert "required" not in tag
            assert "req" not in re.search(rf'<label for="{name}">(.*?)</label>', html, re.S).group(1)

    def test_no_english_on_thai_pages(self, app, reporter):
        allowed = {"English", "Tor", "Browser", "Wi", "Fi", "torproject", "org", "NACC", "PACC"}
        pages = {p: _html(reporter.client.get(f"{p}?lang=th")) for p in ("/", "/report", "/status")}
        pages["empty report"] = _html(self._empty_report(reporter.client, "th"))
        receipt = _html(reporter.submit())
        pages["receipt"] = _html(reporter.client.post(
            "/report/saved", data={"code": hidden(receipt, "code"), "csrf_token": csrf_token(receipt), "switch_lang": "th"}))
        reporter.open_case(receipt_code(receipt))
        pages["case"] = _html(reporter.client.get("/case?lang=th"))
        for name, html in pages.items():
            # The sample tip is English on purpose; only the page's own words count here.
            # Longest first: the category's key is also a word inside the tip's text.
            for value in sorted(TIP.values(), key=len, reverse=True):
                html = html.replace(value, "")
            words = set(re.findall(r"[A-Za-z]{2,}", re.sub(r"https?://\S+", "", _text(html)))) - allowed
            assert not words, (name, sorted(words))
            for english in ("MB", "JPEG", "PDF", "Word", "receipt.txt"):
                assert english not in _text(html), (name, english)


class TestThaiWordsKeptWhole:
    WORDS = ("ผู้รับผิดชอบ", "หน่วยงาน", "ประพฤติมิชอบ")

    def test_keeper_wraps_text_but_not_tags_titles_or_typing(self):
        html = ('<title>หน่วยงาน</title><p title="หน่วยงาน">เจ้าหน้าที่ผู้รับผิดชอบ</p>'
                '<textarea>ผู้รับผิดชอบ</textarea><p>ประพฤติมิชอบ</p>')
        assert keep_thai_words(html) == (
            '<title>หน่วยงาน</title><p title="หน่วยงาน"><span class="nw">เจ้าหน้าที่ผู้รับผิดชอบ</span></p>'
            '<textarea>ผู้รับผิดชอบ</textarea><p><span class="nw">ประพฤติมิชอบ</span></p>'
        )

    def test_words_never_split_on_thai_pages(self, client):
        seen = set()
        for path in ("/", "/report", "/status"):
            html = _html(client.get(f"{path}?lang=th"))
            # A title and a list's options are not laid out as page text.
            body = re.sub(r"<title>.*?</title>|<option[^>]*>.*?</option>", "", html, flags=re.S)
            # Every occurrence in page text sits inside one unbreakable span.
            outside = re.sub(r'<span class="nw">[^<]*</span>', "", body)
            outside = re.sub(r"<[^>]+>", " ", outside)
            for word in THAI_COMPOUNDS:
                assert word not in outside, (path, word)
                if word in body:
                    seen.add(word)
        assert set(self.WORDS) <= seen, seen  # the words the issue names are on these pages
        css = (ROOT / "whistle" / "static" / "style.css").read_text()
        assert re.search(r"\.nw[^{]*\{[^}]*white-space:\s*nowrap", css)


class TestTapTargets:
    CSS = (ROOT / "whistle" / "static" / "style.css").read_text()

    @pytest.mark.parametrize("selector", [r"\.lang-item", r"\.footer-links a", r"input\[type=file\]", r"\.button"])
    def test_at_least_44_px(self, selector):
        rule = re.search(selector + r"\s*\{([^}]*)\}", self.CSS)
        assert rule, selector
        height = int(re.search(r"min-height:\s*(\d+)px", rule.group(1)).group(1))
        assert height >= 44

    def test_language_and_footer_links_use_them(self, client):
        html = _html(client.get("/"))
        assert 'class="lang-item"' in html and '<ul class="footer-links">' in html


# --------------------------------------------------------------------------- look and weight


def _png(size: int = 48) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (size, size), (28, 78, 128)).save(out, "PNG")
    return out.getvalue()


class TestSeal:
    def test_seal_from_configuration_served_by_the_service(self, make_app, instance):
        (instance / "seal.png").write_bytes(_png())
        client = make_app(organisation={"seal": "seal.png", "name_th": "เทศบาลตำบลทดสอบ"}).test_client()
        html = _html(client.get("/"))
        assert '<img class="seal" src="/seal"' in html and "เทศบาลตำบลทดสอบ" in html
        response = client.get("/seal")
        assert response.status_code == 200 and response.mimetype == "image/png"

    def test_no_seal_no_image(self, client):
        assert "<img" not in _html(client.get("/")) and client.get("/seal").status_code == 404

    def test_heavy_or_missing_seal_refused_at_start(self, make_app, instance):
        (instance / "big.png").write_bytes(b"\x89PNG" + b"\0" * (config.SEAL_MAX_BYTES + 1))
        with pytest.raises(config.ConfigError, match="larger"):
            make_app(organisation={"seal": "big.png"})
        with pytest.raises(config.ConfigError, match="no file"):
            make_app(organisation={"seal": "nowhere.png"})


def _resources(client, html: str) -> dict[str, int]:
    """Every resource a page loads (stylesheets, images, fonts in the CSS), with its size;
    refuses scripts and anything from another site."""
    assert "<script" not in html.lower()
    found = {}
    links = re.findall(r'<link[^>]*rel="stylesheet"[^>]*href="([^"]+)"', html)
    images = re.findall(r'<img[^>]*src="([^"]+)"', html)
    for url in links + images:
        assert url.startswith("/") and not url.startswith("//"), url
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.get_data()
        found[url] = len(body)
        if url.endswith(".css"):
            for inner in re.findall(r"url\(([^)]+)\)", body.decode()):
                inner = inner.strip("'\"")
                assert inner.startswith("/") and not inner.startswith("//"), inner
                found[inner] = len(client.get(inner).get_data())
            assert "@import" not in body.decode()
    return found


class TestPageWeight:
    LIMIT = 100 * 1024

    def test_every_reporter_page_under_100_kb_without_script(self, make_app, instance, record_property):
        (instance / "seal.png").write_bytes(_png())
        app = make_app(organisation={"seal": "seal.png"}, onion_address=ONION)
        reporter = Reporter(app.test_client())
        client = reporter.client
        pages = {}
        for lang in ("th", "en"):
            pages[f"landing {lang}"] = _html(client.get(f"/?lang={lang}"))
            pages[f"report {lang}"] = _html(client.get("/report"))
            pages[f"status {lang}"] = _html(client.get("/status"))
            pages[f"not found {lang}"] = _html(client.get("/nowhere"))
        empty = pages["report en"]
        pages["report with errors"] = _html(client.post("/report", data={"csrf_token": csrf_token(empty)}))
        receipt = _html(reporter.submit())
        pages["receipt"] = receipt
        code = receipt_code(receipt)
        pages["saved"] = _html(client.post(
            "/report/saved", data={"code": hidden(receipt, "code"), "csrf_token": csrf_token(receipt), "last_group": code[-4:]}))
        pages["receipt closed"] = _html(client.post("/report/saved", data={"code": code, "csrf_token": csrf_token(receipt)}))
        reporter.open_case(code)
        pages["case"] = _html(client.get("/case"))
        weights = {}
        for name, html in pages.items():
            total = len(html.encode()) + sum(_resources(client, html).values())
            weights[name] = total
            assert total < self.LIMIT, (name, total)
        record_property("page_weights", weights)
        print("page weights (bytes):", weights)
