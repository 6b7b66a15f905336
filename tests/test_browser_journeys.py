"""Whole journeys in a real browser, against `whistle serve` on loopback.

Headless Chromium from Debian, driven by Playwright, walks one case from end to end, once
in Thai and once in English:

1. a reporter (JavaScript off, a 360 px phone) reads the landing page, files a tip with a
   photo that carries GPS coordinates, downloads the receipt and proves they saved the code;
2. the first officer signs in with the one-time passphrase, chooses their own, turns on
   the second factor (TOTP, computed with pyotp from the key the page shows), signs out and
   signs in again with passphrase and TOTP code (which unlocks their key), opens the case,
   reads the tip, downloads the photo (a JPEG with no GPS left) and asks a question;
3. the reporter opens the case with the code, reads the question and answers it;
4. the officer reads the answer, refers the case, then closes it;
5. the reporter rates the handling;
6. a month later (the server's date is moved past the month's end, where the statistics
   are cut) the public statistics page counts the case as received and completed;
7. on the same server, a reporter who slips: an empty report form, a code of the wrong
   form, an unknown code, the case view without a code, then the manual and a 404 page.

At every step:
- axe-core runs on the page and every violation is collected; the test fails on any. The
  reporter's pages stay JavaScript-off for the journey itself, so axe cannot run in them:
  the page's document (what the JS-off page holds, `page.content()`) is replayed, at its
  own address, into a second browser context that has JavaScript on and none of the
  reporter's cookies; its style sheets and images load from the live server as they did
  for the reporter, so contrast and layout rules see the same page. Nothing is posted
  twice. The officers' pages have JavaScript on and are audited where they stand.
- every request of the reporter's browser is recorded: a script, or anything from another
  origin than the reporter's site, fails the test, and so does a `<script>` element in a
  reporter page (with JavaScript off Chromium does not even fetch a script, so the
  element is what shows one; `test_the_checks_catch_a_bad_page` proves each check bites). The officer's browser may load nothing from another origin either.
- full-page screenshots at 360 and 1280 px go to test-artefacts/browser/<lang>/ (or
  $WHISTLE_TEST_ARTEFACTS/<lang>/), named by step.

One Chromium for the module; one server per language. Marked `browser`; it runs in
`make test` (Chromium and axe-core are installed by .ci/run and `make axe`, never skipped).
"""

from __future__ import annotations

import datetime as dt
import io
import re
import time

import pyotp
import pytest

from . import browser as support
from .conftest import TIP

pytestmark = pytest.mark.browser

PHOTO = support.ROOT / "tests" / "photos" / "exif_gps.jpg"
NEW_PASSPHRASE = "river lantern quietly paper mango seventeen"
QUESTION = "Which month were the purchase orders signed?"
ANSWER = "They were signed in the first week of March."
FILED_ON = dt.date(2026, 11, 25)  # fiscal year 2570; its statistics are cut on 30 November


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright  # in the [test] extra

    with sync_playwright() as playwright:
        browser = support.launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def server(tmp_path):
    running = support.JourneyServer(tmp_path / "server", FILED_ON)
    try:
        yield running
    finally:
        running.stop()


def _submit(page):
    """Press the page's primary button and wait for the page that answers."""
    with page.expect_navigation():
        page.locator("main form button.primary[type=submit], form button.primary[type=submit]").first.click()


@pytest.mark.parametrize("lang", ["th", "en"])
def test_journeys(chromium, server, lang):
    rec = support.Recorder(
        chromium, lang, support.artefacts_dir() / lang, server.reporter_url, server.officer_url,
    )
    try:
        _journey(rec, server, lang)
        _missteps(rec, server, lang)
    finally:
        rec.close()
    problems = []
    if rec.findings:
        problems.append("axe-core violations:\n  " + "\n  ".join(map(str, rec.findings)))
    if rec.bad_requests:
        problems.append("requests a page must not make:\n  " + "\n  ".join(rec.bad_requests))
    if rec.overflows:
        problems.append("pages wider than a 360 px phone:\n  " + "\n  ".join(rec.overflows))
    if rec.scripts_in_pages:
        problems.append("reporter pages with a <script>:\n  " + "\n  ".join(rec.scripts_in_pages))
    assert not problems, "\n".join(problems)
    assert len(rec.rules_passed) == len(rec.pages) and min(rec.rules_passed) >= 10, rec.rules_passed
    assert len(rec.shots) == 2 * len(rec.pages) and all(p.stat().st_size > 1000 for p in rec.shots)
    assert not server.errors(), server.errors()


def _journey(rec: support.Recorder, server: support.JourneyServer, lang: str) -> None:
    site, desk = server.reporter_url, server.officer_url
    reporter_context, officer_context = rec.reporter_context(), rec.officer_context()
    reporter, officer = reporter_context.new_page(), officer_context.new_page()

    # 1. The reporter files a tip with a photo and saves the code.
    reporter.goto(f"{site}/?lang={lang}")
    assert reporter.locator("html").get_attribute("lang") == lang
    rec.step(reporter, "landing", reporter=True)
    with reporter.expect_navigation():
        reporter.locator("a.button.primary").first.click()
    rec.step(reporter, "report-form", reporter=True)
    reporter.select_option("select[name=category]", TIP["category"])
    for name in ("what", "people", "when", "where", "how_known", "evidence"):
        reporter.fill(f"[name={name}]", TIP[name])
    reporter.set_input_files("input[name=files]", str(PHOTO))
    _submit(reporter)
    code = reporter.locator("p.code").inner_text().strip()
    assert re.fullmatch(r"[\d ]+", code), code
    rec.step(reporter, "receipt", reporter=True)
    with reporter.expect_download() as download:
        reporter.locator("form[action$='receipt.txt'] button").click()
    receipt = download.value.path().read_text(encoding="utf-8")
    assert code in receipt
    reporter.fill("[name=last_group]", code.split()[-1])
    _submit(reporter)
    rec.step(reporter, "code-saved", reporter=True)

    # 2. The officer signs in, unlocks their key, reads the tip and the photo, asks a question.
    officer.goto(f"{desk}/sign-in?lang={lang}")
    rec.step(officer, "officer-sign-in-first", reporter=False)
    officer.fill("[name=username]", "officer-1")
    officer.fill("[name=passphrase]", server.officer_passphrase)
    _submit(officer)
    rec.step(officer, "officer-choose-passphrase", reporter=False)
    officer.fill("[name=current]", server.officer_passphrase)
    officer.fill("[name=new]", NEW_PASSPHRASE)
    officer.fill("[name=repeat]", NEW_PASSPHRASE)
    _submit(officer)
    rec.step(officer, "officer-second-factor", reporter=False)
    totp = pyotp.TOTP(officer.locator("code.secret").inner_text().strip())
    # Turn it on with the previous 30 s step's code (accepted for drift), so that the code
    # of this step can still sign in once below; never within 3 s of a step's end.
    if 30 - time.time() % 30 < 3:
        time.sleep(3.5)
    officer.fill("[name=code]", totp.at(time.time() - 30))
    _submit(officer)
    rec.step(officer, "officer-recovery-codes", reporter=False)
    with officer.expect_navigation():
        officer.locator("form[action$='sign-out'] button").first.click()
    officer.fill("[name=username]", "officer-1")
    officer.fill("[name=passphrase]", NEW_PASSPHRASE)
    officer.fill("[name=code]", totp.now())
    rec.step(officer, "officer-sign-in", reporter=False)
    _submit(officer)
    assert "/sign-in" not in officer.url, officer.content()[:3000]
    assert officer.locator("html").get_attribute("lang") == lang  # kept through sign-in and sign-out
    rec.step(officer, "officer-home", reporter=False)
    officer.goto(f"{desk}/cases")
    rec.step(officer, "officer-cases", reporter=False)
    with officer.expect_navigation():
        officer.locator("a[href^='/cases/']").first.click()
    assert TIP["what"] in officer.content()
    rec.step(officer, "officer-case", reporter=False)
    with officer.expect_download() as download:
        officer.locator("ul.files a[download]").first.click()
    _assert_clean_jpeg(download.value.path().read_bytes())
    case_url = officer.url
    officer.fill("textarea[name=text] >> nth=0", QUESTION)
    with officer.expect_navigation():
        officer.locator("form[action$='/messages'] button[type=submit]").click()
    assert QUESTION in officer.content()
    rec.step(officer, "officer-asked", reporter=False)

    # 3. The reporter reads the question and answers it.
    reporter.goto(f"{site}/status")
    rec.step(reporter, "status-form", reporter=True)
    reporter.fill("[name=code]", code)
    _submit(reporter)
    assert QUESTION in reporter.content()
    rec.step(reporter, "case-with-question", reporter=True)
    reporter.fill("textarea[name=text]", ANSWER)
    with reporter.expect_navigation():
        reporter.locator("form[action$='/case/reply'] button[type=submit]").click()
    assert ANSWER in reporter.content()
    rec.step(reporter, "case-answered", reporter=True)

    # 4. The officer reads the answer, refers the case, then closes it.
    officer.goto(case_url)
    assert ANSWER in officer.content()
    rec.step(officer, "officer-read-answer", reporter=False)
    with officer.expect_navigation():
        officer.locator("form:has(input[name=status][value=referred]) button").click()
    rec.step(officer, "officer-referred", reporter=False)
    with officer.expect_navigation():
        officer.locator("form:has(input[name=status][value=closed]) button").click()
    assert officer.locator("form:has(input[name=status])").count() == 0
    rec.step(officer, "officer-closed", reporter=False)

    # 5. The reporter rates the handling.
    reporter.goto(f"{site}/case")
    rec.step(reporter, "case-closed", reporter=True)
    reporter.check("input[name=score][value='4']")
    with reporter.expect_navigation():
        reporter.locator("form[action$='/case/rate'] button[type=submit]").click()
    assert reporter.locator("section.rating form").count() == 0
    rec.step(reporter, "case-rated", reporter=True)

    # 6. After the month's end, the public statistics count the case.
    server.set_today(dt.date(2026, 12, 1))
    reporter.goto(f"{site}/statistics/2570")
    figures = _figures(reporter)
    assert figures.get("received") == "1" and figures.get("completed") == "1", figures
    rec.step(reporter, "statistics", reporter=True)
    reporter_context.close()
    officer_context.close()


def _missteps(rec: support.Recorder, server: support.JourneyServer, lang: str) -> None:
    """The pages a reporter meets when something goes wrong, and the public manual."""
    site = server.reporter_url
    context = rec.reporter_context()
    page = context.new_page()
    page.goto(f"{site}/report?lang={lang}")
    # As an old phone's browser would, send the form unchecked (the fields are `required`).
    page.locator("form[action$='/report']").evaluate("form => { form.noValidate = true; }")
    _submit(page)  # nothing filled in
    assert page.locator(".error").count() >= 1
    rec.step(page, "report-form-errors", reporter=True)
    page.goto(f"{site}/status")
    page.fill("[name=code]", "1234")
    page.locator("form[action$='/status']").evaluate("form => { form.noValidate = true; }")
    _submit(page)
    rec.step(page, "status-wrong-format", reporter=True)
    page.fill("[name=code]", " ".join(["1111"] * 7) + " 1111")
    _submit(page)
    rec.step(page, "status-unknown-code", reporter=True)
    page.goto(f"{site}/case")  # no case open: sent back to the code form with a notice
    rec.step(page, "case-view-closed", reporter=True)
    page.goto(f"{site}/manual")
    rec.step(page, "manual", reporter=True)
    assert page.goto(f"{site}/no-such-page").status == 404
    rec.step(page, "not-found", reporter=True)
    context.close()


def _figures(page) -> dict[str, str]:
    """The statistics page's totals (received, completed, in progress, in that order)."""
    values = [dd.inner_text().strip() for dd in page.locator("dl.totals dd").all()]
    return dict(zip(("received", "completed", "in_progress"), values))


def _assert_clean_jpeg(data: bytes) -> None:
    from PIL import Image

    assert data[:2] == b"\xff\xd8", data[:16]
    with Image.open(io.BytesIO(data)) as image:
        gps = image.getexif().get_ifd(0x8825)
    assert not gps, gps


def test_the_checks_catch_a_bad_page(chromium, tmp_path):
    """The audit path itself: a JS-off page with no language, an unlabelled field, a script
    and an image from another site is reported on every count. All its requests are
    answered inside the browser (page.route); nothing leaves the machine."""
    site = "http://127.0.0.1:9"
    bad = (
        "<!doctype html><html><head><title>Bad</title>"
        "<script src='https://cdn.example.net/x.js'></script></head>"
        "<body><main><h1>Bad</h1><form><input name=q></form>"
        "<img src='https://images.example.net/logo.png'></main></body></html>"
    )
    rec = support.Recorder(chromium, "en", tmp_path / "shots", site, "http://127.0.0.1:10")
    try:
        context = rec.reporter_context()
        context.route("**/*", lambda route: route.fulfill(
            status=200, content_type="text/html" if route.request.url.startswith(site) else "image/png", body=bad,
        ))
        rec.audit_context.route(
            lambda url: not url.startswith(site), lambda route: route.fulfill(status=404, body="")
        )
        page = context.new_page()
        page.goto(f"{site}/bad")
        rec.step(page, "bad", reporter=True)
        context.close()
    finally:
        rec.close()
    rules = {f.rule for f in rec.findings}
    assert {"html-has-lang", "label", "image-alt"} <= rules, rules
    assert rec.scripts_in_pages == ["bad: http://127.0.0.1:9/bad"]
    assert any("images.example.net" in r for r in rec.bad_requests), rec.bad_requests
    assert [p.name for p in rec.shots] == ["01-bad-360.png", "01-bad-1280.png"]
