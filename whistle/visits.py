"""What a reporter's visit carries in its session cookie, and nothing more, sealed.

* After a report: a MAC of the code just shown (never the code), so that the receipt's
  "check you saved it" and download steps work only in the visit that was shown the code.
* While a case is open: the case number and the reporter's key, sealed under a key derived
  from the server's secret key, with the time it was opened and a random view id. Neither
  the cookie alone nor the server alone can recover the reporter's key, and the view closes
  by itself. Closing it by hand records its view id as closed in the short-lived shared
  state until it would have closed anyway, so a copy of the cookie opens nothing either.
* Notices for the next page (Flask's flashed messages), which may name the reporter's files.

The whole cookie is sealed (`SealedSessionInterface`), not only signed: nothing in it is
readable without the server's key. Formats and test vectors: docs/crypto.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature

from . import crypto
from .codes import TrackingCode
from .ephemeral import EphemeralStore
from .intake import OpenedCase

VIEW_AAD = b"whistle v1 status view"
_VIEW_KEY_INFO = b"whistle v1 status view key"
_RECEIPT_LABEL = b"receipt"
COOKIE_AAD = b"whistle v1 visit cookie"
_COOKIE_KEY_INFO = b"whistle v1 visit cookie key"
#: Prefix of the state keys of views closed by hand; the rest is the random view id.
CLOSED_VIEW_PREFIX = "closed-view:"


def receipt_tag(server_key: bytes, code: TrackingCode) -> str:
    return crypto.keyed_hash(server_key, _RECEIPT_LABEL, code.digits.encode()).hex()


def receipt_matches(server_key: bytes, tag: object, code: TrackingCode) -> bool:
    return isinstance(tag, str) and crypto.constant_time_equal(tag.encode(), receipt_tag(server_key, code).encode())


def seal_open_case(server_key: bytes, opened: OpenedCase, now: float) -> str:
    payload = json.dumps(
        {
            "id": opened.report_id,
            "key": base64.b64encode(opened.reporter_key.unsafe_to_bytes()).decode(),
            "at": int(now),
            "view": secrets.token_hex(16),
        }
    ).encode()
    view_key = crypto.hkdf(server_key, _VIEW_KEY_INFO)
    return base64.b64encode(crypto.seal_with_key(view_key, payload, VIEW_AAD)).decode()


def _open_view(server_key: bytes, sealed: object, now: float, max_age_seconds: float) -> dict | None:
    """The sealed view's payload, or None if absent, tampered with or expired."""
    if not isinstance(sealed, str):
        return None
    try:
        view_key = crypto.hkdf(server_key, _VIEW_KEY_INFO)
        payload = json.loads(crypto.open_with_key(view_key, base64.b64decode(sealed), VIEW_AAD))
        if now - payload["at"] > max_age_seconds or not isinstance(payload["view"], str):
            return None
        return payload
    except (crypto.OpenError, ValueError, KeyError, TypeError, binascii.Error):
        return None


def open_sealed_case(
    server_key: bytes, sealed: object, now: float, max_age_seconds: float, closed: EphemeralStore
) -> OpenedCase | None:
    """The open case from the cookie, or None if absent, tampered with, expired or closed."""
    payload = _open_view(server_key, sealed, now, max_age_seconds)
    if payload is None or closed.get(CLOSED_VIEW_PREFIX + payload["view"]) is not None:
        return None
    try:
        return OpenedCase(int(payload["id"]), crypto.PrivateKey.from_bytes(base64.b64decode(payload["key"])))
    except (crypto.OpenError, ValueError, KeyError, TypeError, binascii.Error):
        return None


def view_closes_at(server_key: bytes, sealed: object, now: float, max_age_seconds: float) -> float | None:
    """When the open view in the cookie closes by itself (seconds since the epoch), so that
    the page can say so; None if there is no open view."""
    payload = _open_view(server_key, sealed, now, max_age_seconds)
    return None if payload is None else payload["at"] + max_age_seconds


def close_view(server_key: bytes, sealed: object, now: float, max_age_seconds: float, closed: EphemeralStore) -> None:
    """Record the view as closed for the rest of its life. Only its random id is kept: it
    names neither the case nor the client."""
    payload = _open_view(server_key, sealed, now, max_age_seconds)
    if payload is not None:
        remaining = max_age_seconds - (now - payload["at"])
        closed.put(CLOSED_VIEW_PREFIX + payload["view"], b"closed", max(1.0, remaining))


class _SealingSerializer:
    """The session's serializer, as itsdangerous's is used by Flask: sealed JSON."""

    def __init__(self, key: bytes, json_serializer) -> None:
        self._key = key
        self._json = json_serializer

    def dumps(self, value: dict) -> str:
        sealed = crypto.seal_with_key(self._key, self._json.dumps(value).encode("utf-8"), COOKIE_AAD)
        return base64.urlsafe_b64encode(sealed).decode("ascii")

    def loads(self, value: str, max_age: int | None = None) -> dict:
        try:
            return self._json.loads(crypto.open_with_key(self._key, base64.urlsafe_b64decode(value), COOKIE_AAD))
        except (crypto.OpenError, ValueError, TypeError, binascii.Error):
            raise BadSignature("the visit cookie does not open") from None


class SealedSessionInterface(SecureCookieSessionInterface):
    """Flask's cookie session, sealed (AES-256-GCM under a key derived from the server
    key) rather than only signed: a copied or inspected cookie reads as noise."""

    def get_signing_serializer(self, app: Flask) -> _SealingSerializer | None:  # type: ignore[override]
        server_key = app.extensions.get("whistle.server_key")
        if server_key is None:
            return None
        return _SealingSerializer(crypto.hkdf(server_key, _COOKIE_KEY_INFO), self.serializer)


def init_app(app: Flask) -> None:
    app.session_interface = SealedSessionInterface()
