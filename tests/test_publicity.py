"""The publicity kit: the website snippets (judged in Chromium: no Referer reaches the
channel, the statistics frame shows on an allowed site and is refused on another), the
poster and flyers (QR code read back by zbar, Thai text by pdftotext), the share card,
the staff section, the admin page and `whistle publicity`."""

from __future__ import annotations

import html
import io
import os
import re
import subprocess
import threading
import time
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from whistle import create_officer_app, publicity
from whistle.cli import main
from whistle.extensions import settings
from whistle.models import Role

from .conftest import OfficerBrowser

SITE = "https://whistle.ban-suan.go.th"
ONION = "banssuanwhistle2mbbhcrw7yjdqt2ktwy3b5gdxkbsj3ewn6qcdbafoh3xlyd.onion"
ALLOWED = "https://www.ban-suan.go.th"
NAME_TH = "เทศบาลตำบลบ้านสวน"


def _seal(folder: Path) -> str:
    image = Image.new("RGB", (240, 240), "white")
    image.paste((176, 128, 0), (20, 20, 220, 220))
    image.save(folder / "seal.png")
    return "seal.png"


def _kit_settings(instance: Path, **organisation) -> dict:
    org = {"name_th": NAME_TH, "name_en": "Ban Suan Subdistrict Municipality", "seal": _seal(instance),
           "embed_origins": [ALLOWED], **organisation}
    return {"site_url": SITE, "onion_address": ONION, "organisation": org}


@pytest.fixture
def kit_app(make_app, instance):
    return make_app(**_kit_settings(instance))


# --------------------------------------------------------------------------- snippets


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(text: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(text)
    return parser.tags


def _snippet(app, name: str) -> str:
    with app.test_request_context("/"):
        return publicity.snippet(settings(), name)


class TestSnippets:
    def test_button_is_a_plain_link_that_sends_no_referer(self, kit_app):
        text = _snippet(kit_app, "button")
        links = [attrs for tag, attrs in _tags(text) if tag == "a"]
        assert len(links) == 1
        link = links[0]
        assert link["href"] == SITE + "/"  # the plain address: no query, no identifier
        assert link["target"] == "_blank"
        assert set(link["rel"].split()) == {"noopener", "noreferrer"}
        assert link["referrerpolicy"] == "no-referrer"
        assert "<svg" in text and "<img" not in text  # the picture is inline: nothing to fetch
        assert "<script" not in text.lower() and not re.search(r"\son\w+\s*=", text, re.I)
        assert not re.search(r"(src|href)=\"(?!" + re.escape(SITE) + r")[a-z]+:", text)
        assert "ร้องเรียนการทุจริต" in text and "Report corruption" in text  # Thai and English

    def test_statistics_frame_points_at_this_year_without_script(self, kit_app):
        text = _snippet(kit_app, "statistics")
        frame = next(attrs for tag, attrs in _tags(text) if tag == "iframe")
        assert frame["src"] == SITE + "/statistics?embed=1"
        assert frame["referrerpolicy"] == "no-referrer"
        assert "allow-scripts" not in frame["sandbox"] and "allow-same-origin" not in frame["sandbox"]
        assert ALLOWED in text  # the comment says where it will show
        fallback = next(attrs for tag, attrs in _tags(text) if tag == "a")
        assert fallback["rel"] == "noopener noreferrer" and fallback["href"] == SITE + "/statistics"

    def test_current_year_redirect_keeps_the_embedding(self, kit_app, clock):
        response = kit_app.test_client().get("/statistics?embed=1")
        assert response.status_code == 303
        assert response.location.endswith("/statistics/2570?embed=1")
        assert f"frame-ancestors {ALLOWED}" in response.headers["Content-Security-Policy"]
        plain = kit_app.test_client().get("/statistics")
        assert "frame-ancestors 'none'" in plain.headers["Content-Security-Policy"]

    def test_nothing_without_the_channel_address(self, app):
        with app.test_request_context("/"), pytest.raises(publicity.NotConfigured, match="site_url"):
            publicity.snippet(settings(), "button")


# --------------------------------------------------------------------------- paper


def _comparable(text: str) -> str:
    """Text without spaces or line breaks, in compatibility form: SARA AM is drawn as
    NIKHAHIT and SARA AA, and comes back from the PDF as those two."""
    return unicodedata.normalize("NFKC", "".join(text.split()))


def _decode_qr(png: Path) -> list[str]:
    """Every QR code zbar (an independent decoder) finds in the picture."""
    out = subprocess.run(["zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(png)],
                         capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def _pdf_facts(path: Path) -> dict[str, str]:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return dict(line.split(":", 1) for line in info.splitlines() if ":" in line)


POINTS_PER_MM = 72 / 25.4
PAPER_MM = {"A4": (210, 297), "A5": (148, 210)}


@pytest.mark.parametrize("name", list(publicity.DOCUMENTS))
def test_document_pdf_carries_the_address_as_qr_and_thai_text(kit_app, tmp_path, name):
    with kit_app.test_request_context("/"):
        body = publicity.document_pdf(settings(), name, "th")
        png = publicity.document_png(settings(), name, "th")
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(body)
    facts = _pdf_facts(path)
    assert facts["Pages"].strip() == "1"
    width, height = (float(v) for v in re.findall(r"[\d.]+", facts["Page size"])[:2])
    paper = publicity.DOCUMENTS[name][0]
    assert (round(width / POINTS_PER_MM), round(height / POINTS_PER_MM)) == PAPER_MM[paper]

    # The PDF as printed, read by an independent decoder: exactly the configured address.
    subprocess.run(["pdftoppm", "-r", "110", "-png", "-singlefile", str(path), str(tmp_path / "page")], check=True)
    assert _decode_qr(tmp_path / "page.png") == [SITE]
    # The PNG the kit ships, too.
    (tmp_path / "kit.png").write_bytes(png)
    assert _decode_qr(tmp_path / "kit.png") == [SITE]
    size = Image.open(io.BytesIO(png)).size  # pdftoppm rounds a pixel up
    assert all(abs(px - mm / 25.4 * publicity.PNG_DPI) <= 1 for px, mm in zip(size, PAPER_MM[paper]))

    text = subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, text=True, check=True).stdout
    joined = _comparable(text)
    expected = [
        NAME_TH, "ช่องทางแจ้งเบาะแสการทุจริตและประพฤติมิชอบของเจ้าหน้าที่รัฐ", "whistle.ban-suan.go.th", ONION,
        "แจ้งเรื่อง", "เก็บรหัสติดตาม", "ติดตามเรื่อง",
        "เจ้าหน้าที่ผู้รับผิดชอบจะตอบรับเรื่องภายใน 7 วัน และดำเนินการให้แล้วเสร็จภายใน 15 วัน",
        "สำนักงานคณะกรรมการป้องกันและปราบปรามการทุจริตแห่งชาติ", "1205", "1206", "สำนักงานการตรวจเงินแผ่นดิน",
        "1676", "1567",
    ]
    if name == "staff-flyer":
        expected += ["ใช้โทรศัพท์ของท่านเองผ่านอินเทอร์เน็ตมือถือ", "อย่าใช้ Wi-Fi ของสำนักงาน คอมพิวเตอร์ของสำนักงาน",
                     "ความคุ้มครองตามกฎหมาย", "ระบบปกปิดตัวตนของท่านอย่างไร"]
    else:
        expected += ["เพื่อความปลอดภัย ให้แจ้งเรื่องจากโทรศัพท์ของท่านเองผ่านอินเทอร์เน็ตมือถือ"]
    for phrase in expected:
        assert _comparable(phrase) in joined, phrase
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    assert "Laksaman" in fonts


def test_working_days_are_said_so_and_english_is_there(make_app, instance, tmp_path):
    app = make_app(**_kit_settings(instance, day_count="working", ack_days=5, resolve_days=12))
    with app.test_request_context("/"):
        thai = publicity.document_pdf(settings(), "flyer", "th")
        english = publicity.document_pdf(settings(), "poster", "en")
    for label, body in (("th", thai), ("en", english)):
        (tmp_path / f"{label}.pdf").write_bytes(body)
    text = _comparable(subprocess.run(["pdftotext", "-raw", str(tmp_path / "th.pdf"), "-"], capture_output=True, text=True, check=True).stdout)
    assert _comparable("ภายใน 5 วันทำการ และดำเนินการให้แล้วเสร็จภายใน 12 วันทำการ") in text
    english_text = " ".join(subprocess.run(["pdftotext", str(tmp_path / "en.pdf"), "-"], capture_output=True, text=True, check=True).stdout.split())
    assert "within 5 working days" in english_text and "Ban Suan Subdistrict Municipality" in english_text


def test_seal_must_be_a_picture(make_app, instance):
    from whistle.config import ConfigError

    (instance / "seal.txt").write_text("not a picture")
    with pytest.raises(ConfigError, match="seal.txt"):  # the service does not start with it
        make_app(**_kit_settings(instance, seal="seal.txt"))


# --------------------------------------------------------------------------- landing page


class TestLandingPage:
    def test_card_names_the_share_image_this_site_serves(self, kit_app):
        client = kit_app.test_client()
        page = client.get("/").get_data(as_text=True)
        meta = {attrs.get("property") or attrs.get("name"): attrs.get("content") for tag, attrs in _tags(page) if tag == "meta"}
        assert meta["og:image"] == meta["twitter:image"] == SITE + "/share.png"
        assert meta["og:url"] == SITE + "/"
        assert meta["og:title"].startswith("ร้องเรียนการทุจริต") and NAME_TH in meta["og:title"]
        assert "ไม่ต้องเปิดเผยชื่อ" in meta["og:description"]
        assert meta["twitter:card"] == "summary_large_image"
        assert (meta["og:image:width"], meta["og:image:height"]) == ("1200", "630")
        image = client.get("/share.png")
        assert image.mimetype == "image/png"
        assert Image.open(io.BytesIO(image.data)).size == (1200, 630)

    def test_no_third_party_resource(self, kit_app):
        page = kit_app.test_client().get("/").get_data(as_text=True)
        for tag, attrs in _tags(page):
            for key in ("src", "href"):
                value = attrs.get(key)
                assert value is None or value.startswith(("/", "?", "#")), (tag, attrs)
        for tag, attrs in _tags(page):  # the card's absolute addresses are this site's own
            content = attrs.get("content") or ""
            assert not content.startswith("http") or content.startswith(SITE + "/"), attrs

    def test_staff_section(self, kit_app):
        thai = kit_app.test_client().get("/").get_data(as_text=True)
        assert 'id="staff"' in thai and "ใช้โทรศัพท์ของท่านเองผ่านอินเทอร์เน็ตมือถือ" in thai
        english = kit_app.test_client().get("/?lang=en").get_data(as_text=True)
        for phrase in ("Use your own phone on mobile data", "not your supervisor, not the IT staff",
                       "Witness Protection in Criminal Cases Act"):
            assert phrase in english

    def test_without_an_address_no_image_card(self, client):
        page = client.get("/").get_data(as_text=True)
        assert 'property="og:image"' not in page and 'content="summary"' in page
        assert client.get("/share.png").status_code == 404


# --------------------------------------------------------------------------- the command


def test_command_writes_the_whole_kit(instance, tmp_path, secret_key):
    config = f'''secret_key = "{secret_key}"
database_url = "sqlite:///{instance / 'cli.sqlite3'}"
site_url = "{SITE}"
onion_address = "{ONION}"
[organisation]
name_th = "{NAME_TH}"
seal = "{_seal(instance)}"
'''
    (instance / "config.toml").write_text(config, encoding="utf-8")
    out = tmp_path / "kit"
    result = CliRunner().invoke(main, ["publicity", "--out", str(out), "--instance", str(instance)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(publicity.file_names())
    assert _decode_qr(out / "poster-th.png") == [SITE]
    assert Image.open(out / "share.png").size == (1200, 630)
    assert f'href="{SITE}/"' in (out / "button.html").read_text("utf-8")


def test_command_says_what_is_missing(instance, tmp_path, secret_key):
    (instance / "config.toml").write_text(f'secret_key = "{secret_key}"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["publicity", "--out", str(tmp_path / "kit"), "--instance", str(instance)])
    assert result.exit_code == 1 and "site_url" in result.output


# --------------------------------------------------------------------------- admin page


@pytest.fixture
def kit_officer_app(make_app, instance, kit_app):
    return make_app(factory=create_officer_app, **_kit_settings(instance))


@pytest.fixture
def signed_in(kit_officer_app, wallclock, clock, officer_key):
    from whistle import accounts, db
    from whistle.extensions import password_hashing, server_key

    import pyotp

    from .conftest import OFFICER_PASSPHRASE, Creds

    def _make(role: Role) -> OfficerBrowser:
        with kit_officer_app.app_context():
            session = db.session()
            account = accounts.create_account(session, password_hashing(), f"kit-{role.value}", "Kit", role, OFFICER_PASSPHRASE,
                                              clock(), private_key=officer_key if role is Role.OFFICER else None,
                                              key_kdf={"time_cost": 1, "memory_cost": 1024, "parallelism": 1})
            secret = accounts.new_totp_secret()
            accounts.enroll_totp(session, server_key(), account, secret, pyotp.TOTP(secret).at(wallclock()), wallclock(), clock())
            account.totp_last_step -= 1
            account.must_change_passphrase = False
            session.commit()
        browser = OfficerBrowser(kit_officer_app.test_client(), wallclock)
        assert browser.sign_in(Creds(f"kit-{role.value}", OFFICER_PASSPHRASE, secret)).status_code == 303
        return browser

    return _make


class TestAdminPage:
    def test_admin_sees_each_snippet_to_paste_and_its_preview(self, signed_in, kit_app):
        browser = signed_in(Role.ADMIN)
        response = browser.client.get("/admin/publicity")
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        for name in publicity.SNIPPETS:
            area = re.search(rf'<textarea id="snippet-{name}" readonly[^>]*>(.*?)</textarea>', page, re.S)
            assert area and html.unescape(area.group(1)) == _snippet(kit_app, name)  # exactly what to paste
        frames = [attrs for tag, attrs in _tags(page) if tag == "iframe"]
        assert [f["src"] for f in frames] == ["/admin/publicity/preview/button", "/admin/publicity/preview/statistics"]
        # No script runs in them; the same origin only lets the statistics frame inside see
        # this workspace as its ancestor (an opaque one matches no allowed origin).
        assert all(f["sandbox"] == "allow-same-origin allow-popups allow-popups-to-escape-sandbox" for f in frames)
        csp = response.headers["Content-Security-Policy"]
        assert "frame-src 'self'" in csp and "script-src" not in csp and "default-src 'none'" in csp
        for filename in ("poster-th.pdf", "flyer-en.png", "staff-flyer-th.pdf", "share.png"):
            assert f'href="/admin/publicity/files/{filename}"' in page

    def test_preview_shows_the_snippet_as_a_website_would(self, signed_in, kit_app):
        browser = signed_in(Role.ADMIN)
        button = browser.client.get("/admin/publicity/preview/button")
        assert _snippet(kit_app, "button").strip() in button.get_data(as_text=True)
        csp = button.headers["Content-Security-Policy"]
        assert "style-src 'unsafe-inline'" in csp and f"frame-src {SITE}" in csp and "frame-ancestors 'self'" in csp
        assert "script" not in csp and button.headers["X-Frame-Options"] == "SAMEORIGIN"
        statistics = browser.client.get("/admin/publicity/preview/statistics").get_data(as_text=True)
        assert f'src="{SITE}/statistics?embed=1"' in statistics

    def test_admin_downloads_the_files(self, signed_in):
        browser = signed_in(Role.ADMIN)
        poster = browser.client.get("/admin/publicity/files/poster-th.pdf")
        assert poster.mimetype == "application/pdf" and poster.data.startswith(b"%PDF")
        assert "attachment" in poster.headers["Content-Disposition"]
        assert browser.client.get("/admin/publicity/files/share.png").mimetype == "image/png"
        assert browser.client.get("/admin/publicity/files/..%2Fconfig.toml").status_code == 404
        assert browser.client.get("/admin/publicity/files/poster-xx.pdf").status_code == 404

    @pytest.mark.parametrize("role", [Role.OFFICER, Role.SUPERVISOR])
    def test_other_roles_are_refused(self, signed_in, role):
        browser = signed_in(role)
        for path in ("/admin/publicity", "/admin/publicity/preview/button", "/admin/publicity/files/poster-th.pdf"):
            assert browser.client.get(path).status_code == 403, path
        assert "/admin/publicity" not in browser.client.get("/").get_data(as_text=True)

    def test_signed_out_is_sent_to_sign_in(self, kit_officer_app):
        response = kit_officer_app.test_client().get("/admin/publicity")
        assert response.status_code == 303 and response.location.endswith("/sign-in")

    def test_the_page_changes_nothing(self, kit_officer_app):
        """Only GET pages: nothing here can be triggered across sites, so no form and no
        CSRF token is needed (every POST of the app is checked in test_officer_boundaries)."""
        rules = [r for r in kit_officer_app.url_map.iter_rules() if r.rule.startswith("/admin/publicity")]
        assert len(rules) == 4 and all("POST" not in r.methods for r in rules)

    def test_without_an_address_the_page_says_what_to_set(self, officer_app, make_account, officer_browser):
        officer_browser.sign_in(make_account("admin-x", role=Role.ADMIN))
        page = officer_browser.client.get("/admin/publicity?lang=en").get_data(as_text=True)
        assert "Set site_url in config.toml" in page and "<textarea" not in page


# --------------------------------------------------------------------------- in Chromium

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


class _Server:
    """A WSGI app on a real socket of its own (127.0.0.1, a free port), in a thread."""

    def __init__(self, wsgi) -> None:
        from werkzeug.serving import make_server

        self.wsgi = wsgi
        self.server = make_server("127.0.0.1", 0, lambda environ, start: self.wsgi(environ, start), threaded=True)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


class _Recorder:
    """Middleware noting each request's path and Referer as the channel's server saw them."""

    def __init__(self, app) -> None:
        self.app, self.seen = app, []

    def __call__(self, environ, start):
        query = environ.get("QUERY_STRING")
        self.seen.append((environ["PATH_INFO"] + (f"?{query}" if query else ""), environ.get("HTTP_REFERER")))
        return self.app(environ, start)


@pytest.fixture
def websites(make_app, instance):
    """The channel on one origin; the municipality's site (allowed to embed) on a second;
    someone else's site on a third. Each site serves a page holding a snippet."""
    pages: dict[str, str] = {}

    def site(environ, start):
        body = pages.get(environ["PATH_INFO"])
        start("200 OK" if body else "404 Not Found", [("Content-Type", "text/html; charset=utf-8")])
        return [(body or "").encode("utf-8")]

    municipality, stranger = _Server(site), _Server(site)
    channel = _Server(lambda environ, start: start("503 Service Unavailable", []) or [b""])
    app = make_app(**{**_kit_settings(instance, embed_origins=[municipality.origin]), "site_url": channel.origin})
    recorder = _Recorder(app.wsgi_app)
    channel.wsgi = recorder
    for name in publicity.SNIPPETS:
        text = _snippet(app, name)
        # A link as a site usually writes it, to show that the server does see Referers.
        control = f'<a id="control" href="{channel.origin}/?control=1" target="_blank">control</a>'
        pages[f"/{name}.html"] = f"<!doctype html><html><body><h1>Municipality</h1>{text}{control}</body></html>"
    yield {"channel": channel, "municipality": municipality, "stranger": stranger, "seen": recorder.seen}
    for server in (channel, municipality, stranger):
        server.close()


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def test_chromium_button_opens_the_channel_with_no_referer(chromium, websites):
    channel, municipality, seen = websites["channel"], websites["municipality"], websites["seen"]
    context = chromium.new_context()
    page = context.new_page()
    page.goto(municipality.origin + "/button.html")
    with page.expect_popup() as opened:
        page.click(f'a[href="{channel.origin}/"]')
    landing = opened.value
    landing.wait_for_load_state()
    assert landing.url == channel.origin + "/"
    assert landing.main_frame.parent_frame is None  # a top-level page of its own
    assert landing.evaluate("window.opener") is None  # noopener: it cannot reach the municipality's page
    assert "ร้องเรียนการทุจริต" in landing.title()
    landing_requests = [(path, referer) for path, referer in seen if path == "/"]
    assert landing_requests == [("/", None)]  # checked at the server: no Referer at all
    assert all(referer is None for _, referer in seen)  # nor for its stylesheet
    # The control: an ordinary link on the same page does send one.
    with page.expect_popup() as control:
        page.click("#control")
    control.value.wait_for_load_state()
    assert [referer for path, referer in seen if path == "/?control=1"] == [municipality.origin + "/"]
    context.close()


def _until(condition, seconds: float = 20, state=lambda: None) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out: {state()}"
        time.sleep(0.1)


def _statistics_frame(chromium, site, seen):
    """The municipality's page with the statistics snippet, once the channel has answered
    the frame's request and the browser has dealt with the answer."""
    context = chromium.new_context()
    page = context.new_page()
    refusals: list[str] = []
    page.on("console", lambda message: refusals.append(message.text) if "frame-ancestors" in message.text else None)
    before = len(seen)
    page.goto(site.origin + "/statistics.html")
    _until(lambda: any(p == "/statistics?embed=1" for p, _ in seen[before:]), state=lambda: (seen[before:], [f.url for f in page.frames]))
    frame = page.frame_locator("iframe")
    return context, page, frame, refusals, before


def test_chromium_statistics_frame_shows_on_the_allowed_site_only(chromium, websites):
    channel, seen = websites["channel"], websites["seen"]
    context, page, frame, refusals, _ = _statistics_frame(chromium, websites["municipality"], seen)
    assert "สถิติ" in frame.locator("body.embedded h1").inner_text(timeout=20_000)
    inner = next(f for f in page.frames if f.parent_frame is not None)
    assert inner.url == channel.origin + "/statistics/2570?embed=1"  # through the redirect
    _until(lambda: ("/static/style.css", None) in seen)  # its stylesheet, inside the sandbox
    if os.environ.get("WHISTLE_KEEP_SCREENSHOT"):  # to look at the page by eye
        page.screenshot(path=os.environ["WHISTLE_KEEP_SCREENSHOT"] + ".site.png")
    assert refusals == []
    context.close()
    assert all(referer is None for _, referer in seen)  # the frame told the channel nothing

    context, page, frame, refusals, before = _statistics_frame(chromium, websites["stranger"], seen)
    # The channel answered (already at the redirect to this year's page, which carries the
    # same policy); the browser refused to show the answer in this site's page.
    _until(lambda: ("/statistics/2570?embed=1", None) in seen[before:]
           or [f.url for f in page.frames if f.parent_frame is not None] == ["chrome-error://chromewebdata/"])
    page.wait_for_load_state("load")
    for _ in range(30):  # where the allowed site showed it within a second, three seconds of nothing
        assert frame.locator("body.embedded").count() == 0
        assert [f.url for f in page.frames if f.parent_frame is not None] in ([""], ["chrome-error://chromewebdata/"])
        time.sleep(0.1)
    # Chromium says why on the console (when the message reaches the page in time).
    assert all(f'"frame-ancestors {websites["municipality"].origin}"' in text for text in refusals)
    context.close()


def test_pdf_text_layer_gives_each_thai_mark_its_own_character(tmp_path):
    """Once "ผ่าน" was drawn, WeasyPrint's own map read SARA UU back as MAI EK ("อย่่")."""
    from whistle import pdf

    words = "ผ่าน อยู่ ผู้ดูแล ถูกย้าย รู้ ตำบล ฤๅษี"
    (tmp_path / "words.pdf").write_bytes(pdf.render(f"<p>{words}</p>"))
    text = subprocess.run(["pdftotext", str(tmp_path / "words.pdf"), "-"], capture_output=True, text=True, check=True).stdout
    assert _comparable(words) in _comparable(text)


def test_chromium_admin_page_previews_both_snippets(chromium, make_app, instance, make_account, wallclock):
    """The workspace's own policy lets the previews work: the button keeps its inline
    styles inside its sandboxed frame, and the statistics frame shows the channel's page
    (here the workspace's own address is among the allowed origins)."""
    channel = _Server(lambda environ, start: start("503 Service Unavailable", []) or [b""])
    workspace = _Server(lambda environ, start: start("503 Service Unavailable", []) or [b""])
    try:
        kit = {**_kit_settings(instance, embed_origins=[workspace.origin]), "site_url": channel.origin}
        channel.wsgi = make_app(**kit).wsgi_app
        officer_app = make_app(factory=create_officer_app, **kit)
        workspace.wsgi = officer_app.wsgi_app
        creds = make_account("kit-admin", role=Role.ADMIN)
        context = chromium.new_context()
        page = context.new_page()
        violations: list[str] = []
        page.on("console", lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None)
        # The workspace answers /favicon.ico, like every page, with a redirect to sign in
        # that empties the visit's cookie, and with it the sign-in form's CSRF token.
        context.route("**/favicon.ico", lambda route: route.fulfill(status=404))
        page.goto(workspace.origin + "/sign-in")
        page.fill("input[name=username]", creds.username)
        page.fill("input[name=passphrase]", creds.passphrase)
        page.fill("input[name=code]", creds.code(wallclock))
        with page.expect_navigation():
            page.click("form.narrow button[type=submit]")
        assert not page.url.endswith("/sign-in"), page.content()
        page.goto(workspace.origin + "/admin/publicity")
        button = page.frame_locator("iframe.preview").first.locator(f'a[href="{channel.origin}/"]')
        box = button.bounding_box(timeout=20_000)
        assert box["height"] >= 44  # its padding and picture: the inline styles applied
        statistics = page.frame_locator("iframe.tall").frame_locator("iframe")
        assert "สถิติ" in statistics.locator("body.embedded h1").inner_text(timeout=20_000)
        assert violations == []
        if os.environ.get("WHISTLE_KEEP_SCREENSHOT"):  # to look at the page by eye
            page.screenshot(path=os.environ["WHISTLE_KEEP_SCREENSHOT"], full_page=True)
        context.close()
    finally:
        channel.close()
        workspace.close()
