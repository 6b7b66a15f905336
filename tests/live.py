"""Support for tests and benchmarks that speak HTTP to a real server process.

It owns what tests/test_deploy.py, tests/test_faults.py and bench/load.py share when they
start gunicorn (or Redis) on loopback and talk to it like a browser would: a free port,
waiting until the port listens, stopping the process, multipart/form-data bodies, and a
`Browser` that keeps its cookies across requests (one connection per request) and reads
the form's CSRF token. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import http.client
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from http.cookies import SimpleCookie

HOST = "127.0.0.1"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


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


def stop(proc: subprocess.Popen, timeout: float = 15, kill_timeout: float = 5) -> None:
    """SIGTERM, then SIGKILL if the process has not ended within `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=kill_timeout)


def multipart(fields: Mapping[str, str | bytes], files: Iterable[tuple[str, bytes]] = ()) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type: text fields (str values are sent
    as UTF-8, bytes as they are) and files, each as a part named "files"."""
    boundary = "----whistle" + uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + (value if isinstance(value, bytes) else value.encode())
        + b"\r\n"
        for name, value in fields.items()
    ]
    for filename, content in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Browser:
    """One visitor's browser: keeps the visit's cookies, one connection per request.

    `forwarded_for` is sent as X-Forwarded-For (what nginx would add), `source_address` is
    the local (host, port) to send from, `headers` go with every request.
    """

    def __init__(
        self,
        port: int,
        *,
        timeout: float = 20,
        forwarded_for: str | None = None,
        source_address: tuple[str, int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port
        self.timeout = timeout
        self.forwarded_for = forwarded_for
        self.source_address = source_address
        self.extra_headers = dict(headers or {})
        self.cookies: dict[str, str] = {}

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
        conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout, source_address=self.source_address)
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
