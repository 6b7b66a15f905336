"""What a reporter's visit carries in its session cookie, and nothing more.

* After a report: a MAC of the code just shown (never the code), so that the receipt's
  "check you saved it" and download steps work only in the visit that was shown the code.
* While a case is open: the case number and the reporter's key, sealed under a key derived
  from the server's secret key, with the time it was opened. Neither the cookie alone nor
  the server alone can recover the reporter's key, and the view closes by itself.
Formats and test vectors: docs/crypto.md.
"""

from __future__ import annotations

import base64
import binascii
import json

from . import crypto
from .codes import TrackingCode
from .intake import OpenedCase

VIEW_AAD = b"whistle v1 status view"
_VIEW_KEY_INFO = b"whistle v1 status view key"
_RECEIPT_LABEL = b"receipt"


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
        }
    ).encode()
    view_key = crypto.hkdf(server_key, _VIEW_KEY_INFO)
    return base64.b64encode(crypto.seal_with_key(view_key, payload, VIEW_AAD)).decode()


def open_sealed_case(server_key: bytes, sealed: object, now: float, max_age_seconds: float) -> OpenedCase | None:
    """The open case from the cookie, or None if absent, tampered with or expired."""
    if not isinstance(sealed, str):
        return None
    try:
        view_key = crypto.hkdf(server_key, _VIEW_KEY_INFO)
        payload = json.loads(crypto.open_with_key(view_key, base64.b64decode(sealed), VIEW_AAD))
        if now - payload["at"] > max_age_seconds:
            return None
        return OpenedCase(int(payload["id"]), crypto.PrivateKey.from_bytes(base64.b64decode(payload["key"])))
    except (crypto.OpenError, ValueError, KeyError, TypeError, binascii.Error):
        return None
