"""Flask extensions and the app-wide services views reach for: settings, the server key,
the clock, the rate limiter."""

from __future__ import annotations

import datetime as dt
from typing import Callable

from flask import Flask, current_app, request
from flask_limiter import Limiter

from . import crypto
from .config import Settings


def settings() -> Settings:
    return current_app.extensions["whistle.settings"]


def server_key() -> bytes:
    """A key derived from the secret key for this service's own MACs and sealed cookies."""
    return current_app.extensions["whistle.server_key"]


def today() -> dt.date:
    """Today's date in Thailand; tests move it with `app.extensions['whistle.clock']`."""
    clock: Callable[[], dt.date] = current_app.extensions["whistle.clock"]
    return clock()


def hashed_client() -> str:
    """The rate limiter's key: a keyed hash of the client address, never the address.

    The limiter's storage only ever sees this value, and its entries expire with their
    window, so the storage holds no address and nothing that outlives an hour.
    """
    address = (request.remote_addr or "").encode()
    return crypto.keyed_hash(server_key(), b"rate limit", address)[:12].hex()


limiter = Limiter(key_func=hashed_client, strategy="fixed-window", headers_enabled=False)


def init_app(app: Flask, settings: Settings, clock: Callable[[], dt.date]) -> None:
    app.extensions["whistle.settings"] = settings
    app.extensions["whistle.server_key"] = crypto.hkdf(settings.secret_key.encode(), b"whistle v1 server key")
    app.extensions["whistle.clock"] = clock
    app.config["RATELIMIT_STORAGE_URI"] = settings.ratelimit_storage_uri
    app.config.setdefault("RATELIMIT_ENABLED", True)
    limiter.init_app(app)
