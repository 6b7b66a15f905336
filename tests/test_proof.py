"""Proofs of the promise: nothing readable at rest, only the right keys open a tip, and the
code and the client's address are nowhere but in the reporter's hands."""

from __future__ import annotations

import io
import logging
import os
import secrets
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from whistle import crypto, db
from whistle.models import Report
from whistle.intake import read_tip

from .conftest import TIP, csrf_token, file_meta, file_plaintext, message_text, receipt_code

CLIENT_ADDRESS = "203.0.113.77"


def _markers() -> dict[str, str]:
    tag = secrets.token_hex(6)
    return {name: f"MARK{name.upper()}{tag} ผู้แจ้ง{tag}" for name in ("what", "people", "when", "where", "how_known", "evidence")}


def _needles(markers: dict[str, str], code: str) -> list[bytes]:
    digits = code.replace(" ", "")
    needles = []
    for m in markers.values():
        ascii_part = m.split(" ")[0]
        needles += [ascii_part.encode(), ascii_part.encode("utf-16-le"), m.split(" ")[1].encode()]
    return needles + [digits.encode(), code.encode(), digits[7:27].encode(), digits.encode("utf-16-le")]


def _scan_tree(root: Path, needles: list[bytes], since: float | None = None) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            try:
                if since is not None and path.stat().st_mtime < since:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            found += [f"{path}: {n[:12]!r}" for n in needles if n in data]
    return found


def _dump_database(app) -> bytes:
    """Every value of every table, as the database returns it."""
    with app.app_context():
        engine = db.engine()
        chunks = []
        with engine.connect() as conn:
            for table in inspect(engine).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    for value in row:
                        chunks.append(value if isinstance(value, bytes) else str(value).encode())
        return b"\n".join(chunks)


@pytest.fixture
def temp_files_opened(monkeypatch) -> list[str]:
    """Records every temporary file opened through `tempfile` (anonymous ones included,
    which a folder scan cannot see)."""
    import werkzeug.formparser

    opened: list[str] = []
    for module, name in [(tempfile, n) for n in ("TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile", "mkstemp")] + [
        (werkzeug.formparser, "SpooledTemporaryFile")
    ]:
        real = getattr(module, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            opened.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    return opened


@pytest.fixture
def submitted(app, reporter, caplog, temp_files_opened):
    """A tip with a unique marker in every field, in a file's name and in its bytes."""
    caplog.set_level(logging.DEBUG)
    started = time.time() - 1
    markers = _markers()
    file_marker = f"MARKFILE{secrets.token_hex(6)}"
    # Larger than Werkzeug's 500 KiB in-memory limit, so a plaintext spool would show.
    payload = (file_marker.encode() + b"\n") * 40_000
    page = reporter.client.get("/report", environ_base={"REMOTE_ADDR": CLIENT_ADDRESS})
    response = reporter.client.post(
        "/report",
        data={**TIP, **markers, "csrf_token": csrf_token(page.get_data(as_text=True)),
              "files": [(io.BytesIO(payload), f"{file_marker}-name.txt")]},
        content_type="multipart/form-data",
        environ_base={"REMOTE_ADDR": CLIENT_ADDRESS},
    )
    assert response.status_code == 200
    code = receipt_code(response.get_data(as_text=True))
    opened = reporter.open_case(code)
    assert opened.status_code == 303
    reporter.reply(f"MARKREPLY{markers['what'][-12:]}")
    # An addition to the report, with a file whose name and bytes carry markers too.
    added = f"MARKADDED{markers['what'][-12:]}"
    case_page = reporter.client.get("/case").get_data(as_text=True)
    response_added = reporter.client.post(
        "/case/add",
        data={"add-text": added, "add-csrf_token": csrf_token(case_page),
              "add-files": [(io.BytesIO((added.encode() + b"\n") * 40_000), f"{added}-name.txt")]},
        content_type="multipart/form-data",
    )
    assert response_added.status_code == 303
    assert added in reporter.client.get("/case").get_data(as_text=True)  # re-read with the code
    needles = _needles(markers, code) + [file_marker.encode(), f"MARKREPLY{markers['what'][-12:]}".encode(), added.encode()]
    return {"markers": markers, "code": code, "needles": needles, "started": started, "payload": payload,
            "file_marker": file_marker, "response": response, "temp_files": list(temp_files_opened)}


def test_no_marker_or_code_in_database_instance_or_temp(app, submitted, instance):
    needles = submitted["needles"]
    assert _scan_tree(instance, needles) == []
    assert [n for n in needles if n in _dump_database(app)] == []
    assert _scan_tree(Path(tempfile.gettempdir()), needles, since=submitted["started"]) == []
    assert submitted["temp_files"] == [], "an upload went through a temporary file"
    # The scan itself works: the markers are found where they are meant to be.
    assert submitted["file_marker"].encode() in submitted["payload"]


def test_no_code_or_marker_or_address_in_logs_or_urls(app, submitted, caplog):
    logged = "\n".join(r.getMessage() for r in caplog.records).encode()
    for needle in submitted["needles"] + [CLIENT_ADDRESS.encode()]:
        assert needle not in logged
    assert submitted["code"].replace(" ", "") not in (submitted["response"].headers.get("Location") or "")


def test_no_client_address_in_database_or_limiter(make_app, reporter):
    app = make_app(ratelimit_enabled=True)
    client = app.test_client()
    page = client.get("/report", environ_base={"REMOTE_ADDR": CLIENT_ADDRESS})
    client.post(
        "/report",
        data={**TIP, "csrf_token": csrf_token(page.get_data(as_text=True))},
        content_type="multipart/form-data",
        environ_base={"REMOTE_ADDR": CLIENT_ADDRESS},
    )
    assert CLIENT_ADDRESS.encode() not in _dump_database(app)
    storage = app.extensions["whistle.limiter"].storage
    keys = " ".join(map(str, getattr(storage, "storage", {}).keys())) + " ".join(map(str, getattr(storage, "expirations", {}).keys()))
    assert keys, "the limiter recorded nothing: the check would prove nothing"
    assert CLIENT_ADDRESS not in keys and CLIENT_ADDRESS.replace(".", "") not in keys


def test_tip_opens_with_officer_recovery_and_reporter_keys_only(app, submitted, officer_key, recovery_key):
    """The reporter's own key is a recipient too, so the code re-reads the tip (crypto §22);
    no key of the server's is."""
    outsider = crypto.PrivateKey.generate()
    store = app.extensions["whistle.blobs"]
    with app.app_context():
        report = db.session().scalars(select(Report)).one()
        for key in (officer_key, recovery_key):
            assert read_tip(report, key)["what"] == submitted["markers"]["what"]
            (attachment,) = [a for a in report.attachments if a.message_id is None]
            assert file_plaintext(app, report, attachment, key) == submitted["payload"]
            assert submitted["file_marker"] in file_meta(report, attachment, key).name
            assert message_text(report, report.messages[0], key).startswith("MARKREPLY")
        with pytest.raises(crypto.OpenError):
            read_tip(report, outsider)
        with pytest.raises(crypto.OpenError):
            file_plaintext(app, report, attachment, outsider)
        with pytest.raises(crypto.OpenError):
            file_meta(report, attachment, outsider)
        with pytest.raises(crypto.OpenError):
            message_text(report, report.messages[0], outsider)
        reporter = crypto.PublicKey.from_bytes(report.reporter_public_key).key_id
        assert set(crypto.envelope_recipients(report.content)) == {officer_key.key_id, recovery_key.key_id, reporter}
        assert set(crypto.recipient_ids(attachment.wraps)) == {officer_key.key_id, recovery_key.key_id, reporter}


#: Columns allowed to hold a time of day: what officers did, to the minute, on the audit
#: trail (docs/data.md says why this tells nothing about when a tip arrived).
TIMED_COLUMNS = {("audit_entries", "at")}


def test_stored_dates_are_days_not_times(app, submitted):
    with app.app_context():
        engine = db.engine()
        for table in inspect(engine).get_table_names():
            for column in inspect(engine).get_columns(table):
                if (table, column["name"]) in TIMED_COLUMNS:
                    continue
                assert "TIME" not in str(column["type"]).upper(), f"{table}.{column['name']} stores a time"


def test_stored_files_carry_the_day_not_the_second(app, submitted, clock):
    import datetime as dt

    store = app.extensions["whistle.blobs"]
    files = [p for p in store.root.iterdir() if p.is_file()]
    assert files
    midnight = dt.datetime.combine(clock(), dt.time(), tzinfo=dt.timezone.utc).timestamp()
    for path in files:
        assert path.stat().st_mtime == midnight and path.stat().st_atime == midnight


def test_only_cookie_is_a_strict_httponly_visit_cookie(app, reporter):
    """The reporter side sets one cookie, for the visit only: no expiry, no script access,
    never sent by another site."""
    set_cookies = []
    for response in (reporter.client.get("/report"), reporter.submit(), reporter.client.get("/status?lang=en")):
        set_cookies += response.headers.getlist("Set-Cookie")
    assert set_cookies
    for header in set_cookies:
        name = header.split("=", 1)[0]
        attributes = header.lower()
        assert name == "whistle"
        assert "httponly" in attributes and "samesite=strict" in attributes
        assert "expires=" not in attributes and "max-age=" not in attributes


def test_secure_cookie_flag_when_configured(make_app):
    app = make_app(secure_cookies="true")
    response = app.test_client().get("/report")
    assert "secure" in response.headers["Set-Cookie"].lower()
