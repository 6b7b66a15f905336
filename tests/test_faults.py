"""Faults: the deployed service (gunicorn with deploy/gunicorn.conf.py) under the failures a
real server meets, checked from outside like a reporter's browser would see them.

(a) A worker is killed with SIGKILL in the middle of a submission: once while the upload
    is still arriving, once while the tracking code's Argon2id derivation runs. No code
    reaches the client, no row is stored, no row points at a missing sealed file, and what
    is left in the blob store's `incoming/` folder is ciphertext that
    `whistle sweep --older-than 0` removes. The next submission succeeds.
(b) PostgreSQL is stopped (immediate mode, as in a crash) and started again while several
    reporters submit and check codes. Requests during the outage end quickly in a
    translated 503 page; afterwards every code that was shown opens its case, and there are
    exactly as many rows as codes shown.
(c) The rate limiter's Redis is stopped: the limited POSTs answer 503 at once, the GET
    pages keep working, and all works again when Redis is back.

The PostgreSQL cluster and the Redis server of (b) and (c) are private to this module
(temporary folders, free loopback ports), so stopping them disturbs nobody else. Every
wait is bounded. Deselect with `-m "not faults"`.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from whistle import codes

from . import live
from .conftest import TIP, csrf_token, receipt_code

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
CHEAP_COST = "\n[code_cost]\ntime_cost = 1\nmemory_cost = 256\nparallelism = 1\n"


# --------------------------------------------------------------------------- helpers


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _whistle(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from whistle.cli import main; main()", *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )


class Browser(live.Browser):
    """One reporter's browser (cookies kept, one connection per request) that can submit a
    tip and check a code."""

    def submit(self, what: str = TIP["what"], files: tuple[tuple[str, bytes], ...] = ()):
        status, _, page = self.get("/report")
        if status != 200:
            return status, page
        status, _, page = self.post("/report", {**TIP, "what": what, "csrf_token": csrf_token(page)}, files)
        return status, page

    def check(self, code: str) -> int:
        status, _, page = self.get("/status")
        if status != 200:
            return status
        status, _, _ = self.post("/status", {"code": code, "csrf_token": csrf_token(page)})
        return status


def _translated_error(page: str) -> bool:
    """A page of the app (not gunicorn's bare "Internal Server Error"), with no traceback."""
    return "<html" in page.lower() and "Traceback" not in page and "Internal Server Error" not in page


class Server:
    """gunicorn with the shipped configuration, on a free port, logs in a folder."""

    def __init__(self, tmp: Path, env: dict[str, str], workers: int = 1) -> None:
        import gunicorn  # noqa: F401  (in the [test] extra: fails, never skips)
        if os.name != "posix" or not Path("/proc").is_dir():
            pytest.skip("these tests need gunicorn on Linux (/proc)")
        self.port = live.free_port()
        self.log = tmp / "gunicorn.log"
        (tmp / "wtmp").mkdir(exist_ok=True)
        command = [
            sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF),
            "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
            "--error-logfile", str(self.log), "--worker-tmp-dir", str(tmp / "wtmp"),
        ]
        self.proc = subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not live.wait_listening(self.port, 30, self.proc):
            self.stop()
            pytest.fail("gunicorn did not start:\n" + self.tail())

    def workers(self) -> list[int]:
        return _children(self.proc.pid)

    def wait_workers(self, count: int, exclude: set[int] = frozenset(), seconds: float = 20) -> list[int]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pids = [p for p in self.workers() if p not in exclude]
            if len(pids) >= count:
                return pids
            time.sleep(0.05)
        raise AssertionError(f"gunicorn did not bring back {count} workers:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        live.stop(self.proc)


def _base_env(tmp: Path) -> dict[str, str]:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    return {
        # Every request comes from 127.0.0.1 here: limits that a test cannot reach.
        "WHISTLE_RATELIMIT_SUBMIT": "10000 per hour",
        "WHISTLE_RATELIMIT_STATUS": "10000 per hour",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(tempfile.gettempdir()),
        "LANG": "C.UTF-8",
        "WHISTLE_UNSAFE_FAST_KDF": "1",
    }


def _make_instance(tmp: Path, env: dict[str, str], cost: str = CHEAP_COST) -> Path:
    instance = tmp / "instance"
    init = _whistle("init", "--instance", str(instance), "--recovery-dir", str(tmp / "recovery-key"), env=env)
    assert init.returncode == 0, init.stderr[-2000:]
    with (instance / "config.toml").open("a", encoding="utf-8") as fh:
        fh.write(cost)
    return instance


# --------------------------------------------------------------------------- (a)


MARKER = b"PLAINTEXT-NEVER-ON-DISK-7c1e"


def _stored(instance: Path) -> tuple[int, list[str]]:
    engine = create_engine(f"sqlite:///{instance / 'whistle.sqlite3'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("select count(*) from reports")).scalar_one()
            blobs = list(conn.execute(text("select blob_name from attachments")).scalars())
    finally:
        engine.dispose()
    return rows, blobs


def _start_upload(port: int, page_cookie: dict[str, str], token: str, file_bytes: int):
    """Open a submission whose file is declared `file_bytes` long; return the socket, the
    rest of the body, and the part already sent."""
    boundary = "----whistle" + uuid.uuid4().hex
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in {**TIP, "csrf_token": token}.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="evidence.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    content = (MARKER * (file_bytes // len(MARKER) + 1))[:file_bytes]
    body = head + content + f"\r\n--{boundary}--\r\n".encode()
    cookie = "; ".join(f"{k}={v}" for k, v in page_cookie.items())
    request = (
        f"POST /report HTTP/1.1\r\nHost: whistle\r\nAccept-Language: en\r\nCookie: {cookie}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(request)
    return sock, body


def _answer(sock: socket.socket) -> bytes:
    """Whatever the server sends before the connection ends (b"" if nothing)."""
    chunks = []
    try:
        sock.settimeout(10)
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, socket.timeout):
        pass
    finally:
        sock.close()
    return b"".join(chunks)


def test_sigkill_worker_mid_submission_leaves_no_tip_and_no_code(tmp_path: Path):
    env = _base_env(tmp_path)
    # A derivation slow enough (about half a second, 64 MiB) to be caught while it runs.
    instance = _make_instance(tmp_path, env, "\n[code_cost]\ntime_cost = 8\nmemory_cost = 65536\nparallelism = 1\n")
    server = Server(tmp_path, {**env, "WHISTLE_INSTANCE": str(instance)}, workers=1)
    incoming = instance / "blobs" / "incoming"
    try:
        first = Browser(server.port)
        status, page = first.submit(files=(("before.pdf", b"%PDF-1.4\n" + os.urandom(30_000)),))
        assert status == 200, page[:1500]
        first_code = receipt_code(page)
        assert _stored(instance)[0] == 1

        # 1. Killed while the upload is arriving: 4 MiB declared, 1 MiB sent.
        victim = Browser(server.port)
        status, _, page = victim.get("/report")
        assert status == 200
        [worker] = server.wait_workers(1)
        sock, body = _start_upload(server.port, victim.cookies, csrf_token(page), 4 * 1024 * 1024)
        sock.sendall(body[: 1024 * 1024])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(p.stat().st_size > 256 * 1024 for p in incoming.iterdir()):
            time.sleep(0.02)
        assert any(incoming.iterdir()), "the upload never started sealing"
        os.kill(worker, signal.SIGKILL)
        try:
            sock.sendall(body[1024 * 1024 : 1024 * 1024 + 65536])
        except OSError:
            pass
        answer = _answer(sock)
        assert b"class=\"code\"" not in answer and not answer.startswith(b"HTTP/1.1 200"), answer[:300]
        [worker] = server.wait_workers(1, exclude={worker})

        # 2. Killed while the code's Argon2id derivation runs (its 64 MiB are resident).
        status, _, page = victim.get("/report")
        assert status == 200, server.tail()
        [worker] = server.wait_workers(1)
        idle = _rss_kib(worker)
        sock, body = _start_upload(server.port, victim.cookies, csrf_token(page), 100_000)
        sock.sendall(body)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _rss_kib(worker) < idle + 40 * 1024:
            time.sleep(0.002)
        assert _rss_kib(worker) >= idle + 40 * 1024, "the derivation was not seen running"
        os.kill(worker, signal.SIGKILL)
        answer = _answer(sock)
        assert answer == b"", answer[:300]  # no page at all, so no code
        server.wait_workers(1, exclude={worker})

        # Nothing stored for either; every stored row's file is there.
        rows, blobs = _stored(instance)
        assert rows == 1
        assert blobs and all((instance / "blobs" / name).is_file() for name in blobs)
        leftovers = sorted(p for p in incoming.iterdir())
        assert len(leftovers) == 2, leftovers  # one partial, one whole but never claimed
        for path in leftovers:
            assert MARKER not in path.read_bytes(), f"plaintext in {path.name}"
        assert {p.name for p in (instance / "blobs").iterdir() if p.is_file()} == set(blobs)

        swept = _whistle("sweep", "--instance", str(instance), "--older-than", "0", env=env)
        assert swept.returncode == 0, swept.stderr[-2000:]
        assert "Removed 2 " in swept.stdout, swept.stdout
        assert not any(incoming.iterdir())
        assert all((instance / "blobs" / name).is_file() for name in blobs)

        # The service recovered: a new submission and both codes work.
        after = Browser(server.port)
        status, page = after.submit(files=(("after.pdf", b"%PDF-1.4\n" + os.urandom(30_000)),))
        assert status == 200, page[:1500]
        assert Browser(server.port).check(receipt_code(page)) == 303
        assert Browser(server.port).check(first_code) == 303
        rows, blobs = _stored(instance)
        assert rows == 2 and len(blobs) == 2 and all((instance / "blobs" / n).is_file() for n in blobs)
    finally:
        server.stop()


# --------------------------------------------------------------------------- (b)


def _pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster in a temporary folder, on a free loopback port."""

    def __init__(self) -> None:
        bindir = _pg_bin()
        if bindir is None:
            raise AssertionError("PostgreSQL server binaries (initdb, pg_ctl) are missing: .ci/run installs postgresql")
        self.prefix: list[str] = []
        self.folder = Path(tempfile.mkdtemp(prefix="whistle-faults-pg-"))
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            runuser = shutil.which("runuser")
            try:
                import pwd

                owner = pwd.getpwnam("postgres")
            except KeyError:
                owner = None
            if runuser is None or owner is None:
                shutil.rmtree(self.folder, ignore_errors=True)
                pytest.skip("running as root without a 'postgres' user and runuser to start PostgreSQL")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self.prefix = [runuser, "-u", "postgres", "--"]
        self.bindir = bindir
        self.data = self.folder / "data"
        self.port = live.free_port()
        initdb = subprocess.run(
            [*self.prefix, str(bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
             "-E", "UTF8", "--no-sync"],
            capture_output=True, text=True, timeout=120,
        )
        if initdb.returncode != 0:
            shutil.rmtree(self.folder, ignore_errors=True)
            pytest.skip(f"initdb failed: {initdb.stderr[-500:]}")
        self.start()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args],
            capture_output=True, text=True, timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=60"
        done = self._ctl("-o", options, "-l", str(self.folder / "log"), "-w", "-t", "30", "start")
        assert done.returncode == 0, done.stderr + (self.folder / "log").read_text(errors="replace")[-2000:]

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "-t", "30", "stop")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def private_postgres():
    import psycopg  # noqa: F401  (in the [test] extra)
    cluster = PrivatePostgres()
    yield cluster
    cluster.destroy()


def test_postgres_restart_under_load_fails_cleanly_and_loses_nothing(tmp_path: Path, private_postgres: PrivatePostgres):
    pg = private_postgres
    env = {**_base_env(tmp_path), "WHISTLE_DATABASE_URL": pg.url}
    instance = _make_instance(tmp_path, env)
    upgrade = _whistle("db", "upgrade", "--instance", str(instance), env=env)
    assert upgrade.returncode == 0, upgrade.stderr[-2000:]
    server = Server(tmp_path, {**env, "WHISTLE_INSTANCE": str(instance)}, workers=2)

    lock = threading.Lock()
    shown: list[str] = []  # every code a client was shown
    outcomes: list[tuple[str, int, float, bool]] = []  # kind, status, seconds, translated page
    stop = threading.Event()
    bound = 12.0  # seconds: no request may take longer, outage or not

    def record(kind: str, status: int, seconds: float, page: str = "") -> None:
        with lock:
            outcomes.append((kind, status, seconds, status < 500 or _translated_error(page)))

    def submitter(n: int) -> None:
        for i in range(200):
            if stop.is_set():
                return
            browser = Browser(server.port, timeout=bound)
            started = time.monotonic()
            try:
                status, _, page = browser.get("/report")
                if status == 200:
                    status, _, page = browser.post("/report", {**TIP, "what": f"tip {n}-{i}", "csrf_token": csrf_token(page)})
            except (OSError, http.client.HTTPException) as exc:
                record("submit", -1, time.monotonic() - started, type(exc).__name__)
                time.sleep(0.1)
                continue
            record("submit", status, time.monotonic() - started, page)
            if status == 200:
                with lock:
                    shown.append(receipt_code(page))
            elif "class=\"code\"" in page:
                raise AssertionError(f"a code was shown on a {status} page")
            time.sleep(0.05)

    def checker() -> None:
        for _ in range(400):
            if stop.is_set():
                return
            with lock:
                code = shown[-1] if shown else None
            if code is None:
                time.sleep(0.05)
                continue
            browser = Browser(server.port, timeout=bound)
            started = time.monotonic()
            try:
                status, _, page = browser.get("/status")
                if status == 200:
                    status, _, page = browser.post("/status", {"code": code, "csrf_token": csrf_token(page)})
            except (OSError, http.client.HTTPException) as exc:
                record("status", -1, time.monotonic() - started, type(exc).__name__)
                time.sleep(0.1)
                continue
            record("status", status, time.monotonic() - started, page)
            time.sleep(0.05)

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=checker) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20  # workers boot on their first requests
        while time.monotonic() < deadline and len(shown) < 8:
            time.sleep(0.05)
        before = len(shown)
        pg.stop("immediate")  # as in a crash: connections cut, no checkpoint
        time.sleep(2.0)
        pg.start()
        time.sleep(4.0)
        stop.set()
        for t in threads:
            t.join(timeout=bound + 5)
        assert not any(t.is_alive() for t in threads), "a client thread hung"
    finally:
        stop.set()
        server_log = "\n".join(line for line in server.tail(2000).splitlines() if "database unavailable" not in line)[-6000:]

    try:
        failures = [o for o in outcomes if o[1] not in (200, 303)]
        assert before > 0, f"nothing was submitted before the restart {outcomes[:10]}\n{server_log}"
        assert failures, "the outage was not seen by any request"
        # Clean failures: an app page (503), never a bare 500, a hang or a dropped connection.
        unclean = [o for o in failures if o[1] != 503 or not o[3]]
        assert not unclean, f"unclean failures {unclean[:10]}\n{server_log}"
        assert max(o[2] for o in outcomes) < bound
        # Recovered: the last requests of each kind succeeded.
        for kind, ok in (("submit", 200), ("status", 303)):
            assert [o[1] for o in outcomes if o[0] == kind][-3:] == [ok] * 3, (kind, outcomes[-12:])

        # Every code shown opens its case; as many rows as codes shown.
        for code in shown:
            assert Browser(server.port).check(code) == 303, code
        engine = create_engine(pg.url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("select lookup from reports")).scalars().all()
        finally:
            engine.dispose()
        assert len(rows) == len(shown) == len(set(rows))
        assert sorted(rows) == sorted(codes.parse_code(c).lookup for c in shown)
    finally:
        server.stop()
    print(
        f"\n{len(shown)} tips stored and opened; {len(failures)} requests failed during the outage, all with a"
        f" translated 503; longest request {max(o[2] for o in outcomes):.2f} s"
    )


# --------------------------------------------------------------------------- (c)


class PrivateRedis:
    def __init__(self, folder: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise AssertionError("redis-server is missing: .ci/run installs redis-server")
        import redis  # noqa: F401  (in the [test] extra)
        self.folder = folder
        self.port = live.free_port()
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        assert live.wait_listening(self.port, 10, self.proc), "redis-server did not start"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


def test_redis_down_costly_posts_refused_quickly_pages_served_then_recovered(tmp_path: Path):
    redis_folder = tmp_path / "redis"
    redis_folder.mkdir()
    store = PrivateRedis(redis_folder)
    env = _base_env(tmp_path)
    instance = _make_instance(tmp_path, env)
    server = Server(
        tmp_path,
        {**env, "WHISTLE_INSTANCE": str(instance), "WHISTLE_RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{store.port}/0"},
        workers=2,
    )
    try:
        browser = Browser(server.port)
        status, page = browser.submit()
        assert status == 200, page[:1500]
        code = receipt_code(page)
        assert browser.check(code) == 303

        store.stop()
        for _ in range(3):  # several times, so both workers meet the dead storage
            for path in ("/", "/report", "/status"):
                status, _, _ = browser.get(path)
                assert status == 200, path
            started = time.monotonic()
            status, page = browser.submit()
            assert status == 503 and _translated_error(page) and 'class="code"' not in page, (status, page[:500])
            assert time.monotonic() - started < 3.0
            started = time.monotonic()
            assert browser.check(code) == 503
            assert time.monotonic() - started < 3.0
        assert server.proc.poll() is None and len(server.workers()) == 2

        store.start()
        deadline = time.monotonic() + 15
        status = 0
        while time.monotonic() < deadline:  # the limiter reconnects on its next request
            status, page = browser.submit()
            if status == 200:
                break
            time.sleep(0.2)
        assert status == 200, page[:1500]
        assert browser.check(receipt_code(page)) == 303
        assert browser.check(code) == 303
    finally:
        server.stop()
        store.stop()
