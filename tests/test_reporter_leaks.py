"""What the reporter's side must not give away or lose: readable cookies, a case view
that outlives "close", files lost without a word, a code echoed into a form, file names
that are Windows devices, and checks that vanish under `python -O`."""

from __future__ import annotations

import ast
import base64
import io
import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature

from whistle import crypto, db
from whistle.bundles import safe_filename
from whistle.models import Attachment, Message, Report

from .conftest import REDIS_URL, TIP, Reporter, csrf_token, redis_reachable

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- cookies


def _readable(app, cookie: str) -> str:
    """Everything anyone can read from the cookie without the server's key: what Flask's
    own serializer decodes (it checks the signature with the app's secret key), else every
    dot-separated part base64-decoded (and inflated when compressed)."""
    try:
        return json.dumps(SecureCookieSessionInterface().get_signing_serializer(app).loads(cookie), ensure_ascii=False)
    except BadSignature:
        pass
    parts = []
    for part in cookie.lstrip(".").split("."):
        try:
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except ValueError:
            continue
        try:
            raw = zlib.decompress(raw)
        except zlib.error:
            pass
        parts.append(raw.decode("utf-8", "replace"))
    return "\n".join(parts)


FILE_NAMES = ("order-7731-secret.pdf", "contract-scan-5512.jpg", "minutes-0042.docx")


class TestCookie:
    def _cookies_of_a_visit(self, app) -> list[str]:
        client = app.test_client()
        reporter = Reporter(client)
        seen = []

        def keep():
            cookie = client.get_cookie("whistle")
            if cookie is not None:
                seen.append(cookie.value)

        reporter.submit_ok(files=[(io.BytesIO(b"%PDF-1.4 orders"), FILE_NAMES[0])])
        keep()
        code = reporter.submit_ok()
        reporter.open_case(code)
        keep()
        response = reporter.reply("See the scan", files=[(io.BytesIO(b"scan"), FILE_NAMES[1]), (io.BytesIO(b"doc"), FILE_NAMES[2])])
        assert response.status_code == 303
        keep()  # the notices naming the files wait in the cookie for the next page
        return seen

    def test_cookie_names_no_file_category_or_case(self, app):
        cookies = self._cookies_of_a_visit(app)
        assert len(cookies) == 3
        needles = [*FILE_NAMES, *(n.rsplit(".", 1)[0] for n in FILE_NAMES), "procurement", "Procurement", '"id"']
        for cookie in cookies:
            readable = _readable(app, cookie)
            assert [n for n in needles if n in readable] == []

    def test_cookie_opens_as_documented(self, app):
        """docs/crypto.md section 8: cookie_key = HKDF(server_key, "whistle v1 visit cookie key")."""
        from flask.json.tag import TaggedJSONSerializer

        cookie = self._cookies_of_a_visit(app)[-1]
        key = crypto.hkdf(app.extensions["whistle.server_key"], b"whistle v1 visit cookie key")
        sealed = base64.urlsafe_b64decode(cookie)
        session = TaggedJSONSerializer().loads(crypto.open_with_key(key, sealed, b"whistle v1 visit cookie").decode())
        assert "case" in session and any(FILE_NAMES[1] in m for _c, m in session["_flashes"])

    def test_reporter_still_told_which_files_were_stored_as_sent(self, app):
        client = app.test_client()
        reporter = Reporter(client)
        reporter.open_case(reporter.submit_ok())
        reporter.reply("See the scan", files=[(io.BytesIO(b"doc"), FILE_NAMES[2])])
        page = client.get("/case?lang=en").get_data(as_text=True)
        assert FILE_NAMES[2] in page

    def test_tampered_cookie_is_an_empty_visit(self, app):
        client = app.test_client()
        reporter = Reporter(client)
        reporter.open_case(reporter.submit_ok())
        cookie = client.get_cookie("whistle").value
        sealed = bytearray(base64.urlsafe_b64decode(cookie))
        sealed[20] ^= 1
        client.set_cookie("whistle", base64.urlsafe_b64encode(bytes(sealed)).decode())
        response = client.get("/case")
        assert response.status_code == 303 and response.headers["Location"].endswith("/status")


# --------------------------------------------------------------------------- closing a case view


def _open_view(app) -> tuple[Reporter, str]:
    client = app.test_client()
    reporter = Reporter(client)
    reporter.open_case(reporter.submit_ok())
    assert client.get("/case").status_code == 200
    return reporter, client.get_cookie("whistle").value


def _close(reporter: Reporter) -> None:
    page = reporter.client.get("/case").get_data(as_text=True)
    assert reporter.client.post("/case/close", data={"csrf_token": csrf_token(page)}).status_code == 303


def _replay_shows_code_form(reporter: Reporter, copy: str) -> None:
    reporter.client.set_cookie("whistle", copy)
    response = reporter.client.get("/case?lang=en", follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.request.path == "/status"
    assert 'name="code"' in html and "Steps so far" not in html and "Reply to the officers" not in html


class TestClosingTheView:
    def test_copied_case_cookie_opens_nothing_after_close(self, app):
        reporter, copy = _open_view(app)
        _close(reporter)
        _replay_shows_code_form(reporter, copy)

    def test_copied_cookie_cannot_reply_after_close(self, app):
        reporter, copy = _open_view(app)
        token = csrf_token(reporter.client.get("/case").get_data(as_text=True))
        _close(reporter)
        reporter.client.set_cookie("whistle", copy)
        response = reporter.client.post("/case/reply", data={"text": "from the copy", "csrf_token": token})
        # Nothing is sent: the code is asked for again (the typed text kept on that page).
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and 'name="code"' in html and "Steps so far" not in html
        with app.app_context():
            assert db.session().query(Message).count() == 0

    def test_closing_records_only_a_random_id_for_the_view_life(self, app):
        store = app.extensions["whistle.state"]
        reporter, _copy = _open_view(app)
        _close(reporter)
        entries = dict(store._data)
        assert len(entries) == 1
        [(key, (expires, value))] = entries.items()
        assert key.startswith("closed-view:") and len(key) == len("closed-view:") + 32
        assert value == b"closed"
        assert 0 < expires - store._clock() <= 15 * 60

    def test_other_views_stay_open_when_one_closes(self, app):
        first, _ = _open_view(app)
        second, _ = _open_view(app)
        _close(first)
        assert second.client.get("/case").status_code == 200

    @pytest.mark.redis
    def test_closed_view_shared_through_redis(self, make_app):
        if not redis_reachable():
            pytest.skip(f"Redis not reachable at {REDIS_URL}")
        import redis

        app = make_app(state_storage_uri=REDIS_URL)
        other_worker = make_app(state_storage_uri=REDIS_URL)
        reporter, copy = _open_view(app)
        _close(reporter)
        keys = [k for k in redis.Redis.from_url(REDIS_URL).keys("whistle:state:closed-view:*")]
        assert keys and all(0 < redis.Redis.from_url(REDIS_URL).ttl(k) <= 15 * 60 for k in keys)
        _replay_shows_code_form(Reporter(other_worker.test_client()), copy)

    def test_dead_state_storage_is_a_translated_503(self, make_app):
        app = make_app(state_storage_uri="redis://127.0.0.1:1")
        reporter = Reporter(app.test_client())
        # The code check's budget lives in the state storage too: the check is answered
        # "busy, try again" at once, never with a bare 500.
        response = reporter.open_case(reporter.submit_ok())
        assert response.status_code == 503
        assert "Please wait a minute and try again" in response.get_data(as_text=True)


# --------------------------------------------------------------------------- file names


def _nothing_stored(app) -> None:
    with app.app_context():
        assert db.session().query(Report).count() == 0
        assert db.session().query(Attachment).count() == 0


class TestUnreadableFileName:
    @pytest.mark.parametrize("name", ["a\r\nb.pdf", "scan\n2569.jpg", "memo\r.docx"])
    def test_file_name_with_line_break_is_reported_not_dropped(self, app, reporter, name):
        response = reporter.submit(files=[(io.BytesIO(b"%PDF-1.4 evidence"), name), (io.BytesIO(b"fine"), "fine.pdf")])
        html = response.get_data(as_text=True)
        assert response.status_code == 400
        assert "The name of a file could not be read" in html
        assert TIP["what"] in html and "attach them again" in html
        _nothing_stored(app)

    def test_reply_file_name_with_line_break_is_reported(self, app, reporter):
        reporter.open_case(reporter.submit_ok())
        response = reporter.reply("Here it is", files=[(io.BytesIO(b"scan"), "a\nb.jpg")])
        html = response.get_data(as_text=True)
        assert response.status_code == 400
        assert "The name of a file could not be read" in html and "Here it is" in html
        with app.app_context():
            assert db.session().query(Message).count() == 0


@pytest.mark.parametrize(
    "name, expected",
    [
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("NUL", "_NUL"),
        ("nul.tar.gz", "_nul.tar.gz"),
        ("Prn.pdf", "_Prn.pdf"),
        ("aux.", "_aux"),
        ("COM1.pdf", "_COM1.pdf"),
        ("com9", "_com9"),
        ("lpt9.txt", "_lpt9.txt"),
        ("LPT1 .doc", "_LPT1 .doc"),
        ("COM\u00b9.jpg", "_COM\u00b9.jpg"),
        ("folder/../CON.txt", "_CON.txt"),
        ("C:\\evil\\aux.jpg", "_aux.jpg"),
        ("console.txt", "console.txt"),
        ("COM10.pdf", "COM10.pdf"),
        ("CONTRACT.pdf", "CONTRACT.pdf"),
        ("my con.txt", "my con.txt"),
        ("ใบเสร็จ.pdf", "ใบเสร็จ.pdf"),
    ],
)
def test_safe_filename_windows_device_names(name, expected):
    assert safe_filename(name, "file") == expected


# --------------------------------------------------------------------------- pages


@pytest.mark.parametrize("path", ["/", "/report", "/status", "/case"])
def test_head_answers_as_get(client, path):
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == get.status_code
    assert head.get_data() == b""


class TestNoCodeEchoed:
    def _assert_not_echoed(self, html: str, code: str) -> None:
        digits = code.replace(" ", "")
        assert code not in html and digits not in html and digits[7:] not in html

    def test_expired_status_form_does_not_echo_the_code(self, reporter):
        code = reporter.submit_ok()
        response = reporter.client.post("/status?lang=en", data={"code": code, "csrf_token": "expired-or-forged"})
        html = response.get_data(as_text=True)
        assert response.status_code == 400
        assert "This form had expired" in html
        self._assert_not_echoed(html, code)

    def test_mistyped_code_is_not_echoed(self, reporter):
        code = reporter.submit_ok()
        digits = code.replace(" ", "")
        typo = digits[:5] + str((int(digits[5]) + 1) % 10) + digits[6:]
        response = reporter.open_case(typo)
        assert response.status_code == 400
        self._assert_not_echoed(response.get_data(as_text=True), typo)


# --------------------------------------------------------------------------- checks under python -O


def test_no_assert_statements_in_the_package():
    """`python -O` drops asserts: a check the service relies on must be a real one."""
    found = []
    for path in sorted((ROOT / "whistle").rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"), filename=str(path))
        found += [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree) if isinstance(node, ast.Assert)]
    assert found == []


def test_refused_upload_cannot_be_claimed_under_python_O(tmp_path):
    script = f"""
import sys
from pathlib import Path
from whistle.storage import LocalBlobStore
from whistle.uploads import SealingUpload, UploadNotKept
store = LocalBlobStore(Path({str(tmp_path)!r}))
for upload in (
    SealingUpload(None, "big.pdf", None, 0, refused="too_large"),
    SealingUpload(store, "full.pdf", None, 10, refused="storage"),
):
    try:
        upload.claim()
    except UploadNotKept:
        continue
    sys.exit("claimed a file that was not kept")
print("ok", sys.flags.optimize)
"""
    result = subprocess.run([sys.executable, "-O", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["ok", "1"]
