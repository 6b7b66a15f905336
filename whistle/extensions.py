"""The app-wide services views reach for: settings, the server key, the clock."""

from __future__ import annotations

import datetime as dt
from typing import Callable

from flask import Flask, current_app

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


def init_app(app: Flask, settings: Settings, clock: Callable[[], dt.date]) -> None:
    app.extensions["whistle.settings"] = settings
    app.extensions["whistle.server_key"] = crypto.hkdf(settings.secret_key.encode(), b"whistle v1 server key")
    app.extensions["whistle.clock"] = clock
