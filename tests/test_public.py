"""The public pages: statistics per fiscal year (HTML, CSV, JSON, SVG), the embedding
policy, the handling manual, and what they must never show."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import unicodedata

import pytest
from sqlalchemy import select

from whistle import cases, db
from whistle.models import Publication, Report

from .conftest import TIP


def _close(app, case_id: int, outcome: str = "substantiated") -> None:
    with app.app_context():
        cases.close_case(db.session(), case_id, outcome, app.extensions["whistle.clock"]())


def _ids(app) -> list[int]:
    with app.app_context():
        return list(db.session().scalars(select(Report.id).order_by(Report.id)))


class TestStatisticsPage:
    def test_year_page_zero_included_with_a_plain_sentence(self, client, clock):
        clock.today = dt.date(2026, 11, 25)  # FY 2570, cut 31 October 2026
        page = client.get("/statistics/2570?lang=en").get_data(as_text=True)
        assert "Figures as of 31 October 2569 B.E." in page
        assert re.search(r"Complaints received</dt><dd>0<", page)
        assert "No complaint of corruption or misconduct was received" in page

    def test_current_year_redirects_to_its_stable_address(self, client, clock):
        clock.today = dt.date(2026, 3, 5)
        response = client.get("/statistics")
        assert response.status_code == 303 and response.headers["Location"].endswith("/statistics/2569")

    def test_cut_hides_this_month_and_two_downloads_in_a_month_match(self, app, client, reporter, clock):
        clock.today = dt.date(2026, 11, 3)
        for _ in range(6):
            reporter.submit_ok()
        first = client.get("/statistics/2570.csv?lang=th").get_data()
        clock.advance(1)
        reporter.submit_ok()
        _close(app, _ids(app)[0])
        assert client.get("/statistics/2570.csv?lang=th").get_data() == first
        doc = json.loads(client.get("/statistics/2570.json").get_data())
        assert doc["cut_on"] == "2026-10-31" and doc["totals"]["received"] == 0
        clock.today = dt.date(2026, 12, 1)
        doc = json.loads(client.get("/statistics/2570.json").get_data())
        assert doc["cut_on"] == "2026-11-30" and doc["totals"] == {"received": 7, "completed": 1, "in_progress": 6}

    def test_small_category_suppressed_with_a_partner(self, client, reporter, clock):
        clock.today = dt.date(2026, 10, 5)
        for _ in range(6):
            reporter.submit_ok(category="procurement")
        reporter.submit_ok(category="bribery")
        clock.today = dt.date(2026, 11, 2)
        doc = json.loads(client.get("/statistics/2570.json").get_data())
        cells = doc["tables"]["category"]
        assert cells["procurement"] is None and cells["bribery"] is None
        assert sum(v for v in cells.values() if v is not None) == 0
        rows = list(csv.reader(io.StringIO(client.get("/statistics/2570.csv").get_data(as_text=True).lstrip("\ufeff"))))
        bribery = next(r for r in rows if r[2] == "category" and r[3] == "bribery")
        assert bribery[5] == "" and bribery[6] == "1"
        assert "1" not in [r[5] for r in rows if r[2] == "category"]

    def test_publication_stored_once_per_cut(self, app, client, clock):
        clock.today = dt.date(2026, 12, 20)
        client.get("/statistics/2570")
        client.get("/statistics/2570.json")
        with app.app_context():
            cuts = list(db.session().scalars(select(Publication.cut_on).order_by(Publication.cut_on)))
        assert cuts == [dt.date(2026, 10, 31), dt.date(2026, 11, 30)]

    def test_charts_are_svg_without_script(self, client, reporter, clock):
        clock.today = dt.date(2026, 10, 5)
        reporter.submit_ok()
        clock.today = dt.date(2026, 11, 2)
        svg = client.get("/statistics/2570/category.svg")
        assert svg.mimetype == "image/svg+xml"
        body = svg.get_data(as_text=True)
        assert body.startswith("<svg") and "<script" not in body.lower() and "href" not in body
        page = client.get("/statistics/2570").get_data(as_text=True)
        assert "<svg" in page and "<script" not in page.lower()

    def test_thai_by_default_with_buddhist_era_dates(self, client, clock):
        clock.today = dt.date(2026, 11, 25)
        page = client.get("/statistics/2570").get_data(as_text=True)
        assert "31 ตุลาคม 2569" in page and "ปีงบประมาณ" in page

    @pytest.mark.parametrize("year", [2400, 2599, 2571])
    def test_unknown_years_are_404(self, client, clock, year):
        clock.today = dt.date(2026, 11, 25)
        assert client.get(f"/statistics/{year}").status_code == 404

    def test_no_third_party_resource(self, client, clock):
        clock.today = dt.date(2026, 11, 25)
        for path in ("/statistics/2570", "/statistics/2570?embed=1", "/manual"):
            page = client.get(path).get_data(as_text=True)
            assert not re.search(r'(src|href)="(https?:)?//', page), path


class TestEmbedding:
    def test_statistics_page_framable_only_by_configured_origins(self, make_app, clock):
        app = make_app(organisation={"embed_origins": ["https://www.example.go.th"]})
        client = app.test_client()
        response = client.get("/statistics/2570?embed=1")
        assert "frame-ancestors https://www.example.go.th" in response.headers["Content-Security-Policy"]
        assert "X-Frame-Options" not in response.headers
        for path in ("/", "/manual", "/statistics/2570.json", "/status"):
            other = client.get(path)
            assert "frame-ancestors 'none'" in other.headers["Content-Security-Policy"], path
            assert other.headers["X-Frame-Options"] == "DENY", path

    def test_without_origins_nothing_may_frame_it(self, client):
        response = client.get("/statistics/2570")
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"

    def test_embedded_page_has_no_site_chrome(self, client):
        page = client.get("/statistics/2570?embed=1&lang=en").get_data(as_text=True)
        assert 'class="embedded"' in page and "Make a report</a> ·" not in page


class TestManual:
    def test_manual_built_from_settings(self, make_app):
        app = make_app(organisation={
            "ack_days": 5, "resolve_days": 15, "day_count": "working",
            "ita_items": {"manual": "O32"},
            "manual": {"unit_en": "Anti-Corruption Centre, Office of the Clerk", "phone": "0 2000 0000",
                       "officer_title_en": "Legal officers", "address_en": "1 Town Hall Road"},
        })
        page = app.test_client().get("/manual?lang=en").get_data(as_text=True)
        for text in ("Anti-Corruption Centre, Office of the Clerk", "0 2000 0000", "Legal officers", "1 Town Hall Road",
                     "within 5 working days", "within 15 working days", "item O32", "1205", "1206", "1676", "1567",
                     "State Audit Office"):
            assert text in page, text

    def test_manual_leaves_out_what_is_not_set(self, client):
        page = client.get("/manual?lang=en").get_data(as_text=True)
        assert "By telephone" not in page and "By e-mail" not in page and "within 7 days" in page


def test_manual_pdf_in_thai_from_the_settings(client, tmp_path):
    import subprocess

    response = client.get("/manual.pdf")
    assert response.mimetype == "application/pdf" and response.data.startswith(b"%PDF")
    path = tmp_path / "manual.pdf"
    path.write_bytes(response.data)
    text = subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, text=True, check=True).stdout
    # pdftotext gives marks in the order they are drawn (a tone mark before a lower vowel).
    text = unicodedata.normalize("NFC", text)
    assert "คู่มือ" in text and "1205" in text
