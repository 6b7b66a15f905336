"""Request bodies that trickle, stop short or cannot be read: refused before the app sees them.

nginx streams uploads to the app as they arrive (so that no plaintext touches its disk),
and the app reads them in a server thread. A client that sends its body a byte at a time
would hold that thread for as long as it likes, and a few dozen such clients would hold
them all. `BodyGuard` wraps every request's `wsgi.input`:

* **Minimum rate.** After `GRACE_SECONDS`, the body must have arrived at an average of at
  least `MIN_RATE` bytes per second since the request began. One watchdog thread per
  process closes the reading half of a request's socket as soon as it falls behind, which
  wakes the server thread blocked in `recv`; the read then raises `RequestTimeout` (408),
  the form is never parsed, and nothing is stored.
* **Short body.** A body that ends before its Content-Length (the client went away) raises
  `ClientDisconnected` (400), even when what did arrive parses as a whole form.
* **Unreadable framing.** Whatever the server's own reader raises (a bad chunk size under
  gunicorn, a reset connection) is a 400, not a 500.

Why 4 KiB/s after 30 s: a reporter's phone on a slow link (1 Mbit/s, about 120 KiB/s) or
a slow Tor circuit (25 KiB/s and up) sends 6 to 30 times faster, so it may stall for most
of its upload and still pass (20 MiB at 1 Mbit/s takes about 3 minutes and may spend
another 80 in pauses); nginx separately closes a connection silent for 120 s. 32 kbit/s
is below any 3G or 4G link; only GPRS-class links are slower. A trickling client, on the
other hand, loses its thread after 30 s instead of never. The guard bounds how long one
request can hold a thread; how many threads there are (deploy/gunicorn.conf.py) bounds
how many slow clients it takes to matter.

The socket comes from the server's environ (`gunicorn.socket`, `werkzeug.socket`); under
a server that gives none, the rate is checked after each read instead.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from werkzeug.exceptions import BadRequest, ClientDisconnected, RequestTimeout
from werkzeug.wsgi import ClosingIterator, get_content_length

log = logging.getLogger(__name__)

MIN_RATE = 4 * 1024  # bytes per second, averaged over the whole body so far
GRACE_SECONDS = 30.0
#: Largest read handed to the server's reader at once. Its reads block until they have
#: all they were asked for, so progress is seen at this granularity: GRACE_SECONDS must
#: cover READ_SIZE / MIN_RATE (4 s) for a client at exactly the minimum rate.
READ_SIZE = 16 * 1024


class Watch:
    """One socket under the watchdog: its reading half is shut once `due()` has passed."""

    def __init__(self, watchdog: _Watchdog, sock: socket.socket, due: Callable[[], float]) -> None:
        self._watchdog, self._sock, self.due = watchdog, sock, due
        self.fired = False

    def cancel(self) -> None:
        """Stop watching; once this returns, the socket is never shut by this watch."""
        self._watchdog.discard(self)

    def fire(self) -> None:
        self.fired = True
        try:
            self._sock.shutdown(socket.SHUT_RD)
        except OSError:  # already closed by the client or the server
            pass


class _Watchdog:
    """One thread per process that sleeps until the earliest deadline of the sockets it
    watches. Started on first use, and again in a forked child (gunicorn's workers)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watches: set[Watch] = set()
        self._pid: int | None = None

    def watch(self, sock: socket.socket, due: Callable[[], float]) -> Watch:
        watch = Watch(self, sock, due)
        with self._cond:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._watches = set()
                threading.Thread(target=self._run, name="whistle-watchdog", daemon=True).start()
            self._watches.add(watch)
            self._cond.notify()
        return watch

    def discard(self, watch: Watch) -> None:
        with self._cond:
            self._watches.discard(watch)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                wake = now + 60
                for watch in list(self._watches):
                    due = watch.due()
                    if due <= now:
                        self._watches.discard(watch)
                        watch.fire()
                    else:
                        wake = min(wake, due)
                # Deadlines only move later as bytes arrive: waking early just looks again.
                self._cond.wait(wake - now)


watchdog = _Watchdog()


class GuardedInput:
    """`wsgi.input` that keeps count of the body and enforces the rules above."""

    def __init__(self, stream: Any, length: int | None, started: float) -> None:
        self._stream = stream
        self._length = length
        self._started = started
        self.received = 0
        self.finished = length == 0
        self.watch: Watch | None = None

    def due(self) -> float:
        """When the body falls behind the minimum rate, given what has arrived."""
        if self.finished:
            return math.inf
        return self._started + GRACE_SECONDS + self.received / MIN_RATE

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(READ_SIZE), b""))
        return self._read(self._stream.read, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._read(self._stream.readline, READ_SIZE if size is None or size < 0 else size)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def _read(self, read: Callable[[int], bytes], size: int) -> bytes:
        if self.finished or size == 0:
            return b""
        size = min(size, READ_SIZE)
        if self._length is not None:
            size = min(size, self._length - self.received)
        try:
            data = read(size)
        except Exception as exc:  # the server's reader: a bad chunk, a reset connection
            self._check_rate()
            raise BadRequest() from exc
        if self.watch is not None and self.watch.fired:
            self._too_slow()
        self.received += len(data)
        if not data:
            self.finished = True
            if self._length is not None and self.received < self._length:
                raise ClientDisconnected()
        elif self._length is not None and self.received >= self._length:
            self.finished = True
        self._check_rate()
        return data

    def _check_rate(self) -> None:
        if (self.watch is not None and self.watch.fired) or time.monotonic() > self.due():
            self._too_slow()

    def _too_slow(self) -> None:
        self.finished = True
        log.warning(
            "request body too slow (%d bytes in %.0f s): answered 408, nothing stored",
            self.received, time.monotonic() - self._started,
        )
        raise RequestTimeout()


class BodyGuard:
    """WSGI middleware: every request with a body reads it through `GuardedInput`."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        length = get_content_length(environ)
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not length and not chunked:
            return self.app(environ, start_response)
        body = GuardedInput(environ["wsgi.input"], length, time.monotonic())
        environ["wsgi.input"] = body
        sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
        if sock is None:
            return self.app(environ, start_response)
        # Watched until the answer is closed: the embedded server reads what is left of a
        # body after answering, and that must not trickle on either.
        body.watch = watchdog.watch(sock, body.due)
        try:
            return ClosingIterator(self.app(environ, start_response), body.watch.cancel)
        except BaseException:
            body.watch.cancel()
            raise
