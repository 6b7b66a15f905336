"""The shipped deployment keeps its promises.

(a) gunicorn, started with deploy/gunicorn.conf.py, serves a whole reporter journey sent
    from a distinctive loopback address with a distinctive User-Agent, Referer and
    X-Forwarded-For, then every file it or the app wrote (logs, stdout, stderr, the instance
    folder with its SQLite database and sealed files, temp and working folders) and the
    limiter's Redis storage are searched for those values: none may be found. The same run
    checks that the rate limiter keys on the address nginx forwards (trusted_proxies=1).
(b) every route of the app answers with the security headers.
(c) the nginx site and the gunicorn settings say what the README and DESIGN.md promise.
(d) nginx runs the shipped site for real, in front of gunicorn (tests/live.py: a
    self-signed certificate, the placeholders and ports replaced, a minimal main
    configuration): the intake host over HTTPS, a journey through it, static files, the
    redirect from port 80, the onion host behind Tor's PROXY line; nothing it writes names
    the client; each client may have at most 10 uploads in progress.
(e) the officers' workspace in production: its own gunicorn (deploy/gunicorn-officers.conf.py)
    behind its own nginx host (deploy/nginx/whistle-officers.conf), run for real beside the
    reporters' site: the officers' host serves the sign-in page and no reporter page; the
    reporters' host and the onion host serve no officer page; the allow-list keeps other
    networks out; Tor forwards to the reporters' onion server alone; every systemd unit
    passes `systemd-analyze verify`.
"""

from __future__ import annotations

import logging
import os
import re
import runpy
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from whistle.config import Settings

from . import live
from .conftest import REDIS_URL, TIP, csrf_token, hidden, receipt_code, redis_reachable
from .live import Browser

GUNICORN_CONF, NGINX_SITE = live.GUNICORN_CONF, live.NGINX_SITE
GUNICORN_OFFICERS_CONF, NGINX_OFFICERS_SITE = live.GUNICORN_OFFICERS_CONF, live.NGINX_OFFICERS_SITE
TORRC = live.ROOT / "deploy" / "tor" / "torrc.snippet"
SYSTEMD = live.ROOT / "deploy" / "systemd"

CLIENT_ADDRESS = "127.0.0.77"
FORWARDED_FOR = "198.51.100.23"  # TEST-NET-2: what nginx would forward
OTHER_FORWARDED_FOR = "203.0.113.9"  # TEST-NET-3: a second client, for the limiter
USER_AGENT = "Mozilla/5.0 (WhistleProbe; needle-ua-5f2c) Gecko/20100101"
REFERER = "https://referrer.example/needle-ref-91ad?from=news"
NEEDLES = (
    CLIENT_ADDRESS,
    FORWARDED_FOR,
    OTHER_FORWARDED_FOR,
    USER_AGENT,
    "needle-ua-5f2c",
    REFERER,
    "needle-ref-91ad",
)
#: Redis database for the limiter in (a): not the one other tests flush.
LIMITER_REDIS_URL = re.sub(r"/\d+$", "/13", REDIS_URL)


# --------------------------------------------------------------------------- (a) helpers


def _raw_malformed_request(port: int) -> bytes:
    """A request gunicorn refuses itself, quoting a header in its error: the path on which
    gunicorn logs "Invalid request from ip=<address>: <error>"."""
    payload = (
        "GET / HTTP/1.1\r\nHost: whistle\r\n"
        f"User-Agent: {USER_AGENT}\r\nReferer: {REFERER}\r\n"
        f"X-Note: first line\r\n folded {USER_AGENT}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(CLIENT_ADDRESS, 0)) as s:
        s.sendall(payload)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------- (a)


def test_gunicorn_with_shipped_config_keeps_no_address_user_agent_or_referer(tmp_path: Path):
    import gunicorn  # noqa: F401  (in the [test] extra: a missing install fails here, it is not skipped)
    if os.name != "posix":
        pytest.skip("gunicorn runs on POSIX systems only")
    if not live.can_send_from(CLIENT_ADDRESS):
        pytest.skip(f"this system cannot send from {CLIENT_ADDRESS} (loopback is not a whole 127.0.0.0/8)")

    cwd, logs = tmp_path / "cwd", tmp_path / "logs"
    cwd.mkdir()
    env = live.server_env(tmp_path)
    instance = live.make_instance(tmp_path, env)

    use_redis = redis_reachable()
    if use_redis:
        import redis

        store = redis.Redis.from_url(LIMITER_REDIS_URL)
        workers = []  # the shipped worker count: the limiter's storage is shared
    else:
        store = None
        workers = ["--workers", "1"]  # memory:// storage is per process
    server = live.Gunicorn(
        logs,
        {
            **env,
            "WHISTLE_INSTANCE": str(instance),
            "WHISTLE_TRUSTED_PROXIES": "1",
            "WHISTLE_RATELIMIT_STORAGE_URI": LIMITER_REDIS_URL if use_redis else "memory://",
        },
        args=workers,
        cwd=cwd,
    )
    error_log, port = server.log, server.port
    try:
        if not server.wait(20):
            server.stop()
            pytest.skip("gunicorn did not start: " + server.tail())
        # One reporter's browser on a fixed source address, keeping the visit's cookie.
        browser = Browser(
            port,
            forwarded_for=FORWARDED_FOR,
            source_address=(CLIENT_ADDRESS, 0),
            headers={"User-Agent": USER_AGENT, "Referer": REFERER},
        )

        # A whole journey: landing page, report with a file, the saved-code check, status,
        # the case page, a reply with a file.
        status, headers, page = browser.get("/?lang=en")
        assert status == 200 and "Content-Security-Policy" in headers
        status, _, page = browser.get("/report")
        assert status == 200
        fields = {**TIP, "csrf_token": csrf_token(page)}
        status, _, page = browser.post("/report", fields, files=(("evidence.pdf", b"%PDF-1.4\n" + os.urandom(40_000)),))
        assert status == 200, page[:1500]
        code = receipt_code(page)
        status, _, saved = browser.post(
            "/report/saved", {"csrf_token": csrf_token(page), "code": hidden(page, "code"), "last_group": code.split()[-1]}
        )
        assert status == 200, saved[:1500]

        status, _, page = browser.get("/status")
        status, headers, _ = browser.post("/status", {"csrf_token": csrf_token(page), "code": code})
        assert status == 303 and headers["Location"].endswith("/case"), status
        status, _, case_page = browser.get("/case")
        assert status == 200 and 'name="text"' in case_page
        status, headers, _ = browser.post(
            "/case/reply", {"csrf_token": csrf_token(case_page), "text": "More detail about the contract."},
            files=(("photo.jpg", os.urandom(20_000)),),
        )
        assert status == 303, status

        # gunicorn refuses a malformed request itself, and logs it.
        answer = _raw_malformed_request(port)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]

        # The limiter keys on the address nginx forwards (ProxyFix, trusted_proxies=1):
        # this client is stopped at its hourly cap, another client is not.
        statuses = []
        for _ in range(40):
            status, _, _ = browser.post("/status", {"code": "0000 0000 0000 0000 0000 0000 0000"})
            statuses.append(status)
            if status == 429:
                break
        assert statuses[-1] == 429, f"no 429 after {len(statuses)} status checks: {sorted(set(statuses))}"
        assert set(statuses[:-1]) == {400}, statuses
        browser.forwarded_for = OTHER_FORWARDED_FOR
        status, _, _ = browser.post("/status", {"code": "0000"})
        assert status == 400, "another forwarded address shares the first one's limit"
        browser.forwarded_for = FORWARDED_FOR
        status, _, _ = browser.post("/status", {"code": "0000"})
        assert status == 429
    finally:
        server.stop()

    # Search everything written during the run.
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    found = []
    log_lines = 0
    scanned_bytes = 0
    for path in files:
        data = path.read_bytes()
        scanned_bytes += len(data)
        if path.parent == logs:
            log_lines += data.count(b"\n")
        for needle in NEEDLES:
            if needle.encode() in data or needle.encode("utf-16-le") in data:
                found.append(f"{needle!r} in {path.relative_to(tmp_path)}")
    redis_keys = 0
    if store is not None:
        for key in store.scan_iter("*"):
            redis_keys += 1
            value = store.dump(key) or b""
            for needle in NEEDLES:
                if needle.encode() in key or needle.encode() in value:
                    found.append(f"{needle!r} in Redis key {key!r}")
    assert not found, found

    # The logs were written and the refused request was logged, scrubbed.
    log_text = error_log.read_text("utf-8")
    assert "Booting worker" in log_text
    assert "Invalid request refused (ObsoleteFolding)" in log_text, log_text[-2000:]
    assert (instance / "whistle.sqlite3").stat().st_size > 0
    assert any((instance / "blobs").rglob("*")), "no sealed file was stored"
    print(
        f"\nscanned {len(files)} files ({scanned_bytes:,} bytes; {log_lines} log lines in"
        f" {len(list(logs.iterdir()))} log files) and {redis_keys} Redis keys for {len(NEEDLES)} values: none found"
    )


def test_limiter_keys_on_forwarded_address_behind_one_proxy(make_app):
    """trusted_proxies=1: the X-Forwarded-For nginx sets is the client; the proxy's own
    address and a client's forged X-Forwarded-For are not."""
    app = make_app(trusted_proxies=1, ratelimit_enabled=True, ratelimit_status="3 per hour")

    def post(forwarded: str, remote: str = "127.0.0.1") -> int:
        client = app.test_client()
        return client.post(
            "/status", data={"code": "1"},
            headers={"X-Forwarded-For": forwarded},
            environ_base={"REMOTE_ADDR": remote},
        ).status_code

    assert [post("198.51.100.23") for _ in range(3)] == [400, 400, 400]
    assert post("198.51.100.23") == 429
    assert post("198.51.100.23", remote="127.0.0.2") == 429  # the proxy's address does not matter
    assert post("203.0.113.9") == 400
    # nginx overwrites X-Forwarded-For with $remote_addr; were a forged value to reach the
    # app, only the last hop counts with one trusted proxy.
    assert post("10.9.9.9, 198.51.100.23") == 429


# --------------------------------------------------------------------------- (b)

#: Endpoints that may be framed by other sites (DESIGN.md: the embeddable statistics page).
EMBEDDABLE: set[str] = set()


def _check_headers(endpoint: str, method: str, response) -> None:
    where = f"{method} {endpoint} ({response.status_code})"
    csp = response.headers.get("Content-Security-Policy", "")
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert csp, f"{where}: no Content-Security-Policy"
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, f"{where}: {csp}"
    assert not {"script-src", "script-src-elem", "script-src-attr", "worker-src"} & directives.keys(), f"{where}: {csp}"
    assert directives.get("default-src") == "default-src 'none'", f"{where}: {csp}"
    if endpoint in EMBEDDABLE:
        assert "frame-ancestors" in directives and "*" not in directives["frame-ancestors"], f"{where}: {csp}"
    else:
        assert directives.get("frame-ancestors") == "frame-ancestors 'none'", f"{where}: {csp}"
    assert response.headers.get("Referrer-Policy") == "no-referrer", where
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    assert "no-store" in response.headers.get("Cache-Control", ""), where


def test_every_route_sends_the_security_headers(app, reporter):
    client = reporter.client
    code = reporter.submit_ok(files=[(__import__("io").BytesIO(b"evidence"), "a.txt")])
    assert reporter.open_case(code).status_code == 303
    token = csrf_token(client.get("/case").get_data(as_text=True))
    forms = {
        "reporter.report": dict(TIP),
        "reporter.saved": {"code": code, "last_group": code.split()[-1]},
        "reporter.receipt_text": {"code": code},
        "reporter.status": {"code": code},
        "reporter.reply": {"text": "A reply"},
    }

    rules = sorted(app.url_map.iter_rules(), key=lambda r: r.endpoint.endswith("close"))
    seen: set[tuple[str, str]] = set()
    for rule in rules:
        arguments = {arg: "style.css" if arg == "filename" else "1" for arg in rule.arguments}
        path = rule.build(arguments, append_unknown=False)[1] if rule.arguments else rule.rule
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            if method == "GET":
                responses = [client.get(path), client.get(path + ("&" if "?" in path else "?") + "lang=en")]
            else:
                data = {**forms.get(rule.endpoint, {}), "csrf_token": token}
                responses = [
                    client.post(path, data=data, content_type="multipart/form-data"),
                    client.post(path, data={}),  # no token, no fields: the error page
                ]
            for response in responses:
                _check_headers(rule.endpoint, method, response)
            seen.add((rule.endpoint, method))
    # The error pages too.
    for response in (client.get("/no-such-page"), client.delete("/report"), client.post("/report", data=b"x" * 10,
                     content_type="multipart/form-data; boundary=")):
        _check_headers("error page", response.request.method, response)

    endpoints = {e for e, _m in seen}
    assert {"reporter.landing", "reporter.report", "reporter.status", "reporter.case", "reporter.reply"} <= endpoints
    assert endpoints == {r.endpoint for r in app.url_map.iter_rules()}


def test_pages_with_the_code_or_case_data_are_never_cached(app, reporter):
    client = reporter.client
    submitted = reporter.submit()
    code = receipt_code(submitted.get_data(as_text=True))
    receipt = client.post(
        "/report/receipt.txt",
        data={"code": code, "csrf_token": csrf_token(submitted.get_data(as_text=True))},
    )
    assert receipt.status_code == 200 and code.replace(" ", "") in receipt.get_data(as_text=True).replace(" ", "")
    reporter.open_case(code)
    case = client.get("/case")
    assert case.status_code == 200
    for response in (submitted, receipt, case):
        assert response.headers["Cache-Control"] == "no-store"
        _check_headers("journey", "-", response)


# --------------------------------------------------------------------------- (c) nginx


def _nginx_blocks(text: str, kind: str = "server") -> list[str]:
    """The bodies of the top-level `kind { ... }` blocks, comments removed."""
    text = re.sub(r"#[^\n]*", "", text)
    blocks = []
    for match in re.finditer(rf"(?m)^\s*{kind}\s*\{{", text):
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        blocks.append(text[match.end(): i - 1])
    return blocks


def _directives(block: str, name: str) -> list[str]:
    value = r"""((?:"[^"]*"|'[^']*'|[^;"'])*)"""
    return [m.group(1).strip() for m in re.finditer(rf"(?m)^\s*{name}\s+{value};", block)]


def _size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


@pytest.fixture(scope="module")
def nginx_site() -> str:
    return NGINX_SITE.read_text("utf-8")


@pytest.fixture(scope="module")
def intake_servers(nginx_site) -> dict[str, str]:
    """The server blocks that pass requests to the app, by role: clear web and onion."""
    servers = {}
    for block in _nginx_blocks(nginx_site):
        if "proxy_pass" not in block:
            continue
        listens = " ".join(_directives(block, "listen"))
        servers["onion" if "8081" in listens else "clear"] = block
    assert set(servers) == {"clear", "onion"}, "expected one clear-web and one onion intake server"
    return servers


def test_nginx_keeps_no_access_log_and_no_client_in_the_error_log(nginx_site, intake_servers):
    assert "server_tokens off;" in re.sub(r"#[^\n]*", "", nginx_site)
    for block in _nginx_blocks(nginx_site):  # every server in the site, intake or not
        assert _directives(block, "access_log") == ["off"], block[:300]
        for value in _directives(block, "error_log"):
            assert value.split()[-1] in ("crit", "alert", "emerg") or value.split()[0] == "/dev/null", value
        assert _directives(block, "error_log"), "each server names its error log and its level"
    for role, block in intake_servers.items():
        # The only address the app sees is the one nginx sets; a client's own header is replaced.
        assert "proxy_set_header X-Forwarded-For" in block, role
        assert "$proxy_add_x_forwarded_for" not in block, role


def test_nginx_hsts_on_the_clear_web_host_only_and_onion_location(intake_servers):
    clear, onion = intake_servers["clear"], intake_servers["onion"]
    hsts = [v for v in _directives(clear, "add_header") if v.startswith("Strict-Transport-Security")]
    assert hsts, "no HSTS on the HTTPS server"
    assert all(int(re.search(r"max-age=(\d+)", v).group(1)) >= 31536000 and v.endswith("always") for v in hsts)
    assert any(v.startswith("Onion-Location") for v in _directives(clear, "add_header"))
    assert "proxy_set_header X-Forwarded-For $remote_addr" in clear
    assert not [v for v in _directives(onion, "add_header") if v.startswith("Strict-Transport-Security")]
    assert any("443" in v and "ssl" in v for v in _directives(clear, "listen"))
    assert _directives(clear, "ssl_protocols") == ["TLSv1.2 TLSv1.3"]
    assert all(v.startswith("127.0.0.1:8081") for v in _directives(onion, "listen"))


def test_nginx_body_size_matches_the_app_and_streams_uploads(intake_servers):
    default = Settings(instance_path=Path("."), secret_key="x" * 32, database_url="", blob_dir=Path("."))
    for role, block in intake_servers.items():
        sizes = _directives(block, "client_max_body_size")
        assert len(sizes) == 1 and _size(sizes[0]) == default.max_content_length, (role, sizes)
        # Uploads go to the app as they arrive (it seals them); nginx's buffering would write
        # them in clear to client_body_temp_path. Answers (case data) never spill to disk.
        assert _directives(block, "proxy_request_buffering") == ["off"], role
        assert _directives(block, "proxy_max_temp_file_size") == ["0"], role
        assert _directives(block, "proxy_http_version") == ["1.1"], role


def test_nginx_reads_headers_against_a_time_limit_on_every_port(nginx_site):
    """nginx takes client_header_timeout from a port's default server (it applies before the
    host name is known): each port's default server must set it, or nginx's 60 s applies."""
    ports: dict[str, list[str]] = {}
    for block in _nginx_blocks(nginx_site):
        for listen in _directives(block, "listen"):
            port = re.search(r"(?:^|:)(\d+)(?:\s|$)", listen).group(1)
            if "default_server" in listen or port not in ports:
                ports.setdefault(port, []).insert(0 if "default_server" in listen else len(ports.get(port, [])), block)
    assert set(ports) == {"80", "443", "8081"}, ports.keys()
    for port, blocks in ports.items():
        timeouts = _directives(blocks[0], "client_header_timeout")
        assert timeouts and int(timeouts[0].rstrip("s")) <= 60, f"port {port}'s default server: {timeouts}"


# --------------------------------------------------------------------------- (d) nginx for real


#: The officers' site as a municipality restricts it to its own network: here loopback's
#: 127.0.0.1 (and ::1), so that a client from 127.0.0.77 stands for the internet.
OFFICER_NETWORK = "127.0.0.1"


def _officer_site_for(network: str) -> str:
    """The shipped officers' site with its allow-list set as the file's header says."""
    text = NGINX_OFFICERS_SITE.read_text("utf-8")
    assert text.count("    default 1;\n") == 1
    return text.replace("    default 1;\n", f"    default 0;\n    {network} 1;\n    ::1 1;\n")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The shipped nginx sites in front of gunicorn with the shipped settings, all running:
    the reporters' app and, on its own host and process, the officers' app."""
    import gunicorn  # noqa: F401  (in the [test] extra: a missing install fails here, it is not skipped)
    folder = tmp_path_factory.mktemp("stack")
    env = live.server_env(
        folder, trusted_proxies="1", ratelimit_storage_uri="memory://",
        ratelimit_submit="1000 per hour", ratelimit_status="1000 per hour",
    )
    instance = live.make_instance(folder, env)
    gunicorn = live.Gunicorn(folder / "gunicorn", {**env, "WHISTLE_INSTANCE": str(instance)})
    officers = live.Gunicorn(
        folder / "gunicorn-officers", {**env, "WHISTLE_INSTANCE": str(instance)}, config=GUNICORN_OFFICERS_CONF
    )
    nginx = live.Nginx(
        folder / "nginx", gunicorn.port, officer_upstream_port=officers.port,
        officer_site=_officer_site_for(OFFICER_NETWORK),
    )
    try:
        assert gunicorn.wait(), gunicorn.tail()
        assert officers.wait(), officers.tail()
        nginx.start()
        yield nginx
    finally:
        nginx.stop()
        officers.stop()
        gunicorn.stop()


def test_nginx_serves_the_shipped_site_and_writes_no_client(stack):
    if not live.can_send_from(CLIENT_ADDRESS):
        pytest.skip(f"this system cannot send from {CLIENT_ADDRESS} (loopback is not a whole 127.0.0.0/8)")
    checked = stack.check()
    assert checked.returncode == 0, checked.stderr
    headers = {"User-Agent": USER_AGENT, "Referer": REFERER}
    browser = stack.browser(source_address=(CLIENT_ADDRESS, 0), headers=headers)

    # The intake host over HTTPS: the app's pages with HSTS and Onion-Location, a reporter's
    # journey through nginx (the upload streamed to the app), nginx's own static files.
    status, sent, page = browser.get("/")
    assert status == 200 and "max-age=63072000" in sent["Strict-Transport-Security"]
    assert sent["Onion-Location"] == f"http://{stack.ONION_NAME}/"
    status, _, page = browser.get("/report")
    status, _, page = browser.post(
        "/report", {**TIP, "csrf_token": csrf_token(page)}, files=(("evidence.pdf", b"%PDF-1.4\n" + os.urandom(300_000)),)
    )
    assert status == 200, page[:1500]
    code = receipt_code(page)
    status, _, page = browser.get("/status")
    status, sent, _ = browser.post("/status", {"code": code, "csrf_token": csrf_token(page)})
    assert status == 303 and sent["Location"].endswith("/case")
    status, sent, css = browser.get("/static/style.css")
    assert status == 200 and "text/css" in sent["Content-Type"] and sent["X-Content-Type-Options"] == "nosniff"
    assert css == (live.ROOT / "whistle" / "static" / "style.css").read_text("utf-8")
    # Bodies over client_max_body_size are refused by nginx before they are sent.
    connection = browser.connection()
    connection.putrequest("POST", "/report", skip_host=True)
    connection.putheader("Host", stack.HOST_NAME)
    connection.putheader("Content-Length", str(200 * 1024 * 1024))
    connection.endheaders()
    assert connection.getresponse().status == 413
    connection.close()

    # Port 80 sends to HTTPS; another name is refused during the handshake.
    status, sent, _ = Browser(stack.http_port, host_name=stack.HOST_NAME, source_address=(CLIENT_ADDRESS, 0)).get("/case?x=1")
    assert status == 301 and sent["Location"] == f"https://{stack.HOST_NAME}/case?x=1"
    with pytest.raises(ssl.SSLError):
        Browser(stack.https_port, tls=stack.tls, host_name="other.example", source_address=(CLIENT_ADDRESS, 0)).get("/")

    # The onion host, behind Tor's PROXY line: the app's pages, no HSTS.
    status, sent, _ = stack.onion_browser(headers=headers).get("/")
    assert status == 200 and "Strict-Transport-Security" not in sent and "Onion-Location" not in sent

    # Nothing nginx wrote names the client: no access log at all (Debian's main configuration
    # has one, the site switches it off), an empty error log for the site.
    written = [p for p in stack.folder.rglob("*") if p.is_file() and p.suffix != ".pem"]
    found = [
        f"{needle!r} in {path.name}" for path in written for needle in NEEDLES
        if needle.encode() in path.read_bytes()
    ]
    assert not found, found
    assert not stack.access_log.exists() or stack.access_log.stat().st_size == 0
    site_log = stack.folder / "whistle-error.log"
    assert not site_log.exists() or site_log.stat().st_size == 0, site_log.read_text()


def _held_uploads(open_connection, host: str, count: int) -> list[str]:
    """Start `count` uploads that never finish, one after the other on one client; return
    what each got within 2 s ("held" if nginx passed it on and it is still running)."""
    body, content_type = live.multipart(TIP, files=(("slow.bin", b"x" * 100_000),))
    head = (
        f"POST /report HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body[:2000]
    sockets = []
    try:
        for _ in range(count):
            sock = open_connection()
            sock.sendall(head)
            sockets.append(sock)
            time.sleep(0.05)
        time.sleep(2)
        outcomes = []
        for sock in sockets:
            sock.settimeout(0.5)
            try:
                answer = sock.recv(100)
            except (TimeoutError, ssl.SSLWantReadError, socket.timeout):
                answer = b"held"
            outcomes.append(answer.split(b"\r\n")[0].decode("latin-1").replace("HTTP/1.1 ", ""))
        return outcomes
    finally:
        for sock in sockets:
            sock.close()


def test_nginx_limits_uploads_in_progress_per_client(stack):
    if not live.can_send_from("127.0.0.94"):
        pytest.skip("this system cannot send from other loopback addresses")
    # Clear web: per address. Page loads from the same address are not counted.
    outcomes = _held_uploads(lambda: stack.connect("127.0.0.94"), stack.HOST_NAME, 12)
    assert outcomes.count("held") == 10 and outcomes[10:] == ["429 Too Many Requests"] * 2, outcomes
    assert stack.browser(source_address=("127.0.0.94", 0)).get("/report")[0] == 200
    assert _held_uploads(lambda: stack.connect("127.0.0.95"), stack.HOST_NAME, 1) == ["held"]

    # Onion: every visitor comes from 127.0.0.1; the limit is per Tor circuit.
    def onion(circuit: int):
        sock = socket.create_connection((live.HOST, stack.onion_port), timeout=10)
        sock.sendall(f"PROXY TCP6 fc00:dead:beef:4dad::0:{circuit:x} ::1 65535 80\r\n".encode())
        return sock

    outcomes = _held_uploads(lambda: onion(7), stack.ONION_NAME, 12)
    assert outcomes.count("held") == 10 and outcomes[10:] == ["429 Too Many Requests"] * 2, outcomes
    assert _held_uploads(lambda: onion(8), stack.ONION_NAME, 1) == ["held"]


# --------------------------------------------------------------------------- (c) gunicorn


@pytest.fixture(scope="module")
def gunicorn_settings() -> dict:
    import gunicorn  # noqa: F401  (in the [test] extra: a missing install fails here, it is not skipped)
    return runpy.run_path(str(GUNICORN_CONF))


def test_gunicorn_config_has_no_access_log_and_valid_settings(gunicorn_settings):
    from gunicorn.config import Config

    assert gunicorn_settings["accesslog"] is None
    assert "logconfig_dict" not in gunicorn_settings  # would switch gunicorn's access log on
    assert gunicorn_settings["capture_output"] is False
    assert gunicorn_settings["worker_class"] == "gthread"
    cfg = Config()
    for name, value in gunicorn_settings.items():
        if name in cfg.settings:
            cfg.set(name, value)  # gunicorn's own validators
    assert cfg.accesslog is None and cfg.logger_class.__name__ == "AddresslessLogger"


def test_gunicorn_logger_scrubs_addresses_headers_and_exception_text(gunicorn_settings, tmp_path: Path):
    from gunicorn.config import Config
    from gunicorn.http.errors import InvalidHeader

    cfg = Config()
    cfg.set("errorlog", str(tmp_path / "error.log"))
    cfg.set("accesslog", str(tmp_path / "access.log"))  # configured by mistake: still nothing
    logger = gunicorn_settings["AddresslessLogger"](cfg)
    try:
        raise InvalidHeader(f"User-Agent: {USER_AGENT}")
    except InvalidHeader as exc:
        logger.warning(f"Invalid request from ip={CLIENT_ADDRESS}: {exc}")
    try:
        raise ValueError(f"bad value from {REFERER}")
    except ValueError:
        logger.exception("Error handling request /status?code=1234 %s", "x")
    logger.info("peer 2001:db8::7 and %s", FORWARDED_FOR)
    logging.getLogger("whistle.test").error("app says %s", OTHER_FORWARDED_FOR)
    logger.access(None, None, {"REMOTE_ADDR": CLIENT_ADDRESS}, None)
    for handler in logger.error_log.handlers:
        handler.flush()
    text = (tmp_path / "error.log").read_text("utf-8")
    for handler in list(logging.getLogger().handlers):
        if getattr(handler, "_whistle", False):
            logging.getLogger().removeHandler(handler)
    for handler in list(logger.error_log.handlers):
        logger.error_log.removeHandler(handler)
        handler.close()
    assert "Invalid request refused (InvalidHeader)" in text
    assert "ValueError (message withheld)" in text and "code=1234" not in text
    assert "peer [address] and [address]" in text and "app says [address]" in text
    for needle in (*NEEDLES, "2001:db8::7"):
        assert needle not in text, needle
    access = tmp_path / "access.log"
    assert not access.exists() or access.stat().st_size == 0


# --------------------------------------------------------------------------- (e) the officers' workspace


def _paths(factory, folder: Path) -> set[str]:
    """Every path of an app (arguments filled in), static files left out: both apps serve
    the same static files."""
    app = factory(
        {"instance_path": folder, "secret_key": "x" * 40, "database_url": f"sqlite:///{folder / 'paths.sqlite3'}"},
        require_recipients=False,
    )
    paths = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        arguments = {arg: "2569" if arg == "year" else "h1" if arg == "period" else "1" for arg in rule.arguments}
        paths.add(rule.build(arguments, append_unknown=False)[1] if rule.arguments else rule.rule)
    return paths


@pytest.fixture(scope="module")
def app_paths(tmp_path_factory) -> tuple[set[str], set[str]]:
    """(the reporters' app's paths, the officers' app's paths)."""
    from whistle import create_app, create_officer_app

    folder = tmp_path_factory.mktemp("paths")
    return _paths(create_app, folder), _paths(create_officer_app, folder)


def test_officer_host_serves_the_sign_in_page_through_nginx(stack):
    checked = stack.check()
    assert checked.returncode == 0, checked.stderr
    browser = stack.officer_browser(source_address=(OFFICER_NETWORK, 0))
    status, sent, page = browser.get("/sign-in")
    assert status == 200, page[:500]
    assert 'name="passphrase"' in page and 'name="code"' in page and 'name="csrf_token"' in page
    assert "max-age=63072000" in sent["Strict-Transport-Security"]
    assert "Onion-Location" not in sent  # the workspace has no onion address
    assert sent["X-Robots-Tag"] == "noindex, nofollow"
    assert "default-src 'none'" in sent["Content-Security-Policy"] and sent["X-Content-Type-Options"] == "nosniff"
    assert "whistle_officer" in browser.cookies and "whistle" not in browser.cookies  # the officers' own cookie
    # The host's root sends to signing in; nginx serves the static files here too.
    status, sent, _ = browser.get("/")
    assert status in (302, 303) and sent["Location"].endswith("/sign-in")
    status, sent, css = browser.get("/static/style.css")
    assert status == 200 and css == (live.ROOT / "whistle" / "static" / "style.css").read_text("utf-8")
    assert sent["X-Robots-Tag"] == "noindex, nofollow" and "max-age=63072000" in sent["Strict-Transport-Security"]
    # A sign-in goes through nginx to the app (CSRF token and all, over HTTPS with no
    # Referer, as the pages' Referrer-Policy makes browsers send) and back with its answer.
    status, _, page = browser.get("/sign-in")
    status, _, answer = browser.post(
        "/sign-in", {"username": "nobody", "passphrase": "wrong passphrase", "code": "", "csrf_token": csrf_token(page)}
    )
    assert status == 401 and 'name="passphrase"' in answer, (status, answer[:500])
    # Port 80 of the officers' host sends to its HTTPS, not to the intake host.
    status, sent, _ = Browser(stack.http_port, host_name=stack.OFFICER_HOST_NAME, source_address=(OFFICER_NETWORK, 0)).get("/cases")
    assert status == 301 and sent["Location"] == f"https://{stack.OFFICER_HOST_NAME}/cases"
    # Bodies over the cap are refused by nginx, as on the intake host.
    connection = browser.connection()
    connection.putrequest("POST", "/cases/1/messages", skip_host=True)
    connection.putheader("Host", stack.OFFICER_HOST_NAME)
    connection.putheader("Content-Length", str(200 * 1024 * 1024))
    connection.endheaders()
    assert connection.getresponse().status == 413
    connection.close()


def test_reporter_and_onion_hosts_answer_no_officer_path(stack, app_paths):
    reporter_paths, officer_paths = app_paths
    assert {"/sign-in", "/cases", "/cases/1", "/audit", "/admin/accounts", "/record"} <= officer_paths
    only_officers = officer_paths - reporter_paths
    browsers = {
        "intake": stack.browser(source_address=(OFFICER_NETWORK, 0)),
        "onion": stack.onion_browser(),
        # Tor Browser asking the onion server for the officers' name: still the onion server.
        "onion, officers' name": live.Browser(
            stack.onion_port, host_name=stack.OFFICER_HOST_NAME,
            proxy_line=b"PROXY TCP6 fc00:dead:beef:4dad::0:9 ::1 65535 80\r\n",
        ),
    }
    for where, browser in browsers.items():
        for path in sorted(only_officers):
            status, sent, page = browser.get(path)
            assert status == 404, f"{where} {path}: {status}"
            assert 'name="passphrase"' not in page, f"{where} {path}"
        status, _, _ = browser.post("/sign-in", {"username": "officer-1", "passphrase": "x", "code": ""})
        assert status in (404, 405), f"{where} POST /sign-in: {status}"
        # The paths both apps have ("/") are the reporters' pages here.
        for path in sorted(officer_paths & reporter_paths):
            status, sent, page = browser.get(path)
            assert status == 200 and 'name="passphrase"' not in page, f"{where} {path}"
        assert "whistle_officer" not in browser.cookies, where


def test_officer_host_answers_no_reporter_path(stack, app_paths):
    reporter_paths, officer_paths = app_paths
    assert {"/report", "/status", "/case", "/manual", "/statistics/2569"} <= reporter_paths
    browser = stack.officer_browser(source_address=(OFFICER_NETWORK, 0))
    for path in sorted(reporter_paths - officer_paths):
        status, sent, page = browser.get(path)
        # Not signed in, the officers' app sends every path it does not know to signing
        # in; it has no reporter page to show.
        assert status in (302, 303, 404), f"{path}: {status}"
        if status != 404:
            assert sent["Location"].endswith("/sign-in"), f"{path}: {sent['Location']}"
    status, sent, page = browser.post("/report", dict(TIP))
    assert status in (302, 303, 400, 404) and "tracking code" not in page.lower(), status
    assert "whistle" not in browser.cookies  # never the reporters' cookie


def test_officer_host_refuses_addresses_outside_the_allow_list(stack):
    if not live.can_send_from(CLIENT_ADDRESS):
        pytest.skip(f"this system cannot send from {CLIENT_ADDRESS} (loopback is not a whole 127.0.0.0/8)")
    outside = stack.officer_browser(source_address=(CLIENT_ADDRESS, 0))
    for path in ("/sign-in", "/", "/static/style.css", "/cases/1"):
        status, _, page = outside.get(path)
        assert status == 403 and 'name="passphrase"' not in page, (path, status)
    status, _, _ = Browser(stack.http_port, host_name=stack.OFFICER_HOST_NAME, source_address=(CLIENT_ADDRESS, 0)).get("/")
    assert status == 403
    # The reporters' host is not restricted.
    assert stack.browser(source_address=(CLIENT_ADDRESS, 0)).get("/")[0] == 200
    # Nothing was written about the refused client.
    site_log = stack.folder / "whistle-error.log"
    assert not site_log.exists() or CLIENT_ADDRESS.encode() not in site_log.read_bytes()


@pytest.fixture(scope="module")
def officer_servers() -> list[str]:
    blocks = _nginx_blocks(NGINX_OFFICERS_SITE.read_text("utf-8"))
    assert len(blocks) == 2, "a port-80 server and the HTTPS server"
    return blocks


def test_officer_site_keeps_the_intake_sites_promises(officer_servers, intake_servers):
    site = NGINX_OFFICERS_SITE.read_text("utf-8")
    default = Settings(instance_path=Path("."), secret_key="x" * 32, database_url="", blob_dir=Path("."))
    for block in officer_servers:
        assert _directives(block, "access_log") == ["off"]
        assert all(v.split()[-1] == "crit" for v in _directives(block, "error_log")) and _directives(block, "error_log")
        assert _directives(block, "server_tokens") == ["off"]
        assert "$whistle_officer_allowed = 0" in block  # the allow-list applies to both
        assert _directives(block, "server_name") == ["officers.example.go.th"]
        # Never a default server: whistle.conf's take any other name.
        assert not any("default_server" in v for v in _directives(block, "listen"))
    https = next(b for b in officer_servers if "proxy_pass" in b)
    clear = intake_servers["clear"]
    for name in ("ssl_protocols", "ssl_ciphers", "client_max_body_size", "client_body_timeout",
                 "client_header_timeout", "send_timeout", "keepalive_timeout", "reset_timedout_connection",
                 "proxy_request_buffering", "proxy_max_temp_file_size", "proxy_http_version", "proxy_buffers",
                 "proxy_send_timeout", "proxy_read_timeout"):
        assert _directives(https, name) == _directives(clear, name), name
    assert _size(_directives(https, "client_max_body_size")[0]) == default.max_content_length
    assert "proxy_set_header X-Forwarded-For $remote_addr" in https
    assert [v for v in _directives(https, "add_header") if v.startswith("Strict-Transport-Security")]
    assert not [v for v in _directives(https, "add_header") if v.startswith("Onion-Location")]
    assert _directives(https, "proxy_pass") == ["http://whistle_officers_app"]
    # As shipped, open to every address (the allow-list is documented, off by default).
    assert re.search(r"geo \$whistle_officer_allowed \{\s*default 1;", re.sub(r"#[^\n]*", "", site))


def test_only_the_officers_host_reaches_the_officers_app(nginx_site, officer_servers):
    officers_site = NGINX_OFFICERS_SITE.read_text("utf-8")
    officer_upstream = _nginx_blocks(officers_site, "upstream whistle_officers_app")
    intake_upstream = _nginx_blocks(nginx_site, "upstream whistle_app")
    assert _directives(officer_upstream[0], "server") == ["127.0.0.1:8001"]
    assert _directives(intake_upstream[0], "server") == ["127.0.0.1:8000"]
    # The two gunicorn files listen where the sites expect.
    reporters = runpy.run_path(str(GUNICORN_CONF))
    officers = runpy.run_path(str(GUNICORN_OFFICERS_CONF))
    assert reporters["bind"] == ["127.0.0.1:8000"] and officers["bind"] == ["127.0.0.1:8001"]
    assert reporters["wsgi_app"] == "whistle:create_app()" and officers["wsgi_app"] == "whistle:create_officer_app()"
    assert officers["logger_class"].__name__ == "AddresslessLogger" and officers["accesslog"] is None
    # whistle.conf (the intake and onion servers) never proxies to the officers' app.
    assert "whistle_officers_app" not in nginx_site and "8001" not in re.sub(r"#[^\n]*", "", nginx_site)
    for block in _nginx_blocks(nginx_site):
        assert all(v == "http://whistle_app" for v in _directives(block, "proxy_pass"))
    # Tor forwards to the onion server of whistle.conf alone.
    torrc = [line.split() for line in TORRC.read_text("utf-8").splitlines() if line and not line.startswith("#")]
    ports = [line[1:] for line in torrc if line[0] == "HiddenServicePort"]
    assert ports == [["80", "127.0.0.1:8081"]], ports
    # Port 80's and 443's default servers are the intake site's: a request for another
    # name never lands on the officers' host.
    for port in ("80", "443"):
        defaults = [b for b in _nginx_blocks(nginx_site) if any(
            re.match(rf"(\[::\]:)?{port}\b", v) and "default_server" in v for v in _directives(b, "listen"))]
        assert len(defaults) == 1, port


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path):
    """Every shipped unit, with the project's folder where the README puts it (here, this
    checkout, so that the programs named by ExecStart exist)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is not installed (.ci/run installs it: apt-get install -y systemd)"
    units = sorted(SYSTEMD.iterdir())
    assert {"whistle.service", "whistle-officers.service"} <= {u.name for u in units}
    scripts = Path(sys.executable).parent  # where this environment's gunicorn and whistle are
    assert (scripts / "gunicorn").exists() and (scripts / "whistle").exists(), scripts
    for unit in units:
        text = unit.read_text("utf-8").replace("/srv/whistle/app/.venv/bin", str(scripts))
        (tmp_path / unit.name).write_text(text.replace("/srv/whistle/app", str(live.ROOT)), "utf-8")
    result = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / u.name) for u in units)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The officers' unit runs the officers' gunicorn file, hardened as the reporters' one.
    reporters = (SYSTEMD / "whistle.service").read_text("utf-8")
    officers = (SYSTEMD / "whistle-officers.service").read_text("utf-8")
    assert "--config /srv/whistle/app/deploy/gunicorn-officers.conf.py" in officers
    settings = lambda text: sorted(l for l in text.splitlines() if l and not l.startswith(("#", "Description", "ExecStart")))  # noqa: E731
    assert settings(reporters) == settings(officers)
