"""The app-wide services views reach for: settings, the server key, the clock, the
short-lived state store."""

from __future__ import annotations

import datetime as dt
from typing import Callable

from flask import Flask, current_app

from . import crypto, keyring
from .config import Settings
from .ephemeral import EphemeralStore


def settings() -> Settings:
    return current_app.extensions["whistle.settings"]


def server_key() -> bytes:
    """A key derived from the secret key for this service's own MACs and sealed cookies."""
    return current_app.extensions["whistle.server_key"]


def today() -> dt.date:
    """Today's date in Thailand; tests move it with `app.extensions['whistle.clock']`."""
    clock: Callable[[], dt.date] = current_app.extensions["whistle.clock"]
    return clock()


def now() -> float:
    """Seconds since the epoch; tests move it with `test_config["wallclock"]`."""
    wallclock: Callable[[], float] = current_app.extensions["whistle.wallclock"]
    return wallclock()


def trust() -> keyring.Trust:
    """The instance's trust anchor and the certificates checked under it (keyring.py)."""
    return current_app.extensions["whistle.trust"]


def trust_of(app: Flask) -> keyring.Trust:
    return app.extensions["whistle.trust"]


def state() -> EphemeralStore:
    """Short-lived state shared by every process (ephemeral.py)."""
    return current_app.extensions["whistle.state"]


def password_hashing() -> crypto.PasswordHashing:
    """Sign-in passphrase hashing at the configured cost (made on first use: it hashes once)."""
    hashing = current_app.extensions.get("whistle.password_hashing")
    if hashing is None:
        hashing = crypto.PasswordHashing(*settings().password_cost.as_tuple())
        current_app.extensions["whistle.password_hashing"] = hashing
    return hashing


def init_app(
    app: Flask, settings: Settings, clock: Callable[[], dt.date], state: EphemeralStore, wallclock: Callable[[], float]
) -> None:
    app.extensions["whistle.settings"] = settings
    app.extensions["whistle.server_key"] = crypto.hkdf(settings.secret_key.encode(), b"whistle v1 server key")
    app.extensions["whistle.clock"] = clock
    app.extensions["whistle.state"] = state
    app.extensions["whistle.wallclock"] = wallclock
    app.extensions["whistle.trust"] = keyring.Trust(settings.instance_path / keyring.ANCHOR_FILE)
