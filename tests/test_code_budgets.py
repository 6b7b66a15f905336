"""What bounds the Argon2 work of checking codes: the tag, the budget per lookup part, the
budget shared by codes without a right tag, and what each answers. None may tell whether a
case exists."""

from __future__ import annotations

import pytest

from whistle import codes, crypto, ephemeral
from whistle.codes import TrackingCode, parse_code

from .conftest import Reporter, csrf_token
from .test_codes import _server_key, _shift, _spy_argon2, _submit_layout_1, _wrong_and_unknown


def _check(client, code: str) -> int:
    token = csrf_token(client.get("/status").get_data(as_text=True))
    return client.post("/status", data={"code": code, "csrf_token": token}).status_code


def _bad_tag(code: str) -> str:
    """The same code with another tag (and a right check digit): what a made-up code is."""
    parsed = parse_code(code)
    return TrackingCode(parsed.lookup, parsed.secret, _shift(parsed.tag)).display()


class TestLookupBudget:
    def test_wrong_and_unknown_lookups_turn_busy_after_the_same_number(self, make_app):
        app = make_app(code_lookup_budget=3)
        client = app.test_client()
        wrong, unknown = _wrong_and_unknown(app, Reporter(client).submit_ok())
        assert [_check(client, wrong) for _ in range(4)] == [404, 404, 404, 503]
        assert [_check(client, unknown) for _ in range(4)] == [404, 404, 404, 503]

    def test_busy_lookup_runs_no_argon2_even_for_the_right_code(self, make_app, monkeypatch):
        app = make_app(code_lookup_budget=2)
        client = app.test_client()
        code, other = Reporter(client).submit_ok(), Reporter(client).submit_ok()
        wrong, _unknown = _wrong_and_unknown(app, code)
        _check(client, wrong), _check(client, wrong)
        calls = _spy_argon2(monkeypatch)
        assert _check(client, code) == 503
        assert calls == []
        assert _check(client, other) == 303  # another lookup is not affected

    def test_the_reporters_own_opens_never_spend_it(self, make_app):
        app = make_app(code_lookup_budget=2)
        client = app.test_client()
        code = Reporter(client).submit_ok()
        assert [_check(client, code) for _ in range(5)] == [303] * 5
        wrong, _unknown = _wrong_and_unknown(app, code)
        assert [_check(client, wrong) for _ in range(3)] == [404, 404, 503]

    def test_budget_comes_back_after_an_hour(self, make_app, wallclock):
        app = make_app(code_lookup_budget=1)
        client = app.test_client()
        code = Reporter(client).submit_ok()
        wrong, _unknown = _wrong_and_unknown(app, code)
        assert [_check(client, wrong), _check(client, code)] == [404, 503]
        wallclock.advance(3601)
        assert _check(client, code) == 303

    def test_budget_key_is_a_keyed_hash_of_the_lookup(self, make_app):
        store = ephemeral.MemoryStore()
        app = make_app(code_lookup_budget=5, state_store=store)
        client = app.test_client()
        code = Reporter(client).submit_ok()
        wrong, _unknown = _wrong_and_unknown(app, code)
        _check(client, wrong)
        lookup = parse_code(code).lookup
        assert list(store._data) == [
            "codes:lookup:" + crypto.keyed_hash(_server_key(app), b"code budget", lookup.encode())[:12].hex()
        ]
        assert not any(lookup in key for key in store._data)


class TestUntaggedBudget:
    def test_a_made_up_tag_spends_the_shared_budget_not_the_lookups(self, make_app, monkeypatch):
        app = make_app(code_untagged_budget=2, code_lookup_budget=5)
        client = app.test_client()
        code = Reporter(client).submit_ok()
        wrong, unknown = _wrong_and_unknown(app, code)
        assert [_check(client, _bad_tag(unknown)) for _ in range(3)] == [404, 404, 503]
        calls = _spy_argon2(monkeypatch)
        assert _check(client, _bad_tag(wrong)) == 503  # on the case's own lookup too
        assert calls == []  # refused before any Argon2
        assert _check(client, wrong) == 404  # a right tag spends its lookup's budget
        assert _check(client, code) == 303

    def test_layout_1_codes_share_it_and_still_open(self, make_app, monkeypatch, wallclock):
        app = make_app(code_untagged_budget=2)
        old = _submit_layout_1(app, monkeypatch)
        client = app.test_client()
        wrong, unknown = _wrong_and_unknown(app, old)
        assert [_check(client, wrong), _check(client, unknown), _check(client, old)] == [404, 404, 503]
        wallclock.advance(61)  # a new minute
        assert _check(client, old) == 303

    def test_codes_issued_under_an_earlier_secret_key_still_open(self, make_app, monkeypatch):
        first = make_app()
        code = Reporter(first.test_client()).submit_ok()
        after = make_app(secret_key="another-secret-key-" + "x" * 24)
        assert not codes.tag_matches(_server_key(after), parse_code(code))
        assert Reporter(after.test_client()).open_case(code).status_code == 303


class _DeadStore(ephemeral.MemoryStore):
    def get(self, key):
        raise ephemeral.StateUnavailable("down")

    def incr(self, key, ttl):
        raise ephemeral.StateUnavailable("down")


def test_checks_are_busy_while_the_state_store_is_down(make_app, monkeypatch):
    app = make_app(state_store=_DeadStore())
    client = app.test_client()
    code = Reporter(client).submit_ok()
    calls = _spy_argon2(monkeypatch)
    client.get("/?lang=en")
    token = csrf_token(client.get("/status").get_data(as_text=True))
    response = client.post("/status", data={"code": code, "csrf_token": token})
    assert response.status_code == 503 and calls == []
    assert "Many people are checking their reports right now" in response.get_data(as_text=True)


@pytest.mark.parametrize("tagged", [True, False])
def test_a_failure_the_store_cannot_count_still_answers_not_found(tagged):
    budget = codes.check_budget(_DeadStore(), b"k" * 32, codes.new_code(b"k" * 32), tagged, 3, 3)
    budget.failed()  # does not raise: the answer stays "not found"
    with pytest.raises(codes.Busy):
        budget.admit()


def test_budgets_count_in_their_own_windows():
    store = ephemeral.MemoryStore(clock=lambda: 1000.0)
    code = codes.new_code(b"k" * 32)
    tagged = codes.check_budget(store, b"k" * 32, code, True, 2, 7)
    untagged = codes.check_budget(store, b"k" * 32, code, False, 2, 7)
    assert (tagged.limit, tagged.window, untagged.limit, untagged.window) == (2, 3600, 7, 60)
    assert untagged.key == "codes:untagged" and tagged.key.startswith("codes:lookup:")
    tagged.admit()
    tagged.failed()
    tagged.admit()
    tagged.failed()
    with pytest.raises(codes.Busy):
        tagged.admit()
    untagged.admit()  # a separate count
