"""Executive summary reports and the analysis for prevention, in the officers' app:
figures, days per step, the written analysis, sign-off on the audit trail, publication,
the PDF with Thai shaped and broken into lines, and tags never on public pages."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import unicodedata

import pytest
from sqlalchemy import select

from whistle import cases, db, summaries
from whistle.models import AuditEntry, Report, Role

from .conftest import csrf_token

ANALYSIS = {
    "problems": "เรื่องร้องเรียนเกี่ยวกับการจัดซื้อจัดจ้างเพิ่มขึ้นในไตรมาสที่สอง",
    "obstacles": "เจ้าหน้าที่ผู้รับผิดชอบมีจำนวนน้อยและต้องปฏิบัติงานหลายด้านพร้อมกัน",
    "solutions": "จัดอบรมเจ้าหน้าที่และเผยแพร่ขั้นตอนการจัดซื้อจัดจ้างให้ประชาชนตรวจสอบได้",
}


@pytest.fixture
def year_of_cases(make_app, clock):
    """FY 2569: three tips in its first half, one acknowledged, one closed; today is in May."""
    from .conftest import Reporter

    app = make_app()
    reporter = Reporter(app.test_client())
    clock.today = dt.date(2025, 11, 3)
    for _ in range(3):
        reporter.submit_ok()
    with app.app_context():
        session = db.session()
        ids = list(session.scalars(select(Report.id).order_by(Report.id)))
        cases.move(session, session.get(Report, ids[0]), "acknowledged", None, dt.date(2025, 11, 5))
        cases.close_case(session, ids[1], "unsubstantiated", dt.date(2025, 11, 20))
    clock.today = dt.date(2026, 5, 10)
    return app


def test_executive_figures_and_days_per_step(year_of_cases):
    with year_of_cases.app_context():
        report = summaries.executive(db.session(), year_of_cases.extensions["whistle.settings"].organisation,
                                     summaries.FiscalYear(2569), "h1", dt.date(2026, 5, 10))
    assert report.as_of == dt.date(2026, 3, 31)
    assert report.counts.totals == {"received": 3, "completed": 1, "in_progress": 2}
    assert report.deadlines.ack_on_time == 1 and report.deadlines.ack_late == 2  # one acknowledged only by closing, late
    assert report.deadlines.resolved_late == 1 and report.deadlines.open_overdue == 2
    assert report.steps["acknowledged"].cases == 2 and report.steps["acknowledged"].median == 9.5
    assert report.steps["closed"].p90 == 17


def test_spread_nearest_rank():
    s = summaries.spread(list(range(1, 11)))
    assert (s.cases, s.median, s.p90) == (10, 5.5, 9)
    assert summaries.spread([]).median is None


def test_officer_writes_supervisor_signs_off_and_it_is_public(year_of_cases, make_app, make_account, officer_browser):
    officer_browser.sign_in(make_account())
    page = officer_browser.client.get("/summaries/2569/h1?lang=en").get_data(as_text=True)
    assert "Complaints received" in page
    response = officer_browser.client.post(
        "/summaries/2569/h1/analysis", data={**ANALYSIS, "csrf_token": csrf_token(page)}, content_type="multipart/form-data"
    )
    assert response.status_code == 303
    public = year_of_cases.test_client()
    assert public.get("/reports/2569/h1").status_code == 404  # not signed off: not public
    assert ANALYSIS["problems"] not in public.get("/statistics/2569").get_data(as_text=True)

    officer_browser.client.post("/sign-out", data={"csrf_token": csrf_token(page)})
    officer_browser.sign_in(make_account("boss", role=Role.SUPERVISOR))
    page = officer_browser.client.get("/summaries/2569/h1").get_data(as_text=True)
    assert officer_browser.client.post("/summaries/2569/h1/sign-off", data={"csrf_token": csrf_token(page)}).status_code == 303
    with year_of_cases.app_context():
        actions = [e.action for e in db.session().scalars(select(AuditEntry).order_by(AuditEntry.seq))]
    assert "report_written" in actions and "report_signed_off" in actions
    officer_browser.wallclock.advance(61)  # the page lists what it read at most a minute ago
    report_page = public.get("/reports/2569/h1?lang=en").get_data(as_text=True)
    assert ANALYSIS["solutions"] in report_page and "Figures as of 31 March 2569 B.E." in report_page
    assert "/reports/2569/h1" in public.get("/statistics/2569").get_data(as_text=True)


def test_sign_off_refused_before_the_period_ends(year_of_cases, make_account, officer_browser):
    with year_of_cases.app_context():
        officer = db.session().scalar(select(Report))  # any row: only to have a session
        assert officer is not None
    officer_browser.sign_in(make_account("boss", role=Role.SUPERVISOR))
    page = officer_browser.client.get("/summaries/2569/year").get_data(as_text=True)
    response = officer_browser.client.post("/summaries/2569/year/sign-off?lang=en", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    assert "can be signed off once its period is over" in officer_browser.client.get("/summaries/2569/year?lang=en").get_data(as_text=True)


def _comparable(text: str) -> str:
    """Text without spaces or line breaks, its marks in canonical order (pdftotext gives
    them in the order the glyphs are drawn: the tone mark before a lower vowel). SARA AM
    (U+0E33) is drawn as NIKHAHIT plus SARA AA, which pdftotext reads back as SARA AA
    alone: compare it as SARA AA."""
    text = unicodedata.normalize("NFD", "".join(text.split()))
    return text.replace("\u0e33", "\u0e32").replace("\u0e4d", "")


def test_pdf_has_thai_text_shaped_and_extractable(year_of_cases, make_account, officer_browser, tmp_path):
    with year_of_cases.app_context():
        account = make_account()
    with year_of_cases.app_context():
        from whistle.models import Account

        writer = db.session().scalar(select(Account))
        summaries.save_analysis(db.session(), summaries.FiscalYear(2569), "h1", ANALYSIS["problems"] * 3,
                                ANALYSIS["obstacles"], ANALYSIS["solutions"], writer, dt.date(2026, 5, 10))
    officer_browser.sign_in(account)
    response = officer_browser.client.get("/summaries/2569/h1.pdf")
    assert response.mimetype == "application/pdf" and response.data.startswith(b"%PDF")
    path = tmp_path / "summary.pdf"
    path.write_bytes(response.data)
    if os.environ.get("WHISTLE_KEEP_PDF_PAGE"):
        shutil.copy(path, os.environ["WHISTLE_KEEP_PDF_PAGE"] + ".pdf")
    text = subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, text=True, check=True).stdout
    joined = _comparable(text)
    for part in ANALYSIS.values():
        assert _comparable(part) in joined, text
    subprocess.run(["pdftoppm", "-r", "60", "-png", "-f", "4", "-l", "4", str(path), str(tmp_path / "page")], check=True)
    page = next(tmp_path.glob("page*.png"))
    if os.environ.get("WHISTLE_KEEP_PDF_PAGE"):  # to look at the shaping by eye
        shutil.copy(page, os.environ["WHISTLE_KEEP_PDF_PAGE"])
    assert page.stat().st_size > 5_000
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    assert "Laksaman" in fonts
    assert "ปีงบประมาณ" in joined  # the page itself is in Thai, the default language


def test_summary_csv_has_the_analysis_and_figures(year_of_cases, make_account, officer_browser):
    officer_browser.sign_in(make_account())
    body = officer_browser.client.get("/summaries/2569/h1.csv").get_data(as_text=True)
    assert "2569,h1,2026-03-31,totals,received,3" in body


def test_prevention_tags_counted_for_officers_and_never_public(year_of_cases, make_app, make_account, officer_browser):
    officer_app = make_app(organisation={"units": [{"key": "works", "label_en": "Public Works Division"}]})
    from whistle import create_officer_app

    officer_app = make_app(factory=create_officer_app, organisation={"units": [{"key": "works", "label_en": "Public Works Division"}]})
    from .conftest import OfficerBrowser

    browser = OfficerBrowser(officer_app.test_client(), officer_browser.wallclock)
    browser.sign_in(make_account())
    with officer_app.app_context():
        case_id = db.session().scalar(select(Report.id))
    page = browser.client.get(f"/cases/{case_id}").get_data(as_text=True)
    response = browser.client.post(f"/cases/{case_id}/tags", data={"unit": "works", "weakness": "weak_oversight",
                                                                   "csrf_token": csrf_token(page)})
    assert response.status_code == 303
    listing = browser.client.get("/prevention?lang=en").get_data(as_text=True)
    assert "Public Works Division" in listing and "<svg" in listing
    public = year_of_cases.test_client()
    for path in ("/statistics/2569?lang=en", "/statistics/2569.json", "/statistics/2569.csv?lang=en"):
        assert "Public Works Division" not in public.get(path).get_data(as_text=True)
        assert "weak_oversight" not in public.get(path).get_data(as_text=True)
