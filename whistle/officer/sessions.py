"""An officer's session: who is signed in, and their unlocked private key, held in halves.

The unlocked key is sealed under a random 32-byte session key. The sealed key lives in
the short-lived state store (ephemeral.py), under a random session id; the session key
lives only in the officer's cookie. Neither the state store alone nor the cookie alone
recovers the private key, and it dies when the session ends: at sign-out (the store's
entry is deleted), after `officer_idle_minutes` without a request (the entry's time to
live), or `officer_session_hours` after sign-in (checked here).

A session has a stage: "full", or, right after a first sign-in, "passphrase" (the officer
must choose their own passphrase) or "enrol" (they must turn on the second factor). Only
the pages of that step are open until it is done.

Each account's session ids are also listed in the store, so that an administrator's
change (disabling the account, resetting its passphrase or second factor) ends every
session of it at once (`end_all`).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass

from .. import crypto
from ..ephemeral import EphemeralStore

FULL = "full"
PASSPHRASE = "passphrase"
ENROL = "enrol"
_AAD = b"whistle v1 officer session key"


@dataclass(frozen=True, repr=False)
class OfficerSession:
    sid: str
    account_id: int
    stage: str
    started: float
    private_key: crypto.PrivateKey | None


def _store_key(sid: str) -> str:
    return "officer-session:" + sid


def _account_key(account_id: int) -> str:
    return f"officer-account-sessions:{account_id}"


def _seal(half: bytes, private_key: crypto.PrivateKey | None) -> str | None:
    if private_key is None:
        return None
    return base64.b64encode(crypto.seal_with_key(half, private_key.unsafe_to_bytes(), _AAD)).decode()


def start(
    store: EphemeralStore,
    account_id: int,
    private_key: crypto.PrivateKey | None,
    stage: str,
    now: float,
    idle_seconds: float,
    max_seconds: float,
) -> tuple[str, str]:
    """A new session; returns (session id, session key), both for the cookie only."""
    sid = secrets.token_urlsafe(24)
    half = secrets.token_bytes(32)
    record = {"account": account_id, "stage": stage, "started": now, "key": _seal(half, private_key)}
    store.put(_store_key(sid), json.dumps(record).encode(), idle_seconds)
    _remember(store, account_id, sid, max_seconds)
    return sid, base64.b64encode(half).decode()


def _remember(store: EphemeralStore, account_id: int, sid: str, max_seconds: float) -> None:
    # Ids of ended sessions are pruned as they are met: their entries have gone.
    raw = store.get(_account_key(account_id))
    sids = [s for s in (json.loads(raw) if raw else []) if store.get(_store_key(s)) is not None]
    store.put(_account_key(account_id), json.dumps([*sids, sid]).encode(), max_seconds)


def end_all(store: EphemeralStore, account_id: int) -> int:
    """End every session of an account; returns how many were open."""
    raw = store.get(_account_key(account_id))
    open_ = 0
    for sid in json.loads(raw) if raw else []:
        open_ += store.get(_store_key(sid)) is not None
        store.delete(_store_key(sid))
    store.delete(_account_key(account_id))
    return open_


def load(
    store: EphemeralStore,
    sid: object,
    half_b64: object,
    now: float,
    idle_seconds: float,
    max_seconds: float,
) -> OfficerSession | None:
    """The session named by the cookie, refreshed; None if absent, expired or not matching."""
    if not isinstance(sid, str) or not isinstance(half_b64, str) or len(sid) > 64:
        return None
    raw = store.get(_store_key(sid))
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        half = base64.b64decode(half_b64, validate=True)
        if now - float(record["started"]) > max_seconds:
            store.delete(_store_key(sid))
            return None
        private_key = None
        if record["key"] is not None:
            opened = crypto.open_with_key(half, base64.b64decode(record["key"]), _AAD)
            private_key = crypto.PrivateKey.from_bytes(opened)
        elif len(half) != 32:
            return None
    except (crypto.OpenError, ValueError, KeyError, TypeError, binascii.Error):
        return None
    store.put(_store_key(sid), raw, idle_seconds)  # idle expiry counts from this request
    return OfficerSession(sid, int(record["account"]), str(record["stage"]), float(record["started"]), private_key)


def update(
    store: EphemeralStore,
    current: OfficerSession,
    half_b64: str,
    idle_seconds: float,
    *,
    stage: str | None = None,
    private_key: crypto.PrivateKey | None = None,
) -> None:
    """Move the session to another stage, or hold a new key (after a passphrase change)."""
    half = base64.b64decode(half_b64)
    key = private_key if private_key is not None else current.private_key
    record = {"account": current.account_id, "stage": stage or current.stage, "started": current.started, "key": _seal(half, key)}
    store.put(_store_key(current.sid), json.dumps(record).encode(), idle_seconds)


def end(store: EphemeralStore, sid: object) -> None:
    if isinstance(sid, str) and len(sid) <= 64:
        store.delete(_store_key(sid))
