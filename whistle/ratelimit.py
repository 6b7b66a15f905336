"""Rate limits on the costly pages, keyed by a keyed hash of the client's address (of its
IPv6 network, for IPv6 clients).

Every POST that runs Argon2 or stores something is limited per client: a report, a
status check, a reply, an officer's sign-in. With several worker
processes the counters must be shared: set `ratelimit_storage_uri` to Redis. Should that
storage fail, the limited pages answer 503 (fail closed, the default) or go unlimited
(`ratelimit_fail_closed = false`); other pages never touch the storage.
"""

from __future__ import annotations

import ipaddress
import logging

from flask import Flask, request
from flask_limiter import Limiter
from limits.errors import StorageError

from . import crypto
from .config import Settings
from .extensions import server_key, settings

log = logging.getLogger(__name__)

#: endpoint -> the setting that holds its limit
LIMITED_ENDPOINTS = {
    "reporter.report": "ratelimit_submit",
    "reporter.status": "ratelimit_status",
    "reporter.reply": "ratelimit_reply",
    "reporter.add": "ratelimit_reply",
    "reporter.rate": "ratelimit_reply",
    "officer_auth.sign_in": "ratelimit_signin",
    # Every other POST too (tests/test_request_memory.py checks that none is left out).
    "reporter.saved": "ratelimit_other",
    "reporter.receipt_text": "ratelimit_other",
    "reporter.close": "ratelimit_other",
    "officer_auth.sign_out": "ratelimit_other",
    "officer_auth.change_passphrase": "ratelimit_other",
    "officer_auth.enrol": "ratelimit_other",
    # The officers' work: one office may share an address, hence its own, larger limit.
    "officer_cases.step": "ratelimit_officer",
    "officer_cases.assign": "ratelimit_officer",
    "officer_cases.add_note": "ratelimit_officer",
    "officer_cases.send_message": "ratelimit_officer",
    "officer_record.record_tip": "ratelimit_officer",
    "officer_identity.request_reveal": "ratelimit_officer",
    "officer_identity.open_identity": "ratelimit_officer",
    "officer_identity.decide": "ratelimit_officer",
    "officer_summaries.write": "ratelimit_officer",
    "officer_summaries.sign_off": "ratelimit_officer",
    "officer_prevention.tag": "ratelimit_officer",
    # Keys and accounts. The custodian's page runs Argon2id on the recovery key file, and a
    # new passphrase is hashed: the sign-in's limit and the small one.
    "officer_access.certify": "ratelimit_signin",
    "officer_access.start_rewrap": "ratelimit_officer",
    "officer_admin.create": "ratelimit_other",
    "officer_admin.reset_passphrase": "ratelimit_other",
    "officer_admin.set_email": "ratelimit_officer",
    "officer_admin.disable": "ratelimit_officer",
    "officer_admin.retire_key": "ratelimit_officer",
    "officer_admin.reset_second_factor": "ratelimit_officer",
}


#: Tor's onion service hands each circuit to nginx as an address in this network
#: (HiddenServiceExportCircuitID, deploy/tor/torrc.snippet): keyed by its prefix, every
#: onion visitor would be one client. It is not routed on the internet, so only the onion
#: service can give it.
TOR_CIRCUITS = ipaddress.IPv6Network("fc00:dead:beef:4dad::/64")


def client_network(address: str, ipv6_prefix: int) -> str:
    """What one client is to the limiter: an IPv4 address (IPv4-mapped IPv6 included), the
    IPv6 network of `ipv6_prefix` bits holding the address, or a Tor circuit's address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an IP address (a unix socket's peer): keyed as it is
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address) or ip in TOR_CIRCUITS:
        return str(ip)
    return str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))


def hashed_client() -> str:
    """The limiter's key: a keyed hash of the client's network (`client_network`), never
    the address. The storage only ever sees this value, and its entries expire with their
    window.
    """
    network = client_network(request.remote_addr or "", settings().ratelimit_ipv6_prefix)
    return crypto.keyed_hash(server_key(), b"rate limit", network.encode())[:12].hex()


def _storage_options(uri: str) -> dict:
    options: dict = {"wrap_exceptions": True}
    if uri.startswith(("redis://", "rediss://", "redis+unix://")):
        # A dead Redis must give a quick 503, not a hung worker.
        options.update(socket_connect_timeout=1, socket_timeout=1)
    return options


def _storage_failed(exc: Exception):
    from .errors import handle_http, ServiceUnavailable

    log.error("rate-limit storage unavailable (%s); refusing the costly request", type(exc).__name__)
    return handle_http(ServiceUnavailable())


def init_app(app: Flask, settings: Settings) -> Limiter:
    limiter = Limiter(
        key_func=hashed_client,
        storage_uri=settings.ratelimit_storage_uri,
        storage_options=_storage_options(settings.ratelimit_storage_uri),
        strategy="fixed-window",
        swallow_errors=not settings.ratelimit_fail_closed,
        headers_enabled=False,
        enabled=app.config.get("RATELIMIT_ENABLED", True),
    )
    limiter.init_app(app)
    for endpoint, setting in LIMITED_ENDPOINTS.items():
        view = app.view_functions.get(endpoint)
        if view is None:  # the other app's page
            continue
        app.view_functions[endpoint] = limiter.limit(getattr(settings, setting), methods=["POST"])(view)
    app.register_error_handler(StorageError, _storage_failed)
    try:
        from redis.exceptions import RedisError
    except ImportError:  # Redis support not installed: nothing else can fail that way
        pass
    else:
        app.register_error_handler(RedisError, _storage_failed)
    app.extensions["whistle.limiter"] = limiter
    return limiter
