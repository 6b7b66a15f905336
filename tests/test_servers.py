"""Both servers, gunicorn with the shipped settings and `whistle serve`, refuse what cannot
be a whole request, and store and log nothing of it.

(a) A body that ends before its Content-Length, the client having closed its side: once
    cut inside the file, once after a form that looks whole. No code is shown, no row is
    stored, no file stays in the blob store's incoming/ folder; the next submission works.
(b) A chunked body with a bad chunk size is a translated 400, not a 500.
(c) `whistle serve`: a malformed request line, a TLS ClientHello and a URL over 64 KiB are
    answered 400, 400 and 414, and what the server wrote names no client address and
    holds no traceback.
(d) The body guard (whistle/wsgi_guard.py), with its grace and rate scaled down: a body
    trickling below the minimum rate gets the translated 408 page and nothing is stored;
    a body above the rate, pauses included, is stored; headers that trickle past their
    time on `whistle serve` are cut off with a 408.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy import select as sql_select
from werkzeug.serving import make_server

from whistle import db, wsgi_guard
from whistle.models import Report

from . import live
from .conftest import TIP, csrf_token, receipt_code

CLIENT_ADDRESS = "127.0.0.91"


def _exchange(port: int, data: bytes, *, source: str | None = None, close_write: bool = True) -> bytes:
    """Send `data` on a new connection, close our sending side, return the whole answer."""
    with socket.create_connection((live.HOST, port), timeout=20, source_address=(source, 0) if source else None) as s:
        s.sendall(data)
        if close_write:
            s.shutdown(socket.SHUT_WR)
        return live.read_until_closed(s)


def _empty_soon(folder: Path, seconds: float = 10) -> list[str]:
    """What is left in `folder` once it is empty or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(folder.iterdir()):
        time.sleep(0.05)
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(params=["gunicorn", "whistle serve"])
def server(request, tmp_path: Path):
    """(port, instance) of a running server of either kind, with the limits out of reach."""
    env = live.server_env(
        tmp_path, ratelimit_storage_uri="memory://", ratelimit_submit="10000 per hour", ratelimit_status="10000 per hour"
    )
    instance = live.make_instance(tmp_path, env)
    if request.param == "gunicorn":
        import gunicorn  # noqa: F401  (in the [test] extra: fails, never skips)
        process = live.Gunicorn(tmp_path / "gunicorn", {**env, "WHISTLE_INSTANCE": str(instance)}, args=["--workers", "1"])
    else:
        process = live.DevServer(tmp_path, env, instance)
    try:
        assert process.wait(), process.tail()
        yield process.port, instance
    finally:
        process.stop()


def _submission(port: int, content: bytes) -> tuple[bytes, bytes]:
    """A reporter's whole submission of a tip with one file, as the browser would send it
    after loading the form: the body, and the request's head without its Content-Length
    (the caller adds it, and the blank line)."""
    browser = live.Browser(port)
    status, _, page = browser.get("/report")
    assert status == 200
    body, content_type = live.multipart({**TIP, "csrf_token": csrf_token(page)}, files=(("evidence.pdf", content),))
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    head = f"POST /report HTTP/1.1\r\nHost: whistle\r\nCookie: {cookie}\r\nContent-Type: {content_type}\r\n"
    return body, head.encode()


# --------------------------------------------------------------------------- (a)


@pytest.mark.parametrize("cut", ["inside the file", "after a whole form"])
def test_server_body_shorter_than_its_length_is_not_stored(server, cut):
    port, instance = server
    body, head = _submission(port, b"E" * 200_000)
    if cut == "inside the file":
        declared, sent = len(body), body[: len(body) // 2]
    else:
        declared, sent = len(body) + 1000, body
    answer = _exchange(port, head + f"Content-Length: {declared}\r\n\r\n".encode() + sent)

    assert b'class="code"' not in answer, "a code was shown for a body that never arrived whole"
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert _empty_soon(instance / "blobs" / "incoming") == []
    assert live.stored_reports(instance) == 0
    # The server carries on: a whole submission is stored.
    browser = live.Browser(port)
    status, _, page = browser.post("/report", {**TIP, "csrf_token": csrf_token(browser.get("/report")[2])})
    assert status == 200 and receipt_code(page)
    assert live.stored_reports(instance) == 1


# --------------------------------------------------------------------------- (b)


def test_server_bad_chunk_size_is_a_400(server):
    port, _instance = server
    browser = live.Browser(port)
    token = browser.token("/status")
    form = f"csrf_token={token}&code=1234".encode()
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    request = (
        f"POST /status HTTP/1.1\r\nHost: whistle\r\nAccept-Language: en\r\nCookie: {cookie}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode() + b"zz\r\n" + form + b"\r\n0\r\n\r\n"
    answer = _exchange(port, request)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b"<html" in answer and b"Internal Server Error" not in answer, answer[-1500:]  # the app's own page


# --------------------------------------------------------------------------- (c)


def _client_hello() -> bytes:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="whistle.test")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_embedded_server_answers_malformed_requests_and_logs_no_address(tmp_path: Path):
    if not live.can_send_from(CLIENT_ADDRESS):
        pytest.skip(f"this system cannot send from {CLIENT_ADDRESS} (loopback is not a whole 127.0.0.0/8)")
    env = live.server_env(tmp_path)
    server = live.DevServer(tmp_path, env, live.make_instance(tmp_path, env))
    try:
        assert server.wait(), server.tail()
        answers = {
            "malformed request line": _exchange(server.port, b"GET / HTTP/1.1 trailing\r\n\r\n", source=CLIENT_ADDRESS),
            "TLS ClientHello": _exchange(server.port, _client_hello(), source=CLIENT_ADDRESS),
            "URL over 64 KiB": _exchange(
                server.port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: whistle\r\n\r\n", source=CLIENT_ADDRESS
            ),
        }
        assert live.Browser(server.port, source_address=(CLIENT_ADDRESS, 0)).get("/")[0] == 200
    finally:
        server.stop()
    assert answers["malformed request line"].startswith(b"HTTP/1.1 400"), answers
    assert answers["TLS ClientHello"].startswith(b"HTTP/1.1 400"), answers
    assert answers["URL over 64 KiB"].startswith(b"HTTP/1.1 414"), answers
    output = server.output()
    assert output.count("malformed request") == 3, output[-3000:]
    assert CLIENT_ADDRESS not in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]


# --------------------------------------------------------------------------- (d)


@pytest.fixture
def guarded(make_app, monkeypatch):
    """An app served by Werkzeug in a thread, with the guard's grace and rate scaled down
    (0.5 s, 2 kB/s) and reads of 1 KiB, so that slowness shows in a second or two."""
    monkeypatch.setattr(wsgi_guard, "GRACE_SECONDS", 0.5)
    monkeypatch.setattr(wsgi_guard, "MIN_RATE", 2000)
    monkeypatch.setattr(wsgi_guard, "READ_SIZE", 1024)
    app = make_app()
    server = make_server(live.HOST, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, server.server_port
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _upload_slowly(port: int, head: bytes, pieces: list[tuple[bytes, float]]) -> bytes:
    """Send a request's head, then its body as (bytes, pause after them) pieces, until the
    server answers; return the answer."""
    with socket.create_connection((live.HOST, port), timeout=30) as s:
        s.sendall(head)
        for data, pause in pieces:
            if select.select([s], [], [], 0)[0]:  # the server answered (or gave up) early
                break
            s.sendall(data)
            time.sleep(pause)
        return live.read_until_closed(s)


def _stored(app) -> int:
    with app.app_context():
        return db.session().scalar(sql_select(func.count(Report.id)))


@pytest.mark.parametrize("speed", ["trickling", "slow with pauses"])
def test_body_guard_refuses_a_trickle_and_keeps_a_slow_upload(guarded, speed):
    app, port = guarded
    content = b"%PDF-1.4\n" + b"x" * 20_000
    body, head = _submission(port, content)
    first = body[: body.index(content) + 2000]
    rest = body[len(first):]
    if speed == "trickling":
        # 10 bytes every 0.2 s: 50 B/s, far below the (scaled) 2 kB/s.
        pieces = [(first, 0.2)] + [(rest[i : i + 10], 0.2) for i in range(0, 600, 10)]
    else:
        # 6 kB/s in 3 kB pieces, with one pause of 1 s halfway.
        pieces = [(first, 0.5)] + [(rest[i : i + 3000], 1.0 if i == 9000 else 0.5) for i in range(0, len(rest), 3000)]
    answer = _upload_slowly(port, head + f"Content-Length: {len(body)}\r\n\r\n".encode(), pieces)

    incoming = Path(app.extensions["whistle.blobs"].incoming)
    if speed == "trickling":
        assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
        assert "การเชื่อมต่อช้าเกินไป".encode() in answer  # "The connection was too slow", in Thai (the default)
        assert b'class="code"' not in answer
        assert _empty_soon(incoming) == []
        assert _stored(app) == 0
    else:
        assert answer.startswith(b"HTTP/1.1 200") and b'class="code"' in answer, answer[:300]
        assert _stored(app) == 1


def test_embedded_server_cuts_headers_that_trickle_past_their_time(tmp_path: Path, monkeypatch):
    from whistle import cli

    monkeypatch.setattr(cli, "HEADER_SECONDS", 1.0)
    server_class, handler = cli._addressless_server()
    app = lambda environ, start_response: start_response("200 OK", []) or [b"ok"]  # noqa: E731
    server = server_class(live.HOST, 0, app, handler=handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stopping = threading.Event()
    try:
        trickler = live.Trickler(
            lambda: socket.create_connection((live.HOST, server.port), timeout=10),
            b"GET / HTTP/1.1\r\nHost: whistle\r\n", b"X-Slow: " + b"a" * 100, stopping, interval=0.2,
        )
        trickler.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not trickler.lifetimes:
            time.sleep(0.05)
        stopping.set()
        trickler.join(timeout=10)
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert trickler.lifetimes, "the slow headers were never cut off"
    assert trickler.outcomes["408"] >= 1, trickler.outcomes
