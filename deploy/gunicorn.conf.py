"""gunicorn settings for whistle in production, behind nginx (deploy/nginx/whistle.conf).

Started by deploy/systemd/whistle.service as

    gunicorn --config deploy/gunicorn.conf.py

Every setting here can be overridden on the command line (command-line flags win over
this file), e.g. `--bind 127.0.0.1:8000` or `--workers 3`.

What this file promises (DESIGN.md section 6): gunicorn keeps no client address, user agent
or referrer anywhere.

* There is no access log (`accesslog = None`), and `AddresslessLogger` below refuses to
  write one even if an access log is configured by mistake.
* The error log goes to stderr, which systemd hands to the journal. gunicorn itself puts
  the client address in one message ("Invalid request from ip=...: <error>", whose error
  text can quote a header, the User-Agent included), and an exception's text can quote
  what was sent. `AddresslessLogger` rewrites those messages to the kind of error alone,
  prints exceptions as their type and stack frames without their text, drops query
  strings, and replaces anything that parses as an IP address with "[address]".
* `logconfig_dict` is deliberately not used: setting it makes gunicorn turn its access log
  on (it then logs to stdout through the default dictConfig).
* The application's own loggers (and anything else using Python's root logger) are sent
  through the same scrubbing handler, so nothing reaches stderr around it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import sys
import traceback

from gunicorn.glogging import Logger

# --------------------------------------------------------------------------- the app

wsgi_app = "whistle:create_app()"
proc_name = "whistle"

# nginx on the same machine is the only client. Loopback TCP rather than a unix socket,
# for the sake of nginx's error log: when the app is down (a restart, say), nginx's failed
# connection to a missing unix socket is logged at `crit` with the client's address, which
# the site's error_log level keeps; a refused TCP connection is logged at `error`, which it
# drops. Any local user can reach this port; all they could do with it is give the rate
# limiter a made-up address.
bind = [os.environ.get("WHISTLE_GUNICORN_BIND", "127.0.0.1:8000")]

# --------------------------------------------------------------------------- workers
#
# The costly part of every submission and every status check is one Argon2id derivation
# at the production cost: about 90 ms of wall time using all cores (p = 4 lanes) and
# 64 MiB of memory, in C, outside Python's GIL. So:
#
# * Throughput is bounded by the CPU, at roughly cores / (cores x 90 ms) ~ 11 derivations
#   per second whatever the number of processes; more processes only add memory and
#   queueing. What the processes are for is the ordinary Python work around a derivation
#   (multipart parsing and sealing of uploads, HPKE, SQL, templates), which holds the GIL:
#   one process per core lets that work use every core.
# * Memory is bounded by the app's own cap on derivations at once per process
#   (`argon2_concurrency`, default 2): workers x argon2_concurrency x 64 MiB, i.e. 512 MiB
#   on a 4-core machine. Threads do not add to it: a thread beyond the cap waits.
# * Threads (gthread worker) are for waiting, not computing. nginx streams uploads to the
#   app as they arrive (proxy_request_buffering off, so that no plaintext touches its
#   disk), so every upload in progress holds a thread: a reporter on a slow phone for the
#   whole upload (5 files of 20 MiB at 1 Mbit/s is about 14 minutes), and a client that
#   trickles its body on purpose until the app refuses it (whistle/wsgi_guard.py: below
#   4 KiB/s on average, after 30 s). Such a thread waits in recv: about 0.5 MiB and no CPU
#   (docs/benchmarks.md, "Slow clients"). 64 per process let about 100 slow uploads run
#   at once on a 2-core machine with page loads unaffected; with 8, 50 of them stopped
#   the service. nginx lets one address have at most 10 uploads in progress. A thread
#   beyond the Argon2 cap waits for a slot, so threads add neither CPU nor Argon2 memory;
#   a report waiting for one keeps its database connection, and past the pool's 15 per
#   process the next ones wait for a connection too (in turn, as they would for a slot).
# * gthread, not sync: with sync workers a request longer than `timeout` gets its worker
#   killed, which would cut every slow upload. With gthread the main loop sends the
#   heartbeat while request threads work, so `timeout` only catches a hung process.


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours CPU limits set by systemd or a container
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


workers = int(os.environ.get("WEB_CONCURRENCY") or max(2, _cores()))
worker_class = "gthread"
threads = 64

# Workers are not recycled after N requests: recycling would cut uploads in progress, and
# Argon2's memory is freed after every derivation, so there is nothing to reclaim.
max_requests = 0

# --------------------------------------------------------------------------- timeouts
#
# Slow phones are limited by nginx's per-read timeouts (client_body_timeout,
# proxy_send_timeout: the longest pause between two pieces of an upload) and by the app's
# minimum average rate (4 KiB/s after 30 s, whistle/wsgi_guard.py), never by a cap on a
# whole request, so a 100 MiB upload that keeps moving always finishes.
timeout = 60  # heartbeat: a worker silent for this long is hung and is restarted
# On stop or restart, requests in progress (an upload, say) get this long to finish;
# systemd's TimeoutStopSec in whistle.service is a little longer. An upload still running
# after that is cut, and the app stores nothing of it.
graceful_timeout = 300
keepalive = 5  # nginx keeps upstream connections open (its keepalive_timeout is longer)

# --------------------------------------------------------------------------- requests
#
# The app's pages have short URLs and a handful of headers; the longest header is the
# visit's cookie (a sealed case view, a few KiB at most).
limit_request_line = 2048
limit_request_fields = 50
limit_request_field_size = 8190

# --------------------------------------------------------------------------- proxy
#
# Only nginx on this machine may set the scheme header. The client's address is handled by
# the app (WHISTLE_TRUSTED_PROXIES=1: it reads the X-Forwarded-For nginx sets and uses it
# only as the input of the rate limiter's keyed hash).
forwarded_allow_ips = "127.0.0.1"
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# No control socket (gunicorn 25.1+ otherwise creates one under $HOME or $XDG_RUNTIME_DIR,
# which ProtectSystem=strict forbids and nothing here needs).
control_socket_disable = True

# --------------------------------------------------------------------------- logging

accesslog = None
errorlog = "-"  # stderr: the systemd journal
loglevel = "info"
capture_output = False  # never copy raw stdout/stderr into the log around the scrubber
disable_redirect_access_to_syslog = True


_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:.])\[?(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?\]?(?![\w:])")
_INVALID_REQUEST = re.compile(r"^Invalid request from ip=")


def _drop_addresses(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        candidate = match.group(0).strip("[]")
        try:
            ipaddress.ip_address(candidate)
        except ValueError:
            return match.group(0)
        return "[address]"

    return _IPV6.sub(replace, _IPV4.sub(replace, text))


class AddresslessFilter(logging.Filter):
    """Rewrite a record so it carries nothing a client sent or where it came from."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _INVALID_REQUEST.match(message):
            # "Invalid request from ip=<address>: <error quoting the request>". Keep the
            # kind of error only: we are called inside gunicorn's except block.
            kind = sys.exc_info()[0]
            message = f"Invalid request refused ({kind.__name__ if kind else 'malformed request'})"
        elif message.startswith("Error handling request ") and "?" in message:
            message = message.split("?", 1)[0]
        record.msg, record.args = _drop_addresses(message), ()
        return True


class AddresslessFormatter(logging.Formatter):
    """Exceptions as their type and frames only: an exception's text may quote a request."""

    def formatException(self, ei) -> str:  # noqa: N802 (logging's name)
        kind, _value, tb = ei
        frames = "".join(traceback.format_tb(tb))
        return f"Traceback (most recent call last):\n{frames}{kind.__name__ if kind else 'Exception'} (message withheld)"

    def format(self, record: logging.LogRecord) -> str:
        return _drop_addresses(super().format(record))


class AddresslessLogger(Logger):
    """gunicorn's logger without an access log, with every error line scrubbed."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        self._access_log_enabled = False
        for handler in list(self.access_log.handlers):
            self.access_log.removeHandler(handler)
        self.access_log.disabled = True
        scrub = AddresslessFilter()
        formatter = AddresslessFormatter(self.error_fmt, self.datefmt)
        for handler in self.error_log.handlers:
            handler.addFilter(scrub)
            handler.setFormatter(formatter)
        # The app's loggers propagate to the root logger, which has no handler of its own
        # under gunicorn (Python would print to stderr unscrubbed): give it the same ones.
        root = logging.getLogger()
        for handler in list(root.handlers):
            if getattr(handler, "_whistle", False):
                root.removeHandler(handler)
        for handler in self.error_log.handlers:
            handler._whistle = True  # type: ignore[attr-defined]
            root.addHandler(handler)
        # The root logger stays at WARNING: flask-limiter reports each limit hit at INFO
        # with the limiter's key, a hash that would tie a client's requests together.

    @property
    def access_log_enabled(self) -> bool:
        return False

    def access(self, resp, req, environ, request_time) -> None:
        return None


logger_class = AddresslessLogger
