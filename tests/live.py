"""Support for tests and benchmarks that speak HTTP to a real server process.

It owns what tests/test_deploy.py, tests/test_faults.py, tests/test_slow_clients.py and
bench/load.py share when they start gunicorn, nginx (or Redis) on loopback and talk to them
like a browser would: a free port, waiting until the port listens, stopping the process,
multipart/form-data bodies, a `Browser` that keeps its cookies across requests (one
connection per request, plain HTTP or HTTPS by name) and reads the form's CSRF token,
`Gunicorn` and `Nginx` running the shipped configuration files, and `Trickler`, a client
that sends its request a byte at a time. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from http.cookies import SimpleCookie
from pathlib import Path

HOST = "127.0.0.1"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
NGINX_SITE = ROOT / "deploy" / "nginx" / "whistle.conf"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_listening(port: int, seconds: float, proc: subprocess.Popen | None = None) -> bool:
    """True once something accepts connections on the port; False after `seconds`, or as
    soon as `proc` (the process meant to listen) has ended."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def can_send_from(address: str) -> bool:
    """Whether this system lets a socket bind to `address` (a loopback address other than
    127.0.0.1 needs the whole 127.0.0.0/8 on the loopback interface, as on Linux)."""
    try:
        with socket.socket() as s:
            s.bind((address, 0))
        return True
    except OSError:
        return False


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the other side sends until it closes the connection (or resets it)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def stored_reports(instance: Path) -> int:
    """The number of tips in an instance's SQLite database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{instance / 'whistle.sqlite3'}")
    try:
        with engine.connect() as conn:
            return conn.execute(text("select count(*) from reports")).scalar_one()
    finally:
        engine.dispose()


def stop(proc: subprocess.Popen, timeout: float = 15, kill_timeout: float = 5) -> None:
    """SIGTERM, then SIGKILL if the process has not ended within `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=kill_timeout)


def multipart(
    fields: Mapping[str, str | bytes], files: Iterable[tuple[str, bytes]] = (), file_field: str = "files"
) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type: text fields (str values are sent
    as UTF-8, bytes as they are) and files, each as a part named `file_field`."""
    boundary = "----whistle" + uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + (value if isinstance(value, bytes) else value.encode())
        + b"\r\n"
        for name, value in fields.items()
    ]
    for filename, content in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class _NamedTLSConnection(http.client.HTTPSConnection):
    """HTTPS to a loopback port, asking for (and checking the certificate of) a host name
    that no DNS knows: what a browser does once the name resolves to this machine."""

    def __init__(self, name: str, port: int, context: ssl.SSLContext, **kwargs) -> None:
        super().__init__(HOST, port, context=context, **kwargs)
        self.name = name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.name)


class _ProxyProtocolConnection(http.client.HTTPConnection):
    """Plain HTTP that first sends a PROXY protocol line, as Tor does to an onion
    service's port (HiddenServiceExportCircuitID haproxy)."""

    def __init__(self, port: int, proxy_line: bytes, **kwargs) -> None:
        super().__init__(HOST, port, **kwargs)
        self.proxy_line = proxy_line

    def connect(self) -> None:
        super().connect()
        self.sock.sendall(self.proxy_line)


class Browser:
    """One visitor's browser: keeps the visit's cookies, one connection per request.

    `forwarded_for` is sent as X-Forwarded-For (what nginx would add), `source_address` is
    the local (host, port) to send from, `headers` go with every request. With `tls` (a
    context that trusts the server's certificate) and `host_name` it speaks HTTPS to that
    name, as a browser would to nginx; with `proxy_line` it starts each connection with it.
    """

    def __init__(
        self,
        port: int,
        *,
        timeout: float = 20,
        forwarded_for: str | None = None,
        source_address: tuple[str, int] | None = None,
        headers: Mapping[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        host_name: str | None = None,
        proxy_line: bytes | None = None,
    ) -> None:
        self.port = port
        self.timeout = timeout
        self.forwarded_for = forwarded_for
        self.source_address = source_address
        self.extra_headers = dict(headers or {})
        if host_name:
            self.extra_headers["Host"] = host_name
        self.tls = tls
        self.host_name = host_name
        self.proxy_line = proxy_line
        self.cookies: dict[str, str] = {}

    def connection(self) -> http.client.HTTPConnection:
        options = {"timeout": self.timeout, "source_address": self.source_address}
        if self.tls is not None:
            return _NamedTLSConnection(self.host_name or HOST, self.port, self.tls, **options)
        if self.proxy_line is not None:
            return _ProxyProtocolConnection(self.port, self.proxy_line, **options)
        return http.client.HTTPConnection(HOST, self.port, **options)

    def keep_cookies(self, response: http.client.HTTPResponse) -> None:
        """Take the response's Set-Cookie headers; a cookie set empty or with max-age=0 is dropped."""
        for value in response.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(value)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        forwarded_for: str | None = None,
    ):
        """Send one request; return (status, headers, body decoded as UTF-8)."""
        headers = {**self.extra_headers, "Accept-Language": "en"}
        if forwarded_for or self.forwarded_for:
            headers["X-Forwarded-For"] = forwarded_for or self.forwarded_for
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if content_type:
            headers["Content-Type"] = content_type
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        self.keep_cookies(response)
        return response.status, response.headers, data.decode("utf-8", "replace")

    def get(self, path: str):
        return self.request("GET", path)

    def post(
        self,
        path: str,
        fields: Mapping[str, str],
        files: Iterable[tuple[str, bytes]] = (),
        forwarded_for: str | None = None,
    ):
        body, content_type = multipart(fields, files)
        return self.request("POST", path, body, content_type, forwarded_for)

    def token(self, path: str) -> str | None:
        """The CSRF token of the form on the page at `path` (None if there is none)."""
        status, _, page = self.get(path)
        match = CSRF.search(page) if status == 200 else None
        return match.group(1) if match else None


# --------------------------------------------------------------------------- processes


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (gunicorn's or nginx's workers)."""
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return kids


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict ("Threads", "VmRSS", ...); empty once the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""


#: A tracking-code cost cheap enough for tests, appended to an instance's config.toml.
CHEAP_CODE_COST = "\n[code_cost]\ntime_cost = 1\nmemory_cost = 256\nparallelism = 1\n"


def server_env(folder: Path, **settings: str) -> dict[str, str]:
    """A clean environment for a server process, with its HOME and TMPDIR in `folder`, the
    key files' passphrase KDF made cheap, and `settings` as WHISTLE_<NAME> variables."""
    for name in ("home", "tmp"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder / "home"),
        "TMPDIR": str(folder / "tmp"),
        "LANG": "C.UTF-8",
        "WHISTLE_UNSAFE_FAST_KDF": "1",
    }
    env.update({f"WHISTLE_{name.upper()}": value for name, value in settings.items()})
    return env


def whistle_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from whistle.cli import main; main()", *args]


def make_instance(folder: Path, env: Mapping[str, str], config: str = CHEAP_CODE_COST) -> Path:
    """`whistle init` into folder/instance (recovery key in folder/recovery-key), with
    `config` appended to its config.toml."""
    instance = folder / "instance"
    init = subprocess.run(
        whistle_command("init", "--instance", str(instance), "--recovery-dir", str(folder / "recovery-key")),
        cwd=folder, env=dict(env), capture_output=True, text=True, timeout=60,
    )
    assert init.returncode == 0, init.stderr[-2000:]
    with (instance / "config.toml").open("a", encoding="utf-8") as fh:
        fh.write(config)
    return instance


class DevServer:
    """`whistle serve` (the embedded server) on free loopback ports, the reporters' app on
    `port` and the officers' on `officer_port`; its stdout and stderr are files in `folder`."""

    def __init__(self, folder: Path, env: Mapping[str, str], instance: Path) -> None:
        self.port, self.officer_port = free_port(), free_port()
        self.stdout, self.stderr = folder / "serve-stdout.txt", folder / "serve-stderr.txt"
        command = whistle_command(
            "serve", "--instance", str(instance), "--port", str(self.port), "--officer-port", str(self.officer_port)
        )
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(command, cwd=folder, env=dict(env), stdout=out, stderr=err)

    def wait(self, seconds: float = 30) -> bool:
        return wait_listening(self.port, seconds, self.proc)

    def tail(self, lines: int = 30) -> str:
        return tail(self.stderr, lines) or f"exit status {self.proc.poll()}"

    def output(self) -> str:
        return "".join(path.read_text("utf-8", "replace") for path in (self.stdout, self.stderr) if path.exists())

    def stop(self) -> None:
        stop(self.proc)


class Gunicorn:
    """gunicorn with the shipped deploy/gunicorn.conf.py, on a free loopback port; its
    error log, stdout and stderr are files in `folder`. Settings the shipped file leaves
    to the command line (`--workers 1`, say) go in `args`."""

    def __init__(
        self,
        folder: Path,
        env: Mapping[str, str],
        *,
        args: Iterable[str] = (),
        cwd: Path | None = None,
        config: Path = GUNICORN_CONF,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "gunicorn-tmp").mkdir(exist_ok=True)
        self.port = free_port()
        self.log = folder / "gunicorn-error.log"
        self.stdout, self.stderr = folder / "gunicorn-stdout.txt", folder / "gunicorn-stderr.txt"
        command = [
            sys.executable, "-m", "gunicorn", "--config", str(config),
            "--bind", f"{HOST}:{self.port}", "--error-logfile", str(self.log),
            "--worker-tmp-dir", str(folder / "gunicorn-tmp"), *args,
        ]
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(command, cwd=cwd or folder, env=dict(env), stdout=out, stderr=err)

    def wait(self, seconds: float = 30) -> bool:
        """True once it listens; False if it did not within `seconds` or ended."""
        return wait_listening(self.port, seconds, self.proc)

    def workers(self) -> list[int]:
        return children(self.proc.pid)

    def tail(self, lines: int = 30) -> str:
        return tail(self.log, lines) or tail(self.stderr, lines) or f"exit status {self.proc.poll()}"

    def stop(self) -> None:
        stop(self.proc)


# --------------------------------------------------------------------------- nginx


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def self_signed_certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` (and its key), valid for a day; PEM files in `folder`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def _replace(text: str, old: str, new: str, *, regex: bool = False) -> str:
    """Replace every `old`; fail if there is none, so that a change to the shipped site's
    shape shows here instead of a test silently running something else."""
    pattern = old if regex else re.escape(old)
    result, count = re.subn(pattern, new, text)
    assert count, f"the shipped nginx site no longer contains {old!r}"
    return result


class Nginx:
    """nginx running the shipped site (deploy/nginx/whistle.conf) for real, on free loopback
    ports, in front of the app at `upstream_port`.

    The site is used as the README installs it, with its placeholders replaced (the host
    name, the onion name, the project's folder), a self-signed certificate in place of
    certbot's, its log folder and ports moved here. A minimal main configuration, modelled
    on Debian's (an access log at the http level, which the site must switch off; 768
    connections per worker), includes it, with the pid file and temp folders in `folder`.
    """

    HOST_NAME = "whistle.test"
    ONION_NAME = "whistletestonionaddressxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.onion"

    def __init__(self, folder: Path, upstream_port: int, *, site: str | None = None) -> None:
        binary = nginx_binary()
        assert binary, "nginx is not installed (.ci/run installs it: apt-get install -y nginx)"
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.cert, key = self_signed_certificate(folder, self.HOST_NAME)
        self.https_port, self.http_port, self.onion_port = free_port(), free_port(), free_port()
        text = site if site is not None else NGINX_SITE.read_text("utf-8")
        text = _replace(text, "/etc/letsencrypt/live/whistle.example.go.th/fullchain.pem", str(self.cert))
        text = _replace(text, "/etc/letsencrypt/live/whistle.example.go.th/privkey.pem", str(key))
        text = _replace(text, "whistle.example.go.th", self.HOST_NAME)
        text = _replace(text, "ONION-ADDRESS.onion", self.ONION_NAME)
        text = _replace(text, "/srv/whistle/app/", f"{ROOT}/")
        text = _replace(text, "/var/log/nginx/", f"{folder}/")
        text = _replace(text, "/var/www/html", str(folder / "acme"))
        text = _replace(text, "server 127.0.0.1:8000;", f"server {HOST}:{upstream_port};")
        text = _replace(text, r"listen (\[::\]:)?80;", lambda m: f"listen {'[::1]' if m.group(1) else HOST}:{self.http_port};", regex=True)
        text = _replace(text, r"listen (\[::\]:)?443 ", lambda m: f"listen {'[::1]' if m.group(1) else HOST}:{self.https_port} ", regex=True)
        text = _replace(text, "listen 127.0.0.1:8081 ", f"listen {HOST}:{self.onion_port} ")
        self.site = folder / "whistle.conf"
        self.site.write_text(text, "utf-8")
        temp = "\n".join(
            f"    {kind}_temp_path {folder / (kind + '_temp')};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        mime = "    include /etc/nginx/mime.types;\n" if Path("/etc/nginx/mime.types").exists() else ""
        # As root, nginx's workers would become `nobody`, who cannot enter the test's folder.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.main_error_log = folder / "nginx-main-error.log"
        self.access_log = folder / "nginx-access.log"
        self.conf = folder / "nginx.conf"
        self.conf.write_text(
            f"{user}worker_processes 2;\npid {folder / 'nginx.pid'};\nerror_log {self.main_error_log};\n"
            "events {\n    worker_connections 768;\n}\n"
            f"http {{\n{mime}    default_type application/octet-stream;\n"
            f"    access_log {self.access_log};\n{temp}\n    include {self.site};\n}}\n",
            "utf-8",
        )
        self.command = [binary, "-p", str(folder), "-e", str(self.main_error_log), "-c", str(self.conf)]
        self.proc: subprocess.Popen | None = None
        self.tls = ssl.create_default_context(cafile=str(self.cert))

    def check(self) -> subprocess.CompletedProcess:
        """`nginx -t` on the configuration."""
        return subprocess.run([*self.command, "-t", "-q"], capture_output=True, text=True, timeout=30)

    def start(self, seconds: float = 20) -> None:
        output = self.folder / "nginx-output.txt"
        with output.open("wb") as out:
            self.proc = subprocess.Popen([*self.command, "-g", "daemon off;"], stdout=out, stderr=subprocess.STDOUT)
        started = all(wait_listening(port, seconds, self.proc) for port in (self.https_port, self.onion_port))
        assert started, f"nginx did not start:\n{tail(output)}\n{tail(self.main_error_log)}"

    def workers(self) -> list[int]:
        return children(self.proc.pid) if self.proc else []

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def browser(self, **kwargs) -> Browser:
        """A browser on the clear-web intake host (HTTPS, certificate checked)."""
        return Browser(self.https_port, tls=self.tls, host_name=self.HOST_NAME, **kwargs)

    def onion_browser(self, circuit: int = 1, **kwargs) -> Browser:
        """A Tor Browser on the onion host: Tor's PROXY line names the circuit, as
        HiddenServiceExportCircuitID haproxy does."""
        line = f"PROXY TCP6 fc00:dead:beef:4dad::{circuit >> 16:x}:{circuit & 0xFFFF:x} ::1 65535 80\r\n".encode()
        return Browser(self.onion_port, host_name=self.ONION_NAME, proxy_line=line, **kwargs)

    def connect(self, source: str | None = None, timeout: float = 10) -> socket.socket:
        """A TLS connection to the intake host, handshake done (for hand-made requests)."""
        sock = socket.create_connection((HOST, self.https_port), timeout=timeout, source_address=(source, 0) if source else None)
        try:
            return self.tls.wrap_socket(sock, server_hostname=self.HOST_NAME)
        except OSError:
            sock.close()
            raise


# --------------------------------------------------------------------------- slow clients


def percentile(values: list[float], pct: float) -> float:
    """The nearest-rank percentile (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


class Trickler(threading.Thread):
    """A slow client, again and again until `stopping` is set.

    Each round it opens a connection with `connect()`, sends `head` at once, then `drip`
    one byte every `interval` seconds. When the server answers or closes the connection it
    counts what happened in `outcomes` (the status code of the answer, "closed", or the
    error's name) and opens a new connection. When `stopping` is set it closes its
    connection mid-request, as a client that goes away.
    """

    def __init__(
        self,
        connect: Callable[[], socket.socket],
        head: bytes,
        drip: bytes,
        stopping: threading.Event,
        interval: float = 2.0,
    ) -> None:
        super().__init__(daemon=True)
        self.connect, self.head, self.drip = connect, head, drip
        self.stopping, self.interval = stopping, interval
        self.outcomes: Counter[str] = Counter()
        self.lifetimes: list[float] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                sock = self.connect()
            except OSError as exc:
                self.outcomes[f"connect: {type(exc).__name__}"] += 1
                self.stopping.wait(self.interval)
                continue
            try:
                outcome = self._one(sock)
            finally:
                sock.close()
            self.outcomes[outcome] += 1
            if outcome != "stopped":
                self.lifetimes.append(time.monotonic() - started)

    def _one(self, sock: socket.socket) -> str:
        try:
            sock.sendall(self.head)
            for i in range(len(self.drip)):
                answer = self._answer(sock, self.interval)
                if answer is not None:
                    return answer
                if self.stopping.is_set():
                    return "stopped"
                sock.sendall(self.drip[i : i + 1])
            return self._answer(sock, 30) or "no answer"
        except OSError as exc:
            return type(exc).__name__

    def _answer(self, sock: socket.socket, seconds: float) -> str | None:
        """What the server said within `seconds` (None: nothing yet)."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([sock], [], [], min(remaining, 0.25))
            if not readable:
                continue
            sock.settimeout(0)
            try:
                data = sock.recv(4096)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue  # a TLS record that was not data (a session ticket)
            finally:
                sock.settimeout(10)
            if not data:
                return "closed"
            status = re.match(rb"HTTP/1\.[01] (\d{3})", data)
            return status.group(1).decode() if status else "other"
        return "stopped"
