"""The sealed case view and receipt tag of whistle/visits.py, against docs/crypto.md
section 13, and the exact moments a view closes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from whistle import crypto, visits
from whistle.codes import new_code
from whistle.ephemeral import MemoryStore
from whistle.intake import OpenedCase

SERVER_KEY = bytes(range(32))
MAX_AGE = 15 * 60
OPENED_AT = 1_800_000_000


@pytest.fixture()
def opened() -> OpenedCase:
    return OpenedCase(42, crypto.PrivateKey.generate())


class _RecordingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.ttls: dict[str, float] = {}

    def put(self, key: str, value: bytes, ttl: float) -> None:
        self.ttls[key] = ttl
        super().put(key, value, ttl)


def test_case_view_opens_as_documented(opened):
    """view_key = HKDF(server_key, "whistle v1 status view key"); AAD "whistle v1 status view"."""
    sealed = visits.seal_open_case(SERVER_KEY, opened, OPENED_AT + 0.9)
    view_key = crypto.hkdf(SERVER_KEY, b"whistle v1 status view key")
    payload = json.loads(crypto.open_with_key(view_key, base64.b64decode(sealed), b"whistle v1 status view"))
    assert payload["id"] == 42 and payload["at"] == OPENED_AT
    assert base64.b64decode(payload["key"]) == opened.reporter_key.unsafe_to_bytes()
    assert len(payload["view"]) == 32 and int(payload["view"], 16) >= 0


def test_case_view_sealed_as_documented_opens(opened):
    """A payload sealed by the documented recipe, not by visits.py, opens."""
    view_key = crypto.hkdf(SERVER_KEY, b"whistle v1 status view key")
    payload = {"id": 42, "key": base64.b64encode(opened.reporter_key.unsafe_to_bytes()).decode(), "at": OPENED_AT, "view": "ab" * 16}
    sealed = base64.b64encode(crypto.seal_with_key(view_key, json.dumps(payload).encode(), b"whistle v1 status view")).decode()
    case = visits.open_sealed_case(SERVER_KEY, sealed, OPENED_AT, MAX_AGE, MemoryStore())
    assert case is not None and case.report_id == 42
    assert case.reporter_key.key_id == opened.reporter_key.key_id


def test_receipt_tag_is_the_documented_keyed_hash():
    """receipt tag = hex HMAC-SHA256(server_key, "receipt" || 0x00 || the code's digits)."""
    code = new_code(SERVER_KEY)
    expected = hmac.new(SERVER_KEY, b"receipt\x00" + code.digits.encode(), hashlib.sha256).hexdigest()
    assert visits.receipt_tag(SERVER_KEY, code) == expected
    assert visits.receipt_matches(SERVER_KEY, expected, code)
    assert not visits.receipt_matches(SERVER_KEY, expected.encode(), code)


def test_case_view_open_to_the_last_second_and_closed_after(opened):
    sealed = visits.seal_open_case(SERVER_KEY, opened, OPENED_AT)
    store = MemoryStore()
    assert visits.open_sealed_case(SERVER_KEY, sealed, OPENED_AT + MAX_AGE, MAX_AGE, store) is not None
    assert visits.open_sealed_case(SERVER_KEY, sealed, OPENED_AT + MAX_AGE + 0.001, MAX_AGE, store) is None


def test_closed_view_is_recorded_for_exactly_the_rest_of_its_life(opened):
    sealed = visits.seal_open_case(SERVER_KEY, opened, OPENED_AT)
    store = _RecordingStore()
    visits.close_view(SERVER_KEY, sealed, OPENED_AT + 100, MAX_AGE, store)
    ((key, ttl),) = store.ttls.items()
    assert key.startswith(visits.CLOSED_VIEW_PREFIX) and ttl == MAX_AGE - 100
    assert visits.open_sealed_case(SERVER_KEY, sealed, OPENED_AT + 101, MAX_AGE, store) is None


def test_closed_view_near_its_end_is_recorded_for_one_second(opened):
    sealed = visits.seal_open_case(SERVER_KEY, opened, OPENED_AT)
    store = _RecordingStore()
    visits.close_view(SERVER_KEY, sealed, OPENED_AT + MAX_AGE - 0.25, MAX_AGE, store)
    assert list(store.ttls.values()) == [1.0]


def test_closing_an_expired_or_foreign_view_records_nothing(opened):
    sealed = visits.seal_open_case(SERVER_KEY, opened, OPENED_AT)
    store = _RecordingStore()
    visits.close_view(SERVER_KEY, sealed, OPENED_AT + MAX_AGE + 1, MAX_AGE, store)
    visits.close_view(bytes(32), sealed, OPENED_AT, MAX_AGE, store)
    visits.close_view(SERVER_KEY, None, OPENED_AT, MAX_AGE, store)
    assert store.ttls == {}
