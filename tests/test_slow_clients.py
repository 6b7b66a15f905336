"""Slow clients: the service keeps serving others while clients trickle their requests.

50 clients send their request headers a byte every 2 s, and 50 send an upload's body a
byte every 2 s (the form's fields and half of the file at once, so that the server is
sealing the file, then the rest); each starts again whenever the server cuts it off. For WHISTLE_ATTACK_SECONDS (60 s by
default) ordinary page loads must keep a p95 under 1 s, and every submission and status
check of two reporters must succeed. Afterwards nothing of the slow uploads is stored:
no extra row, no file left in the blob store's incoming/ folder.

(a) nginx running the shipped site in front of gunicorn with the shipped settings;
(b) `whistle serve`, the embedded server, with nobody in front.

Each slow client has a loopback address of its own, so that a limit per address
is not what carries the test. Each run prints its figures (`-s` shows them): page loads'
p50/p95 before and during the attack, what happened to the slow clients, and the servers'
threads and memory (docs/benchmarks.md, "Slow clients"). WHISTLE_ATTACK_SLOW_HEADERS and
WHISTLE_ATTACK_SLOW_BODIES change the numbers of slow clients, for measuring.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from . import live
from .conftest import TIP, csrf_token, receipt_code

pytestmark = pytest.mark.attack

SECONDS = float(os.environ.get("WHISTLE_ATTACK_SECONDS", "60"))
SLOW_HEADERS = int(os.environ.get("WHISTLE_ATTACK_SLOW_HEADERS", "50"))
SLOW_BODIES = int(os.environ.get("WHISTLE_ATTACK_SLOW_BODIES", "50"))
P95_LIMIT = 1.0
ATTACKER_ADDRESS = re.compile(r"127\.[12]\.\d+\.\d+")


# --------------------------------------------------------------------------- the attack


def _slow_header_request(host: str) -> tuple[bytes, bytes]:
    """A request line and a first header at once, then a header that never ends."""
    return (
        f"GET /report HTTP/1.1\r\nHost: {host}\r\n".encode(),
        b"X-Slow: " + b"a" * 4000,
    )


def _slow_upload_request(host: str) -> tuple[bytes, bytes]:
    """A submission with a 200 kB file: its fields and the first 100 kB of the file at
    once (far enough for the server to be sealing the file, its blob open), then the rest
    a byte at a time."""
    content = b"SLOW-UPLOAD-" * 17000
    body, content_type = live.multipart(TIP, files=(("slow.bin", content),))
    start = body.index(content) + len(content) // 2
    head = (
        f"POST /report HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body[:start], body[start:]


class Target:
    """What the attack needs from a server under test."""

    name: str
    host: str
    folder: Path  # everything the servers write: instance, logs, temp folders
    instance: Path

    def browser(self) -> live.Browser:
        raise NotImplementedError

    def connect(self, source: str) -> socket.socket:
        raise NotImplementedError

    def pids(self) -> dict[str, list[int]]:
        """The processes to watch, by role."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class Sampler(threading.Thread):
    """Threads and resident memory of the server's processes, once a second."""

    def __init__(self, target: Target, stopping: threading.Event) -> None:
        super().__init__(daemon=True)
        self.target, self.stopping = target, stopping
        self.peak_threads: Counter[str] = Counter()
        self.peak_rss_kib: Counter[str] = Counter()

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            for role, pids in self.target.pids().items():
                statuses = [live.proc_status(pid) for pid in pids]
                threads = sum(int(s.get("Threads", "0")) for s in statuses)
                rss = sum(int(s.get("VmRSS", "0 kB").split()[0]) for s in statuses)
                self.peak_threads[role] = max(self.peak_threads[role], threads)
                self.peak_rss_kib[role] = max(self.peak_rss_kib[role], rss)


class Probes:
    """Page loads every 0.2 s and two reporters submitting and checking their codes."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.lock = threading.Lock()
        self.pages: list[float] = []
        self.page_status: Counter[str] = Counter()
        self.submissions: Counter[str] = Counter()
        self.checks: Counter[str] = Counter()
        self.codes: list[str] = []

    def _page_loop(self, stopping: threading.Event) -> None:
        browser = self.target.browser()
        paths = ("/", "/report", "/status")
        n = 0
        while not stopping.wait(0.2):
            started = time.perf_counter()
            try:
                status = str(browser.get(paths[n % len(paths)])[0])
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
            with self.lock:
                self.pages.append(time.perf_counter() - started)
                self.page_status[status] += 1
            n += 1

    def _reporter_loop(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            browser = self.target.browser()
            try:
                outcome, code = self._submit(browser)
            except (OSError, http.client.HTTPException) as exc:
                outcome, code = type(exc).__name__, None
            with self.lock:
                self.submissions[outcome] += 1
                if code:
                    self.codes.append(code)
            if code:
                try:
                    status, _, page = browser.get("/status")
                    status, _, _ = browser.post("/status", {"code": code, "csrf_token": csrf_token(page)})
                    outcome = str(status)
                except (OSError, http.client.HTTPException, AssertionError) as exc:
                    outcome = type(exc).__name__
                with self.lock:
                    self.checks[outcome] += 1
            stopping.wait(1.0)

    @staticmethod
    def _submit(browser: live.Browser) -> tuple[str, str | None]:
        status, _, page = browser.get("/report")
        if status != 200:
            return f"form {status}", None
        fields = {**TIP, "csrf_token": csrf_token(page)}
        status, _, page = browser.post("/report", fields, files=(("evidence.pdf", b"%PDF-1.4\n" + os.urandom(20_000)),))
        if status != 200 or 'class="code"' not in page:
            return f"submit {status}", None
        return "200", receipt_code(page)

    def run(self, seconds: float, reporters: bool = True) -> float:
        """Run for `seconds`; return the time actually taken."""
        stopping = threading.Event()
        threads = [threading.Thread(target=self._page_loop, args=(stopping,), daemon=True)]
        if reporters:
            threads += [threading.Thread(target=self._reporter_loop, args=(stopping,), daemon=True) for _ in range(2)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        stopping.wait(seconds)
        stopping.set()
        for thread in threads:
            thread.join(timeout=60)
        return time.monotonic() - started


def _attack(target: Target) -> None:
    incoming = target.instance / "blobs" / "incoming"
    warm = Probes(target)
    warm.run(3, reporters=False)  # first requests load templates, translations, connections
    quiet = Probes(target)
    quiet.run(5, reporters=False)

    stopping = threading.Event()
    header_head, header_drip = _slow_header_request(target.host)
    body_head, body_drip = _slow_upload_request(target.host)
    tricklers = [
        live.Trickler(lambda i=i: target.connect(f"127.1.{i // 250}.{i % 250 + 1}"), header_head, header_drip, stopping)
        for i in range(SLOW_HEADERS)
    ] + [
        live.Trickler(lambda i=i: target.connect(f"127.2.{i // 250}.{i % 250 + 1}"), body_head, body_drip, stopping)
        for i in range(SLOW_BODIES)
    ]
    sampler = Sampler(target, stopping)
    rows_before = live.stored_reports(target.instance)
    for trickler in tricklers:
        trickler.start()
    sampler.start()
    time.sleep(2)  # every slow client has its connection open
    under = Probes(target)
    elapsed = under.run(SECONDS - 2)
    stopping.set()
    for thread in [*tricklers, sampler]:
        thread.join(timeout=30)

    # The slow uploads went away mid-body: nothing of them may stay.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(incoming.iterdir()):
        time.sleep(0.2)
    leftovers = sorted(p.name for p in incoming.iterdir())
    rows = live.stored_reports(target.instance) - rows_before
    after = Probes(target)
    after.run(3, reporters=False)

    def outcomes(group: list[live.Trickler]) -> str:
        total: Counter[str] = Counter()
        for t in group:
            total.update(t.outcomes)
        lifetimes = [s for t in group for s in t.lifetimes]
        return (f"{dict(total.most_common())}; connection held p50 {live.percentile(lifetimes, 50):.0f} s, "
                f"max {max(lifetimes, default=0):.0f} s")

    print(
        f"\n{target.name}: {SLOW_HEADERS} slow-header and {SLOW_BODIES} slow-body clients for {elapsed + 2:.0f} s"
        f" (load average {os.getloadavg()[0]:.1f})\n"
        f"  page loads before: {len(quiet.pages)}, p50 {live.percentile(quiet.pages, 50) * 1000:.0f} ms,"
        f" p95 {live.percentile(quiet.pages, 95) * 1000:.0f} ms\n"
        f"  page loads during: {len(under.pages)}, p50 {live.percentile(under.pages, 50) * 1000:.0f} ms,"
        f" p95 {live.percentile(under.pages, 95) * 1000:.0f} ms, max {max(under.pages, default=0) * 1000:.0f} ms,"
        f" answers {dict(under.page_status)}\n"
        f"  submissions {dict(under.submissions)}, status checks {dict(under.checks)}\n"
        f"  slow headers: {outcomes(tricklers[:SLOW_HEADERS])}\n"
        f"  slow bodies:  {outcomes(tricklers[SLOW_HEADERS:])}\n"
        f"  peak threads {dict(sampler.peak_threads)}, peak resident memory (MiB)"
        f" { {k: round(v / 1024, 1) for k, v in sampler.peak_rss_kib.items()} }\n"
        f"  afterwards: {rows} new rows for {len(under.codes)} codes shown, incoming/ {leftovers or 'empty'},"
        f" page loads {dict(after.page_status)}"
    )
    assert set(under.page_status) == {"200"}, under.page_status
    assert live.percentile(under.pages, 95) < P95_LIMIT, f"p95 {live.percentile(under.pages, 95):.2f} s"
    assert set(under.submissions) == {"200"} and under.submissions["200"] >= 2, under.submissions
    assert set(under.checks) == {"303"}, under.checks
    assert rows == len(under.codes), "a slow upload was stored, or a shown code has no row"
    assert not leftovers, "a slow upload left a file in incoming/"
    assert set(after.page_status) == {"200"}, after.page_status
    # Refusing slow clients (nginx's timeouts, the app's 408s) wrote none of their addresses.
    found = [
        path.name for path in target.folder.rglob("*")
        if path.is_file() and ATTACKER_ADDRESS.search(path.read_bytes().decode("latin-1"))
    ]
    assert not found, f"a slow client's address was written to {found}"


# --------------------------------------------------------------------------- (a)


class ShippedStack(Target):
    name = "nginx + gunicorn as shipped"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        env = live.server_env(
            folder, trusted_proxies="1", ratelimit_storage_uri="memory://",
            ratelimit_submit="100000 per hour", ratelimit_status="100000 per hour",
        )
        self.instance = live.make_instance(folder, env)
        env["WHISTLE_INSTANCE"] = str(self.instance)
        self.gunicorn = live.Gunicorn(folder / "gunicorn", env)
        assert self.gunicorn.wait(), self.gunicorn.tail()
        self.nginx = live.Nginx(folder / "nginx", self.gunicorn.port)
        self.nginx.start()
        self.host = self.nginx.HOST_NAME

    def browser(self) -> live.Browser:
        return self.nginx.browser(timeout=30)

    def connect(self, source: str) -> socket.socket:
        return self.nginx.connect(source)

    def pids(self) -> dict[str, list[int]]:
        return {"gunicorn workers": self.gunicorn.workers(), "nginx workers": self.nginx.workers()}

    def stop(self) -> None:
        self.nginx.stop()
        self.gunicorn.stop()


# --------------------------------------------------------------------------- (b)


class EmbeddedServer(Target):
    name = "whistle serve"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        env = live.server_env(folder, ratelimit_submit="100000 per hour", ratelimit_status="100000 per hour")
        self.instance = live.make_instance(folder, env)
        self.server = live.DevServer(folder, env, self.instance)
        assert self.server.wait(), self.server.tail()
        self.host = f"127.0.0.1:{self.server.port}"

    def browser(self) -> live.Browser:
        return live.Browser(self.server.port, timeout=30)

    def connect(self, source: str) -> socket.socket:
        return socket.create_connection((live.HOST, self.server.port), timeout=10, source_address=(source, 0))

    def pids(self) -> dict[str, list[int]]:
        return {"whistle serve": [self.server.proc.pid]}

    def stop(self) -> None:
        self.server.stop()


# --------------------------------------------------------------------------- the test


@pytest.mark.parametrize("target", [ShippedStack, EmbeddedServer], ids=["nginx+gunicorn", "whistle serve"])
def test_server_serves_others_while_clients_trickle(tmp_path: Path, target: type[Target]):
    server = target(tmp_path)
    try:
        _attack(server)
    finally:
        server.stop()
