"""Tracking codes: format, check digit, real Argon2 parameters, and unknown == wrong."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

import pytest

from whistle import codes, config, crypto, db
from whistle.codes import CodeCost, MalformedCode, damm_digit, new_code, parse_code
from whistle.models import Report

from .conftest import CHEAP_COST, csrf_token


class TestFormat:
    def test_new_code_is_seven_groups_of_four_digits(self):
        code = new_code()
        assert re.fullmatch(r"(\d{4} ){6}\d{4}", code.display())
        assert parse_code(code.display()) == code

    def test_secret_part_has_at_least_64_bits(self):
        assert codes.SECRET_DIGITS * 3.3219 >= 64

    def test_codes_do_not_repeat(self):
        assert len({new_code().digits for _ in range(2000)}) == 2000

    def test_check_digit_catches_every_single_digit_error(self):
        code = new_code().digits
        for i in range(len(code)):
            for d in "0123456789":
                if d != code[i]:
                    with pytest.raises(MalformedCode):
                        parse_code(code[:i] + d + code[i + 1 :])

    def test_check_digit_catches_every_adjacent_swap(self):
        for _ in range(50):
            code = new_code().digits
            for i in range(len(code) - 1):
                if code[i] != code[i + 1]:
                    swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
                    with pytest.raises(MalformedCode):
                        parse_code(swapped)

    def test_damm_known_answer(self):
        assert damm_digit("572") == "4"  # the algorithm's published example

    @pytest.mark.parametrize("typed", ["", "12", "x" * 28, "1" * 500, "12345678901234567890123456789"])
    def test_parse_refuses_malformed(self, typed):
        with pytest.raises(MalformedCode):
            parse_code(typed)

    def test_code_repr_hides_secret(self):
        code = new_code()
        assert code.secret not in repr(code)


def _load(tmp_path: Path, toml: str = "", overrides: dict | None = None) -> config.Settings:
    (tmp_path / "config.toml").write_text('secret_key = "' + "s" * 40 + '"\n' + toml, "utf-8")
    return config.load(tmp_path, overrides)


class TestCostFloor:
    def test_default_cost_is_the_real_one_with_the_production_floor(self, tmp_path):
        settings = _load(tmp_path)
        assert settings.code_cost == codes.DEFAULT_COST and settings.code_cost_floor == codes.FLOOR

    @pytest.mark.parametrize(
        "table",
        [
            "time_cost = 1\nmemory_cost = 65536\nparallelism = 4",
            "time_cost = 3\nmemory_cost = 32768\nparallelism = 4",
            "time_cost = 3\nmemory_cost = 4194304\nparallelism = 4",
            "time_cost = 3\nmemory_cost = 65536\nparallelism = 4\nhash_len = 8",
        ],
    )
    def test_config_file_cannot_go_below_the_floor_or_above_the_ceiling(self, tmp_path, table, monkeypatch):
        monkeypatch.delenv("WHISTLE_UNSAFE_FAST_KDF", raising=False)
        with pytest.raises(config.ConfigError, match="code_cost"):
            _load(tmp_path, f"[code_cost]\n{table}\n")

    def test_stronger_cost_in_config_file_is_taken(self, tmp_path):
        settings = _load(tmp_path, "[code_cost]\ntime_cost = 4\nmemory_cost = 131072\nparallelism = 4\n")
        assert settings.code_cost == CodeCost(4, 131072, 4)

    def test_config_file_cannot_claim_the_unsafe_cost(self, tmp_path, monkeypatch):
        monkeypatch.setenv("WHISTLE_UNSAFE_CODE_COST", "1")  # no such switch: ignored
        with pytest.raises(config.ConfigError, match="tests only"):
            _load(tmp_path, "[unsafe_code_cost]\ntime_cost = 1\nmemory_cost = 256\nparallelism = 1\n")

    def test_tests_pass_a_cheap_cost_explicitly(self, tmp_path):
        settings = _load(tmp_path, overrides={"unsafe_code_cost": CHEAP_COST})
        assert settings.code_cost == CHEAP_COST and settings.code_cost_floor == codes.UNSAFE_FLOOR

    def test_unsafe_cost_must_be_a_code_cost(self, tmp_path):
        with pytest.raises(config.ConfigError):
            _load(tmp_path, overrides={"unsafe_code_cost": {"time_cost": 1, "memory_cost": 256, "parallelism": 1}})

    def test_test_servers_lift_the_floor_with_the_fast_kdf_switch(self, tmp_path, monkeypatch):
        monkeypatch.setenv("WHISTLE_UNSAFE_FAST_KDF", "1")
        settings = _load(tmp_path, "[code_cost]\ntime_cost = 1\nmemory_cost = 256\nparallelism = 1\n")
        assert settings.code_cost == CHEAP_COST and settings.code_cost_floor == codes.UNSAFE_FLOOR


class TestDerivation:
    def test_real_parameters_are_rfc9106_second_option_or_stronger(self):
        cost = codes.DEFAULT_COST
        assert cost.memory_cost >= 64 * 1024 and cost.time_cost >= 3 and cost.parallelism >= 1
        assert cost.within(codes.FLOOR)

    @pytest.mark.slow
    def test_default_app_stores_real_parameters(self, make_app, reporter):
        app = make_app(unsafe_code_cost=None)  # the defaults, as in production
        client = app.test_client()
        from .conftest import Reporter

        Reporter(client).submit_ok()
        with app.app_context():
            report = db.session().query(Report).one()
            assert (report.code_time_cost, report.code_memory_cost, report.code_parallelism) == (3, 65536, 4)

    def test_per_report_salt_differs(self, app, reporter):
        reporter.submit_ok()
        reporter.submit_ok()
        with app.app_context():
            salts = [r.code_salt for r in db.session().query(Report)]
        assert len(salts) == 2 and salts[0] != salts[1] and all(len(s) == 16 for s in salts)

    def test_reporter_key_comes_from_code(self, app, reporter):
        code = parse_code(reporter.submit_ok())
        with app.app_context():
            report = db.session().query(Report).one()
            cost = CodeCost(report.code_time_cost, report.code_memory_cost, report.code_parallelism)
            keys = codes.derive(code.secret, report.code_salt, cost)
        assert keys.reporter_key.public_key().to_bytes() == report.reporter_public_key
        assert crypto.constant_time_equal(keys.verifier, report.code_verifier)


def _wrong_and_unknown(code: str) -> tuple[str, str]:
    """A code with the right lookup and a wrong secret, and one with an unknown lookup;
    both with valid check digits."""
    parsed = parse_code(code)
    secret = str((int(parsed.secret) + 1) % 10**20).zfill(20)
    wrong = codes.TrackingCode(parsed.lookup, secret)
    lookup = str((int(parsed.lookup) + 1) % 10**7).zfill(7)
    unknown = codes.TrackingCode(lookup, parsed.secret)
    return wrong.display(), unknown.display()


def _post_code(client, code: str):
    page = client.get("/status").get_data(as_text=True)
    token = csrf_token(page)
    started = time.perf_counter()
    response = client.post("/status", data={"code": code, "csrf_token": token})
    return response, time.perf_counter() - started, token


class TestUnknownEqualsWrong:
    def test_same_status_and_same_page(self, reporter, client):
        wrong, unknown = _wrong_and_unknown(reporter.submit_ok())
        r_wrong, _, _ = _post_code(client, wrong)
        r_unknown, _, _ = _post_code(client, unknown)
        assert r_wrong.status_code == r_unknown.status_code == 404
        token = re.compile(r'name="csrf_token" type="hidden" value="[^"]+"')
        body_wrong = token.sub("", r_wrong.get_data(as_text=True))
        body_unknown = token.sub("", r_unknown.get_data(as_text=True))
        assert body_wrong == body_unknown
        assert len(r_wrong.get_data()) == len(r_unknown.get_data())
        assert wrong not in body_wrong and unknown not in body_unknown

    def test_same_argon2_work(self, reporter, client, monkeypatch):
        wrong, unknown = _wrong_and_unknown(reporter.submit_ok())
        calls: list[tuple] = []
        real = crypto.argon2id

        def spy(secret, salt, **kw):
            calls.append((len(secret), len(salt), tuple(sorted(kw.items()))))
            return real(secret, salt, **kw)

        monkeypatch.setattr(crypto, "argon2id", spy)
        _post_code(client, wrong)
        wrong_calls = list(calls)
        calls.clear()
        _post_code(client, unknown)
        assert wrong_calls == calls and len(calls) == 1

    def test_indistinguishable_time(self, make_app):
        """Medians of interleaved wrong and unknown attempts, with a derivation costly enough
        (8 MiB) to dominate, as the real one does; the bound is loose on purpose."""
        app = make_app(unsafe_code_cost=CodeCost(time_cost=1, memory_cost=8 * 1024, parallelism=1))
        from .conftest import Reporter

        client = app.test_client()
        wrong, unknown = _wrong_and_unknown(Reporter(client).submit_ok())
        times = {"wrong": [], "unknown": []}
        for _ in range(15):
            for name, code in (("wrong", wrong), ("unknown", unknown)):
                times[name].append(_post_code(client, code)[1])
        med_wrong, med_unknown = statistics.median(times["wrong"]), statistics.median(times["unknown"])
        assert abs(med_wrong - med_unknown) / max(med_wrong, med_unknown) < 0.3, (med_wrong, med_unknown)
