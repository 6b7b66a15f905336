"""Hostile and broken input: always a clear translated 4xx, never a 500, never a partial tip."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError

from whistle import db
from whistle.models import Attachment, Report

from .conftest import TIP, csrf_token
from .live import multipart


def _nothing_stored(app) -> None:
    with app.app_context():
        assert db.session().query(Report).count() == 0
        assert db.session().query(Attachment).count() == 0
    store = app.extensions["whistle.blobs"]
    assert [p for p in store.root.iterdir() if p.is_file()] == []
    assert list(store.incoming.iterdir()) == []


def _token(client) -> str:
    return csrf_token(client.get("/report?lang=en").get_data(as_text=True))


class TestSizes:
    def test_oversized_body_gets_413_page(self, make_app):
        app = make_app(max_files=1, max_file_bytes=1024)
        client = app.test_client()
        token = _token(client)
        response = client.post(
            "/report?lang=en",
            data={**TIP, "csrf_token": token, "files": [(io.BytesIO(b"x" * (2 * 1024 * 1024)), "big.bin")]},
            content_type="multipart/form-data",
        )
        assert response.status_code == 413
        assert "larger than this service accepts" in response.get_data(as_text=True)
        _nothing_stored(app)

    def test_too_large_file_keeps_text_and_stores_nothing(self, make_app):
        app = make_app(max_file_bytes=1000)
        client = app.test_client()
        response = client.post(
            "/report?lang=en",
            data={**TIP, "csrf_token": _token(client), "files": [(io.BytesIO(b"y" * 5000), "scan.pdf")]},
            content_type="multipart/form-data",
        )
        html = response.get_data(as_text=True)
        assert response.status_code == 400
        assert "scan.pdf" in html and "is larger than" in html
        assert TIP["what"] in html and "attach them again" in html
        _nothing_stored(app)

    def test_too_many_files_keeps_text_and_stores_nothing(self, make_app):
        app = make_app(max_files=2)
        client = app.test_client()
        files = [(io.BytesIO(b"z"), f"f{i}.txt") for i in range(3)]
        response = client.post(
            "/report?lang=en", data={**TIP, "csrf_token": _token(client), "files": files}, content_type="multipart/form-data"
        )
        html = response.get_data(as_text=True)
        assert response.status_code == 400
        assert "at most 2 files" in html and TIP["what"] in html
        _nothing_stored(app)

    def test_overlong_field_keeps_text_with_message(self, app, client):
        long_text = "ก" * 20_001
        response = client.post(
            "/report?lang=en", data={**TIP, "what": long_text, "csrf_token": _token(client)}, content_type="multipart/form-data"
        )
        html = response.get_data(as_text=True)
        assert response.status_code == 400
        assert "at most 20000 characters" in html and long_text in html
        _nothing_stored(app)

    def test_absurd_field_beyond_parser_cap_gets_413(self, app, client):
        response = client.post(
            "/report?lang=en",
            data={**TIP, "what": "a" * 600_000, "csrf_token": _token(client)},
            content_type="multipart/form-data",
        )
        assert response.status_code == 413
        _nothing_stored(app)

    def test_too_many_parts_refused(self, app, client):
        data = {**TIP, "csrf_token": _token(client)}
        data.update({f"extra{i}": "x" for i in range(100)})
        response = client.post("/report?lang=en", data=data, content_type="multipart/form-data")
        assert response.status_code in (400, 413)
        _nothing_stored(app)


class TestEncoding:
    def test_invalid_utf8_refused_with_message(self, app, client):
        fields = {k: v.encode() for k, v in TIP.items()}
        fields["what"] = b"bribe paid \xff\xfe to the chief"
        fields["csrf_token"] = _token(client).encode()
        body, ctype = multipart(fields)
        response = client.post("/report?lang=en", data=body, content_type=ctype)
        html = response.get_data(as_text=True)
        assert response.status_code == 400
        assert "could not be read" in html
        assert "bribe paid" in html  # the readable part is kept
        _nothing_stored(app)

    def test_nul_bytes_refused_with_message(self, app, client):
        response = client.post(
            "/report?lang=en",
            data={**TIP, "people": "clerk\x00admin", "csrf_token": _token(client)},
            content_type="multipart/form-data",
        )
        html = response.get_data(as_text=True)
        assert response.status_code == 400
        assert "could not be read" in html and "clerkadmin" in html
        _nothing_stored(app)

    @pytest.mark.parametrize(
        "body",
        [
            b"--x\r\nContent-Disposition: form-data; name=\"what\"\r\n\r\nno end",
            b"garbage without any boundary",
            b"--x--\r\n",
            b"--x\r\nContent-Disposition: form-data\r\n\r\nnameless\r\n--x--\r\n",
        ],
    )
    def test_malformed_multipart_is_a_4xx(self, app, client, body):
        response = client.post("/report?lang=en", data=body, content_type="multipart/form-data; boundary=x")
        assert 400 <= response.status_code < 500
        _nothing_stored(app)

    def test_multipart_without_boundary_is_a_4xx(self, app, client):
        response = client.post("/report", data=b"abc", content_type="multipart/form-data")
        assert 400 <= response.status_code < 500
        _nothing_stored(app)

    def test_wrong_method_and_unknown_page_are_translated_4xx(self, client):
        assert client.get("/report/saved").status_code == 405
        response = client.get("/no-such-page?lang=en")
        assert response.status_code == 404
        assert "There is no page at this address." in response.get_data(as_text=True)


class TestCodes:
    @pytest.mark.parametrize(
        "typed",
        ["", "1234", "abcd efgh", "1" * 200, "1234 5678 9012 3456 7890 1234 567x", "๑" * 28, "\x00" * 28],
    )
    def test_malformed_codes_are_400_without_argon2(self, app, client, typed, monkeypatch):
        calls = []
        monkeypatch.setattr("whistle.codes.crypto.argon2id", lambda *a, **k: calls.append(1) or b"\0" * 32)
        page = client.get("/status").get_data(as_text=True)
        response = client.post("/status", data={"code": typed, "csrf_token": csrf_token(page)})
        assert response.status_code == 400
        assert calls == []


class TestAtomicity:
    def test_database_failure_stores_nothing_and_shows_no_code(self, app, client, monkeypatch):
        token = _token(client)
        from sqlalchemy.orm import Session

        def failing_commit(self):
            raise OperationalError("COMMIT", {}, Exception("disk full"))

        monkeypatch.setattr(Session, "commit", failing_commit)
        response = client.post(
            "/report?lang=en",
            data={**TIP, "csrf_token": token, "files": [(io.BytesIO(b"evidence"), "a.pdf")]},
            content_type="multipart/form-data",
        )
        html = response.get_data(as_text=True)
        assert response.status_code == 503
        assert 'class="code"' not in html
        assert "nothing was kept" in html and TIP["what"] in html
        monkeypatch.undo()
        _nothing_stored(app)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    what=st.text(max_size=300),
    people=st.text(max_size=50),
    category=st.sampled_from(["procurement", "", "x", "other"]),
)
def test_report_form_never_errors_500(app, client, what, people, category):
    response = client.post(
        "/report",
        data={**TIP, "what": what, "people": people, "category": category, "csrf_token": _token(client)},
        content_type="multipart/form-data",
    )
    assert response.status_code in (200, 400)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(code=st.text(max_size=160))
def test_status_form_never_errors_500(app, client, code):
    page = client.get("/status").get_data(as_text=True)
    response = client.post("/status", data={"code": code, "csrf_token": csrf_token(page)})
    assert response.status_code in (400, 404)


def test_session_close_failing_after_the_answer_is_not_a_500(app, client, monkeypatch):
    """A connection cut while the request ends (a database restart) must not turn a made
    answer into a bare 500."""
    from sqlalchemy.orm import Session

    real_close = Session.close

    def broken_close(self):
        real_close(self)  # release the connection, then fail as a cut connection does
        raise OperationalError("ROLLBACK", {}, Exception("server closed the connection"))

    from whistle.codes import new_code

    token = csrf_token(client.get("/status").get_data(as_text=True))
    monkeypatch.setattr(Session, "close", broken_close)
    response = client.post("/status", data={"code": new_code(b"k" * 32).display(), "csrf_token": token})
    assert response.status_code == 404  # the lookup ran, then the session's close failed
