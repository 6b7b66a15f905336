"""Memory per request, measured on the deployed server (gunicorn, deploy/gunicorn.conf.py).

For every POST page of both apps, the worst body the page accepts and a 100 MB
url-encoded flood are sent to a worker whose peak resident size (VmHWM) was reset just
before (`echo 5 > /proc/PID/clear_refs`). No request may raise the worker's peak by more
than 64 MiB above the Argon2 allowance (argon2_concurrency x the derivation's memory),
counted from the worker's size once every page has been used once. A flood must be
refused with a 413 before its body is read: the server answers after the first MiB,
with the rest never sent.

Also here: every POST page is under a rate limit, and the body caps by page.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from whistle import bodies, create_app, create_officer_app
from whistle.config import Settings
from whistle.ratelimit import LIMITED_ENDPOINTS

from . import live
from .conftest import TIP, csrf_token, receipt_code
from .test_faults import _base_env, _make_instance

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
MiB = 1024 * 1024
BOUND_KIB = 64 * 1024
#: The instance's cheap code cost (test_faults.CHEAP_COST): 256 KiB per derivation.
ARGON2_KIB = Settings.argon2_concurrency * 256
FLOOD = 100 * 1000 * 1000


# --------------------------------------------------------------------------- helpers


def _status_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


class Gunicorn:
    """One gunicorn worker (8 threads, as shipped) serving `app` from an instance."""

    def __init__(self, tmp: Path, env: dict[str, str], app: str) -> None:
        if not Path("/proc/self/clear_refs").exists():
            pytest.skip("measuring peak memory needs Linux /proc")
        self.port = live.free_port()
        self.log = tmp / f"gunicorn-{self.port}.log"
        command = [
            sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF), "--bind", f"127.0.0.1:{self.port}",
            "--workers", "1", "--error-logfile", str(self.log), "--worker-tmp-dir", str(tmp), app,
        ]
        self.proc = subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not live.wait_listening(self.port, 30, self.proc):
            self.stop()
            pytest.fail("gunicorn did not start:\n" + self.log.read_text("utf-8", "replace")[-3000:])
        deadline = time.monotonic() + 30
        while not (workers := _children(self.proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        [self.worker] = workers
        live.wait_listening(self.port, 30, self.proc)
        self.baseline = 0

    def settle(self) -> None:
        """Every page has been used once: count growth from here."""
        self.baseline = _status_kib(self.worker)["VmRSS"]

    def peak_growth(self, send) -> tuple[int, object]:
        """(KiB the worker's peak rose above its settled size while `send` ran, its result)."""
        Path(f"/proc/{self.worker}/clear_refs").write_text("5")
        result = send()
        peak = _status_kib(self.worker)["VmHWM"]
        return peak - self.baseline, result

    def stop(self) -> None:
        live.stop(self.proc)


def _raw(port: int, path: str, body: bytes, content_type: str, cookies: dict[str, str] | None = None,
         *, send_only: int | None = None, chunked: bool = False, timeout: float = 120) -> int:
    """POST `body` and return the answer's status. With `send_only`, only that many bytes
    of the body are ever sent: the answer must come without the rest."""
    head = [f"POST {path} HTTP/1.1", "Host: whistle", "Accept-Language: en", f"Content-Type: {content_type}"]
    if cookies:
        head.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()))
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
    sent = body if send_only is None else body[:send_only]
    if chunked:
        sent = b"".join(b"%x\r\n%s\r\n" % (len(sent[i : i + MiB]), sent[i : i + MiB]) for i in range(0, len(sent), MiB))
        sent += b"0\r\n\r\n" if send_only is None else b""
    answer = b""
    with socket.create_connection((live.HOST, port), timeout=timeout) as sock:
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + sent)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and closed: read what it said
        try:
            while b"\r\n" not in answer:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except ConnectionResetError:
            pass
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _urlencoded(size: int) -> bytes:
    """As many fields as fit in `size` bytes: the shape that cost 2.6 GB per 100 MB."""
    return (b"a&" * (size // 2 + 1))[:size]


FORM_LIMIT = bodies.FORM.total - 1024  # a small form's worst body, with room for the token


def _wrong(code: str) -> str:
    last = code.split()[-1]
    return "0000" if last != "0000" else "1111"


def _form_fields(token: str, **fields: str) -> bytes:
    from urllib.parse import urlencode

    head = urlencode({"csrf_token": token, **fields}).encode() + b"&"
    return head + _urlencoded(FORM_LIMIT - len(head))


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("memory")
    env = _base_env(tmp)
    env.update(WHISTLE_RATELIMIT_REPLY="10000 per hour", WHISTLE_RATELIMIT_OTHER="10000 per hour",
               WHISTLE_RATELIMIT_SIGNIN="10000 per hour")
    instance = _make_instance(tmp, env)
    env["WHISTLE_INSTANCE"] = str(instance)
    started = []
    try:
        for app in ("whistle:create_app()", "whistle:create_officer_app()"):
            started.append(Gunicorn(tmp, env, app))
        yield started
    finally:
        for server in started:
            server.stop()


def _filled(fields: dict[str, str], total: int) -> tuple[bytes, str]:
    """A multipart body of `fields` and files (at most `max_file_bytes` each) that comes
    within 4 KiB of `total` bytes."""
    cap = Settings.max_file_bytes
    body, _ = live.multipart(fields)
    room = total - len(body) - 4096
    sizes = [cap] * (room // (cap + 256)) + [room % (cap + 256) - 256]
    return live.multipart(fields, [(f"evidence-{i}.pdf", b"%PDF-1.4\n" + os.urandom(n - 9)) for i, n in enumerate(sizes)])


def _files(count: int, size: int) -> list[tuple[str, bytes]]:
    return [(f"evidence-{i}.pdf", b"%PDF-1.4\n" + os.urandom(size - 9)) for i in range(count)]


def test_request_memory_every_post_page_within_bound(servers):
    """Each request's growth in KiB, printed for docs/benchmarks.md; each within the bound."""
    reporter_server, officer_server = servers
    port = reporter_server.port
    s = Settings(instance_path=Path("."), secret_key="x" * 32, database_url="", blob_dir=Path("."))
    upload = bodies.upload_cap(s)
    max_files = [*_files(s.max_files, s.max_file_bytes)]

    # A visit that has made a report, is on its receipt, and has a case open.
    browser = live.Browser(port, timeout=120)
    status, _, page = browser.get("/report")
    status, _, receipt = browser.post("/report", {**TIP, "csrf_token": csrf_token(page)})
    assert status == 200, receipt[:1000]
    code = receipt_code(receipt)
    status, _, page = browser.get("/status")
    assert browser.post("/status", {"code": code, "csrf_token": csrf_token(page)})[0] == 303
    status, _, case_page = browser.get("/case")
    assert status == 200
    token = csrf_token(case_page)

    big_text = {name: "ก" * (upload.field // 3 - 64) for name in ("what", "people", "when", "where", "how_known", "evidence")}
    cases = {
        # endpoint: [(what, path, body, content type, expected status)]
        "reporter.report": [
            ("every file at its cap", "/report", *live.multipart({**TIP, "csrf_token": token}, max_files), 200),
            ("every field at the parser cap", "/report", *_filled({**TIP, **big_text, "csrf_token": token}, upload.total), 400),
            ("the most parts", "/report", *live.multipart({f"f{i}": "x" * (upload.field - 64) for i in range(upload.parts)}), 400),
        ],
        "reporter.reply": [
            ("every file at its cap", "/case/reply", *live.multipart({"text": "More", "csrf_token": token}, max_files), 303),
            ("the text at the parser cap", "/case/reply",
             *live.multipart({"text": "ก" * (upload.field // 3 - 64), "csrf_token": token}, max_files), 400),
        ],
        "reporter.add": [
            ("every file at its cap", "/case/add",
             *live.multipart({"add-text": "More", "add-csrf_token": token}, max_files, "add-files"), 303),
            ("the text at the parser cap", "/case/add",
             *live.multipart({"add-text": "ก" * (upload.field // 3 - 64), "add-csrf_token": token}, max_files, "add-files"), 400),
        ],
        "reporter.status": [
            ("a real code", "/status", *live.multipart({"code": code, "csrf_token": token}), 303),
            ("the most fields", "/status", _form_fields(token, code=code), "application/x-www-form-urlencoded", 303),
        ],
        "reporter.saved": [
            ("the most fields", "/report/saved", _form_fields(token, code=code, last_group=_wrong(code)),
             "application/x-www-form-urlencoded", 400),
        ],
        "reporter.receipt_text": [
            ("the most fields", "/report/receipt.txt", _form_fields(token, code=code), "application/x-www-form-urlencoded", 200),
        ],
        "reporter.close": [
            ("the most fields", "/case/close", _form_fields(token), "application/x-www-form-urlencoded", 303),
        ],
        "reporter.rate": [
            ("the most fields", "/case/rate", _form_fields(token), "application/x-www-form-urlencoded", 400),
        ],
    }
    sign_in_token = live.Browser(officer_server.port).token("/sign-in")
    officer_cases = {
        endpoint: [("the most fields", path, _form_fields("x", username="u", passphrase="p"),
                    "application/x-www-form-urlencoded", expected)]
        for endpoint, path, expected in (
            ("officer_auth.sign_in", "/sign-in", 400),
            ("officer_auth.sign_out", "/sign-out", 400),
            ("officer_auth.change_passphrase", "/passphrase", 400),
            ("officer_auth.enrol", "/enrol", 400),
            ("officer_cases.step", "/cases/1/step", 400),
            ("officer_cases.assign", "/cases/1/assign", 400),
            ("officer_cases.add_note", "/cases/1/notes", 400),
            ("officer_cases.send_message", "/cases/1/messages", 400),
            ("officer_record.record_tip", "/record", 400),
            ("officer_identity.request_reveal", "/cases/1/identity/request", 400),
            ("officer_identity.open_identity", "/cases/1/identity/open", 400),
            ("officer_identity.decide", "/identity-requests/1/decide", 400),
            ("officer_summaries.write", "/summaries/2569/h1/analysis", 400),
            ("officer_summaries.sign_off", "/summaries/2569/h1/sign-off", 400),
            ("officer_prevention.tag", "/cases/1/tags", 400),
            ("officer_access.certify", "/access/certify", 400),
            ("officer_access.start_rewrap", "/access/rewrap", 400),
            ("officer_admin.create", "/admin/accounts/new", 400),
            ("officer_admin.reset_passphrase", "/admin/accounts/1/passphrase", 400),
            ("officer_admin.set_email", "/admin/accounts/1/email", 400),
            ("officer_admin.disable", "/admin/accounts/1/disable", 400),
            ("officer_admin.retire_key", "/admin/accounts/1/retire-key", 400),
            ("officer_admin.reset_second_factor", "/admin/accounts/1/second-factor", 400),
        )
    }
    # The custodian's page reads its key file into memory: a file past its cap, within the
    # page's body cap, is dropped as it arrives.
    officer_cases["officer_access.certify"].append(
        ("a key file past its cap", "/access/certify", *live.multipart({"csrf_token": "x"}, [("recovery.key", os.urandom(60_000))]), 400)
    )
    assert sign_in_token

    # Every POST page of both apps is here.
    assert set(cases) == _post_endpoints(create_app)
    assert set(officer_cases) == _post_endpoints(create_officer_app)

    flood = _urlencoded(FLOOD)
    results = []
    for server, table, cookies in ((reporter_server, cases, browser.cookies), (officer_server, officer_cases, {})):
        # Use every page once (templates compile, modules load), then count from there.
        for endpoint, rows in table.items():
            for _what, path, _body, _ctype, _expected in rows:
                visit = {} if endpoint == "reporter.close" else dict(cookies)  # closing would close the view
                _raw(server.port, path, b"csrf_token=warm", "application/x-www-form-urlencoded", visit)
        if server is reporter_server:
            # Files through both forms, refused (no token) so that the visit stays as it is.
            browser.post("/case/reply", {"text": "warm", "csrf_token": "x"}, _files(1, 1000))
            browser.post("/report", {**TIP, "csrf_token": "x"}, _files(1, 1000))
        server.settle()
        for endpoint, rows in table.items():
            # The view closes last: the reply cases need it open.
            for what, path, body, ctype, expected in rows:
                if endpoint == "reporter.close":
                    continue
                growth, status = server.peak_growth(lambda: _raw(server.port, path, body, ctype, dict(cookies)))
                results.append((endpoint, what, status, growth))
                assert status == expected, (endpoint, what, status, server.log.read_text("utf-8", "replace")[-3000:])
            path = rows[0][1]
            for kind, chunked in (("100 MB url-encoded flood", False), ("100 MB chunked url-encoded flood", True)):
                growth, status = server.peak_growth(
                    lambda: _raw(server.port, path, flood, "application/x-www-form-urlencoded", dict(cookies),
                                 send_only=MiB, chunked=chunked, timeout=30)
                )
                results.append((endpoint, kind, status, growth))
                assert status == 413, (endpoint, kind, status)
        if server is reporter_server:
            status, _, case_page = browser.get("/case")
            assert status == 200 and "More" in case_page  # the reply with every file went in
            what, path, body, ctype, expected = cases["reporter.close"][0]
            growth, status = server.peak_growth(lambda: _raw(server.port, path, body, ctype, dict(cookies)))
            results.append(("reporter.close", what, status, growth))
            assert status == expected

    print("\nendpoint                        body                                status  peak growth")
    for endpoint, what, status, growth in results:
        print(f"{endpoint:31} {what:35} {status:6}  {growth / 1024:7.1f} MiB")
    over = [r for r in results if r[3] > BOUND_KIB + ARGON2_KIB]
    assert over == [], over


def _post_endpoints(factory) -> set[str]:
    app = factory({"secret_key": "k" * 32, "instance_path": "/nonexistent-instance"}, require_recipients=False)
    return {rule.endpoint for rule in app.url_map.iter_rules() if "POST" in (rule.methods or ())}


@pytest.mark.parametrize("factory", [create_app, create_officer_app])
def test_every_post_page_has_a_rate_limit(factory):
    assert _post_endpoints(factory) <= set(LIMITED_ENDPOINTS)


def test_other_posts_limited_by_their_setting(make_app):
    app = make_app(ratelimit_enabled=True, ratelimit_other="2 per hour")
    client = app.test_client()
    token = csrf_token(client.get("/status").get_data(as_text=True))
    answers = [client.post("/case/close", data={"csrf_token": token}).status_code for _ in range(3)]
    assert answers == [303, 303, 429]


class TestBodyCaps:
    def test_urlencoded_flood_refused_before_parsing(self, app, client, monkeypatch):
        parsed = []
        import werkzeug.formparser

        real = werkzeug.formparser.FormDataParser._parse_urlencoded
        monkeypatch.setattr(werkzeug.formparser.FormDataParser, "_parse_urlencoded",
                            lambda self, *a, **k: parsed.append(1) or real(self, *a, **k))
        for path in ("/case/close", "/report/saved", "/report/receipt.txt", "/status", "/report"):
            response = client.post(path + "?lang=en", data=_urlencoded(bodies.FORM.total + 1),
                                    content_type="application/x-www-form-urlencoded")
            assert response.status_code == 413, path
            assert "larger than this service accepts" in response.get_data(as_text=True)
        assert parsed == []

    def test_small_form_may_not_carry_a_file_sized_body(self, client):
        token = csrf_token(client.get("/status").get_data(as_text=True))
        body, ctype = live.multipart({"csrf_token": token, "code": "1234"}, [("a.pdf", b"x" * (bodies.FORM.total + 1))])
        assert client.post("/status", data=body, content_type=ctype).status_code == 413

    def test_report_still_takes_files_at_their_cap(self, make_app):
        from .conftest import Reporter

        app = make_app(max_files=2, max_file_bytes=300_000)
        Reporter(app.test_client()).submit_ok(
            files=[(__import__("io").BytesIO(os.urandom(300_000)), f"{i}.pdf") for i in range(2)]
        )

    def test_officer_csrf_check_never_parses_a_flood(self, officer_app):
        response = officer_app.test_client().post("/sign-out", data=_urlencoded(10 * MiB),
                                                  content_type="application/x-www-form-urlencoded")
        assert response.status_code == 413
