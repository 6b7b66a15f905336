"""Tracking codes: layouts, check digit, tag, real Argon2 parameters and their floor,
unknown == wrong (under one cost and across a cost change), and a case's move to the
current cost."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import statistics
import threading
import time
from pathlib import Path

import pytest

from whistle import cases, codes, config, crypto, db, intake, retention
from whistle.codes import CodeCost, MalformedCode, TrackingCode, WrongLength, damm_digit, new_code, parse_code
from whistle.models import Author, Report

from .conftest import CHEAP_COST, Reporter, csrf_token, officer_says

VECTORS = Path(__file__).parent / "vectors"
KEY = b"k" * 32


def _digits(n: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(n))


def _v1_code() -> TrackingCode:
    return TrackingCode(_digits(codes.V1_LOOKUP_DIGITS), _digits(codes.SECRET_DIGITS))


def _with_check(body: str) -> str:
    return body + damm_digit(body)


class TestLayout:
    def test_new_code_is_eight_groups_of_four_digits(self):
        code = new_code(KEY)
        assert re.fullmatch(r"(\d{4} ){7}\d{4}", code.display())
        assert len(code.digits) == codes.CODE_DIGITS == 32
        assert parse_code(code.display()) == code

    def test_parts_of_a_new_code(self):
        code = new_code(KEY)
        assert (len(code.lookup), len(code.tag), len(code.secret)) == (6, 5, 20)
        assert code.digits == code.lookup + code.tag + code.secret + damm_digit(code.digits[:-1])
        assert code.layout == 2

    def test_parse_splits_lookup_tag_secret_and_check(self):
        digits = _with_check("123456" + "78901" + "23456789012345678901")
        code = parse_code(digits)
        assert (code.lookup, code.tag, code.secret) == ("123456", "78901", "23456789012345678901")

    def test_parse_reads_a_layout_1_code(self):
        digits = _with_check("1234567" + "89012345678901234567")
        code = parse_code(" ".join(digits[i : i + 4] for i in range(0, 28, 4)))
        assert (code.lookup, code.tag, code.secret, code.layout) == ("1234567", None, "89012345678901234567", 1)
        assert code.digits == digits and len(code.display().split()) == 7

    def test_secret_part_has_at_least_64_bits(self):
        assert codes.SECRET_DIGITS * 3.3219 >= 64

    def test_codes_do_not_repeat(self):
        assert len({new_code(KEY).digits for _ in range(2000)}) == 2000

    @pytest.mark.parametrize("make", [lambda: new_code(KEY), _v1_code], ids=["layout 2", "layout 1"])
    def test_check_digit_catches_every_single_digit_error(self, make):
        code = make().digits
        for i in range(len(code)):
            for d in "0123456789":
                if d != code[i]:
                    with pytest.raises(MalformedCode):
                        parse_code(code[:i] + d + code[i + 1 :])

    @pytest.mark.parametrize("make", [lambda: new_code(KEY), _v1_code], ids=["layout 2", "layout 1"])
    def test_check_digit_catches_every_adjacent_swap(self, make):
        for _ in range(30):
            code = make().digits
            for i in range(len(code) - 1):
                if code[i] != code[i + 1]:
                    with pytest.raises(MalformedCode):
                        parse_code(code[:i] + code[i + 1] + code[i] + code[i + 2 :])

    def test_damm_known_answer(self):
        assert damm_digit("572") == "4"  # the algorithm's published example

    @pytest.mark.parametrize("typed", ["", "12", "x" * 28, "1" * 500, "12345678901234567890123456789", "1234 5678 90ab"])
    def test_parse_refuses_malformed(self, typed):
        with pytest.raises(MalformedCode):
            parse_code(typed)

    @pytest.mark.parametrize("n", [27, 29, 31, 33])
    def test_parse_tells_a_wrong_number_of_digits(self, n):
        with pytest.raises(WrongLength):
            parse_code(_with_check(_digits(n - 1)))

    def test_a_wrong_check_digit_is_not_a_wrong_length(self):
        digits = new_code(KEY).digits
        with pytest.raises(MalformedCode) as caught:
            parse_code(digits[:-1] + str((int(digits[-1]) + 1) % 10))
        assert not isinstance(caught.value, WrongLength)

    def test_parse_accepts_thai_digits_dashes_and_dots(self):
        code = new_code(KEY)
        thai = code.display().translate(str.maketrans("0123456789 ", "๐๑๒๓๔๕๖๗๘๙-"))
        assert parse_code(thai) == code
        assert parse_code(code.display().replace(" ", ".")) == code

    def test_parse_accepts_exactly_space_dash_dot_nbsp_and_tab_between_digits(self):
        code = new_code(KEY)
        groups = code.display().split(" ")
        for separator in (" ", "-", ".", "\u00a0", "\t"):
            assert parse_code(separator.join(groups)) == code
        for separator in ("X", "x", "/", "_", ",", "\n", "\u3000"):
            with pytest.raises(MalformedCode):
                parse_code(separator.join(groups))

    def test_parse_caps_the_text_before_any_work(self):
        code = new_code(KEY).digits
        assert parse_code(code + " " * (4 * 32 - len(code))) is not None
        with pytest.raises(MalformedCode):
            parse_code(code + " " * (4 * 32 - len(code) + 1))

    @pytest.mark.parametrize(
        "parts",
        [
            ("12345", "1" * 20, "12345"),  # lookup too short
            ("1234567", "1" * 20, "12345"),  # a 7-digit lookup is layout 1: no tag
            ("123456", "1" * 20, None),  # a 6-digit lookup needs its tag
            ("123456", "1" * 20, "1234"),  # tag too short
            ("123456", "1" * 19, "12345"),  # secret too short
            ("1234567", "1" * 21, None),
            ("๑๒๓๔๕๖", "1" * 20, "12345"),  # parts hold ASCII digits only
            ("12345a", "1" * 20, "12345"),
        ],
    )
    def test_code_parts_have_fixed_lengths(self, parts):
        with pytest.raises(ValueError):
            TrackingCode(*parts)

    def test_code_repr_hides_secret(self):
        code = new_code(KEY)
        assert code.secret not in repr(code)

    def test_code_cannot_be_changed_once_made(self):
        code = new_code(KEY)
        with pytest.raises(AttributeError):
            code.secret = "1" * 20

    def test_last_group_is_the_last_four_digits(self):
        code = new_code(KEY)
        assert code.last_group == code.digits[-4:] == code.display().split()[-1]


class TestStatusForm:
    def test_a_missing_group_is_named(self, client):
        client.get("/?lang=en")
        response, _, _ = _post_code(client, new_code(KEY).display()[:-1])  # a digit short
        assert response.status_code == 400
        assert "A tracking code has 32 digits in eight groups of four" in response.get_data(as_text=True)

    def test_a_typo_is_caught_before_any_argon2(self, client, monkeypatch):
        calls = _spy_argon2(monkeypatch)
        digits = new_code(KEY).digits
        client.get("/?lang=en")
        response, _, _ = _post_code(client, digits[:3] + str((int(digits[3]) + 1) % 10) + digits[4:])
        assert response.status_code == 400 and calls == []
        assert "This is not a valid tracking code" in response.get_data(as_text=True)


class TestTag:
    def test_tag_known_answer(self):
        v = json.loads((VECTORS / "code.json").read_text("utf-8"))["layout_2"]
        server_key = bytes.fromhex(v["server_key"])
        assert crypto.hkdf(v["secret_key"].encode(), b"whistle v1 server key") == server_key
        assert codes.code_tag(server_key, v["lookup"], v["secret"]) == v["tag"]
        code = TrackingCode(v["lookup"], v["secret"], v["tag"])
        assert code.digits == v["digits"] and code.display() == v["display"]
        assert parse_code(v["display"]) == code and codes.tag_matches(server_key, code)

    def test_tag_is_an_hmac_of_lookup_and_secret_reduced_to_five_digits(self):
        """The construction docs/crypto.md section 7 gives, computed independently."""
        lookup, secret = "000042", "12345678901234567890"
        mac = hmac.new(KEY, b"code tag\x00" + (lookup + secret).encode(), hashlib.sha256).digest()
        assert codes.code_tag(KEY, lookup, secret) == f"{int.from_bytes(mac[:8], 'big') % 100_000:05d}"

    def test_tag_depends_on_key_lookup_and_secret(self):
        v = json.loads((VECTORS / "code.json").read_text("utf-8"))["layout_2"]
        key = bytes.fromhex(v["server_key"])
        assert codes.code_tag(b"x" * 32, v["lookup"], v["secret"]) != v["tag"]
        assert codes.code_tag(key, "482191", v["secret"]) != v["tag"]
        assert codes.code_tag(key, v["lookup"], "31415926535897932385") != v["tag"]

    def test_tag_matches_only_under_its_key_and_never_for_layout_1(self):
        code = new_code(KEY)
        assert codes.tag_matches(KEY, code)
        assert not codes.tag_matches(b"j" * 32, code)
        other = TrackingCode(code.lookup, code.secret, f"{(int(code.tag) + 1) % 100_000:05d}")
        assert not codes.tag_matches(KEY, other)
        assert not codes.tag_matches(KEY, _v1_code())


class TestDerivation:
    def test_real_parameters_are_rfc9106_second_option_or_stronger(self):
        cost = codes.DEFAULT_COST
        assert cost.memory_cost >= 64 * 1024 and cost.time_cost >= 3 and cost.parallelism >= 1
        assert cost.within(codes.FLOOR)

    def test_real_parameters_are_exactly_rfc9106_second_option(self):
        """t=3, 64 MiB, 4 lanes: what the deployment stores for a case and docs/crypto.md says."""
        assert codes.DEFAULT_COST.as_tuple() == CodeCost().as_tuple() == (3, 64 * 1024, 4)
        assert codes.FLOOR.as_tuple() == (3, 64 * 1024, 1)
        assert codes.CEILING.as_tuple() == (10, 1024 * 1024, 8)

    def test_unsafe_floor_is_the_least_argon2id_runs(self):
        assert codes.UNSAFE_FLOOR.as_tuple() == (1, 8, 1)
        assert len(crypto.argon2id(b"code", bytes(16), time_cost=1, memory_cost=8, parallelism=1)) == 32

    @pytest.mark.slow
    def test_default_app_stores_real_parameters(self, make_app):
        app = make_app(unsafe_code_cost=None)  # the defaults, as in production
        Reporter(app.test_client()).submit_ok()
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
        assert report.lookup == code.lookup and report.reporter_key_sealed is None
        assert keys.reporter_key.public_key().to_bytes() == report.reporter_public_key
        assert crypto.constant_time_equal(keys.verifier, report.code_verifier)

    def test_decoy_salt_is_stable_per_lookup_and_key(self):
        salt = codes.decoy_salt(KEY, "123456")
        assert salt == hmac.new(KEY, b"decoy salt\x00123456", hashlib.sha256).digest()[:16]  # docs/crypto.md 7.6
        assert len(salt) == codes.SALT_LEN == 16
        assert salt == codes.decoy_salt(KEY, "123456")
        assert salt != codes.decoy_salt(KEY, "123457") and salt != codes.decoy_salt(b"j" * 32, "123456")

    def test_derive_each_runs_its_plan_in_order(self, monkeypatch):
        calls = _spy_argon2(monkeypatch)
        plan = [(b"a" * 16, CodeCost(2, 256, 1)), (b"b" * 16, CodeCost(1, 512, 2))]
        out = codes.derive_each("1" * 20, plan, untagged=False)
        assert [(salt, cost) for salt, cost in calls] == [(b"a" * 16, (2, 256, 1)), (b"b" * 16, (1, 512, 2))]
        assert len(out) == 2 and out[0].keys.verifier != out[1].keys.verifier

    def test_sealed_reporter_key_known_answer(self):
        v = json.loads((VECTORS / "code.json").read_text("utf-8"))
        master = bytes.fromhex(v["master"])
        layout = v["layout_2"]
        assert crypto.hkdf(master, bytes.fromhex(layout["seal_key_info"])).hex() == layout["seal_key"]
        key = codes.open_reporter_key(bytes.fromhex(layout["seal_key"]), bytes.fromhex(layout["sealed_reporter_key"]))
        assert key.key_id.hex() == v["reporter_key_id"]
        with pytest.raises(crypto.OpenError):
            codes.open_reporter_key(b"\0" * 32, bytes.fromhex(layout["sealed_reporter_key"]))

    def test_derivation_cannot_be_changed_once_made(self):
        import dataclasses

        [derived] = codes.derive_each("1" * 20, [(b"s" * 16, CHEAP_COST)], untagged=False)
        with pytest.raises(dataclasses.FrozenInstanceError):
            derived.seal_key = bytes(32)  # type: ignore[misc]

    def test_derivation_repr_shows_no_key(self):
        [derived] = codes.derive_each("1" * 20, [(b"s" * 16, CHEAP_COST)], untagged=False)
        shown = repr(derived) + str(derived)
        assert derived.seal_key.hex() not in shown and repr(derived.seal_key) not in shown
        assert derived.keys.verifier.hex() not in shown and repr(derived.keys.verifier) not in shown

    def test_derive_each_gives_the_vector_keys(self):
        v = json.loads((VECTORS / "code.json").read_text("utf-8"))
        a = v["argon2id"]
        cost = CodeCost(a["time_cost"], a["memory_cost"], a["parallelism"])
        [derived] = codes.derive_each(v["secret"], [(bytes.fromhex(v["salt"]), cost)], untagged=False)
        assert derived.keys.verifier.hex() == v["verifier"]
        assert derived.keys.reporter_key.key_id.hex() == v["reporter_key_id"]
        assert derived.seal_key.hex() == v["layout_2"]["seal_key"]

    def test_sealed_reporter_key_round_trip_and_tamper(self):
        key = crypto.PrivateKey.generate()
        sealed = codes.seal_reporter_key(b"s" * 32, key)
        assert codes.open_reporter_key(b"s" * 32, sealed) == key
        with pytest.raises(crypto.OpenError):
            codes.open_reporter_key(b"s" * 32, sealed[:-1] + bytes([sealed[-1] ^ 1]))


class TestCostBounds:
    def test_costs_to_run_is_the_current_one_alone_without_older_cases(self):
        current = CodeCost(3, 65536, 4)
        assert codes.costs_to_run(current, [], codes.FLOOR) == [current]
        assert codes.costs_to_run(current, [(current, 12)], codes.FLOOR) == [current]

    def test_costs_to_run_adds_older_costs_in_a_fixed_order(self):
        current, older = CodeCost(4, 65536, 4), CodeCost(3, 65536, 4)
        assert codes.costs_to_run(current, [(current, 1), (older, 5)], codes.FLOOR) == [older, current]
        assert codes.costs_to_run(current, [(older, 5), (current, 1)], codes.FLOOR) == [older, current]

    @pytest.mark.parametrize(
        "stored",
        [
            CodeCost(1, 65536, 4),  # below the floor's passes
            CodeCost(3, 1024, 4),  # below the floor's memory
            CodeCost(3, 4 * 1024**3, 4),  # 4 TiB
            CodeCost(11, 65536, 4),  # above the ceiling's passes
            CodeCost(3, 65536, 64),  # above the ceiling's lanes
        ],
    )
    def test_costs_outside_the_bounds_are_never_run(self, stored):
        current = CodeCost(3, 65536, 4)
        assert codes.costs_to_run(current, [(stored, 1000)], codes.FLOOR) == [current]

    def test_at_most_two_older_costs_those_of_the_most_cases(self):
        current = CodeCost(5, 65536, 4)
        older = [(CodeCost(3, 65536, 4), 10), (CodeCost(4, 65536, 4), 30), (CodeCost(3, 131072, 4), 20)]
        assert codes.costs_to_run(current, older, codes.FLOOR) == [
            CodeCost(3, 131072, 4), CodeCost(4, 65536, 4), current,
        ]

    @pytest.mark.parametrize(
        "cost, floor, inside",
        [
            (CodeCost(3, 65536, 1), codes.FLOOR, True),  # the floor itself
            (CodeCost(2, 65536, 4), codes.FLOOR, False),
            (CodeCost(3, 65535, 4), codes.FLOOR, False),
            (CodeCost(10, 1024 * 1024, 8), codes.FLOOR, True),  # the ceiling itself
            (CodeCost(11, 1024 * 1024, 8), codes.FLOOR, False),
            (CodeCost(10, 1024 * 1024 + 1, 8), codes.FLOOR, False),
            (CodeCost(10, 1024 * 1024, 9), codes.FLOOR, False),
            (CodeCost(1, 8, 1), codes.UNSAFE_FLOOR, True),  # the least Argon2id runs
            (CodeCost(1, 7, 1), codes.UNSAFE_FLOOR, False),
            (CodeCost(0, 256, 1), codes.UNSAFE_FLOOR, False),
        ],
    )
    def test_bounds_are_inclusive_and_exact(self, cost, floor, inside):
        assert cost.within(floor) is inside

    def test_argon2_needs_eight_kib_per_lane(self):
        assert not CodeCost(1, 15, 2).within(codes.UNSAFE_FLOOR)
        assert CodeCost(1, 16, 2).within(codes.UNSAFE_FLOOR)


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


# --------------------------------------------------------------------------- checking codes


def _server_key(app) -> bytes:
    return app.extensions["whistle.server_key"]


def _shift(digits: str) -> str:
    return str((int(digits) + 1) % 10 ** len(digits)).zfill(len(digits))


def _wrong_and_unknown(app, code: str) -> tuple[str, str]:
    """A code with the right lookup and a wrong secret, and one with an unknown lookup; both
    well-formed, with right tags (layout 2) or none (layout 1)."""
    parsed = parse_code(code)
    key = _server_key(app)

    def made(lookup: str, secret: str) -> str:
        tag = codes.code_tag(key, lookup, secret) if parsed.tag is not None else None
        return TrackingCode(lookup, secret, tag).display()

    return made(parsed.lookup, _shift(parsed.secret)), made(_shift(parsed.lookup), parsed.secret)


def _post_code(client, code: str):
    token = csrf_token(client.get("/status").get_data(as_text=True))
    started = time.perf_counter()
    response = client.post("/status", data={"code": code, "csrf_token": token})
    return response, time.perf_counter() - started, token


def _spy_argon2(monkeypatch) -> list[tuple[bytes, tuple[int, int, int]]]:
    calls: list[tuple[bytes, tuple[int, int, int]]] = []
    real = crypto.argon2id

    def spy(secret, salt, *, time_cost, memory_cost, parallelism):
        calls.append((salt, (time_cost, memory_cost, parallelism)))
        return real(secret, salt, time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)

    monkeypatch.setattr(crypto, "argon2id", spy)
    return calls


def _submit_layout_1(app, monkeypatch) -> str:
    """A case whose code was issued in layout 1 (before the tag), as older cases have."""
    monkeypatch.setattr(codes, "new_code", lambda _key: _v1_code())
    code = Reporter(app.test_client()).submit_ok()
    monkeypatch.undo()
    assert len(code.split()) == 7
    return code


def _bodies_equal(r1, r2) -> bool:
    token = re.compile(r'name="csrf_token" type="hidden" value="[^"]+"')
    return token.sub("", r1.get_data(as_text=True)) == token.sub("", r2.get_data(as_text=True))


class TestUnknownEqualsWrong:
    @pytest.mark.parametrize("layout", [2, 1])
    def test_same_status_and_same_page(self, app, reporter, client, monkeypatch, layout):
        code = reporter.submit_ok() if layout == 2 else _submit_layout_1(app, monkeypatch)
        wrong, unknown = _wrong_and_unknown(app, code)
        r_wrong, _, _ = _post_code(client, wrong)
        r_unknown, _, _ = _post_code(client, unknown)
        assert r_wrong.status_code == r_unknown.status_code == 404
        assert _bodies_equal(r_wrong, r_unknown)
        assert len(r_wrong.get_data()) == len(r_unknown.get_data())
        assert wrong not in r_wrong.get_data(as_text=True) and unknown not in r_unknown.get_data(as_text=True)
        assert reporter.open_case(code).status_code == 303

    @pytest.mark.parametrize("layout", [2, 1])
    def test_same_argon2_work(self, app, reporter, client, monkeypatch, layout):
        code = reporter.submit_ok() if layout == 2 else _submit_layout_1(app, monkeypatch)
        wrong, unknown = _wrong_and_unknown(app, code)
        calls = _spy_argon2(monkeypatch)
        _post_code(client, wrong)
        wrong_work = [cost for _salt, cost in calls]
        calls.clear()
        _post_code(client, unknown)
        assert wrong_work == [cost for _salt, cost in calls] == [CHEAP_COST.as_tuple()]

    def test_indistinguishable_time(self, make_app):
        """Medians of interleaved wrong and unknown attempts, with a derivation costly enough
        (8 MiB) to dominate, as the real one does; the bound is loose on purpose."""
        app = make_app(unsafe_code_cost=CodeCost(time_cost=1, memory_cost=8 * 1024, parallelism=1), code_lookup_budget=100)
        client = app.test_client()
        wrong, unknown = _wrong_and_unknown(app, Reporter(client).submit_ok())
        times = {"wrong": [], "unknown": []}
        for _ in range(15):
            for name, code in (("wrong", wrong), ("unknown", unknown)):
                times[name].append(_post_code(client, code)[1])
        med_wrong, med_unknown = statistics.median(times["wrong"]), statistics.median(times["unknown"])
        assert abs(med_wrong - med_unknown) / max(med_wrong, med_unknown) < 0.3, (med_wrong, med_unknown)


OLD, NEW = CodeCost(1, 256, 1), CodeCost(2, 256, 1)


class TestCostChange:
    """A case made at one cost, checked by a server configured with another."""

    @pytest.fixture
    def moved(self, make_app):
        before = make_app(unsafe_code_cost=OLD)
        code = Reporter(before.test_client()).submit_ok()
        return before, make_app(unsafe_code_cost=NEW), code

    @staticmethod
    def _row(app) -> Report:
        with app.app_context():
            report = db.session().query(Report).one()
            db.session().expunge(report)
            return report

    def test_wrong_and_unknown_run_every_cost_in_use(self, moved, monkeypatch):
        _before, after, code = moved
        wrong, unknown = _wrong_and_unknown(after, code)
        client = after.test_client()
        calls = _spy_argon2(monkeypatch)
        assert _post_code(client, wrong)[0].status_code == 404
        wrong_work = [cost for _salt, cost in calls]
        calls.clear()
        assert _post_code(client, unknown)[0].status_code == 404
        assert wrong_work == [cost for _salt, cost in calls] == [OLD.as_tuple(), NEW.as_tuple()]

    def test_unknown_lookup_runs_decoys_only(self, moved, monkeypatch):
        _before, after, code = moved
        _wrong, unknown = _wrong_and_unknown(after, code)
        calls = _spy_argon2(monkeypatch)
        _post_code(after.test_client(), unknown)
        decoy = codes.decoy_salt(_server_key(after), parse_code(unknown).lookup)
        assert [salt for salt, _cost in calls] == [decoy, decoy]

    def test_opening_moves_the_case_to_the_current_cost(self, moved, monkeypatch):
        _before, after, code = moved
        old = self._row(after)
        reporter = Reporter(after.test_client())
        assert reporter.open_case(code).status_code == 303
        new = self._row(after)
        assert (new.code_time_cost, new.code_memory_cost, new.code_parallelism) == NEW.as_tuple()
        assert new.code_salt != old.code_salt and len(new.code_salt) == 16
        assert new.code_verifier != old.code_verifier
        assert new.reporter_public_key == old.reporter_public_key  # the reporter keeps their key
        assert old.reporter_key_sealed is None and new.reporter_key_sealed is not None
        # The old salt and cost no longer verify the code; the new ones do.
        secret = parse_code(code).secret
        assert codes.derive(secret, new.code_salt, NEW).verifier == new.code_verifier
        # With no case left at the old cost, checks run the current cost alone.
        wrong, unknown = _wrong_and_unknown(after, code)
        calls = _spy_argon2(monkeypatch)
        _post_code(after.test_client(), wrong)
        _post_code(after.test_client(), unknown)
        assert [cost for _salt, cost in calls] == [NEW.as_tuple(), NEW.as_tuple()]

    def test_moved_case_opens_again_and_keeps_its_thread(self, moved, clock, officer_key):
        before, after, code = moved
        with before.app_context():
            case_id = db.session().query(Report).one().id
        officer_says(before, case_id, "Sealed before the move", officer_key)
        reporter = Reporter(after.test_client())
        assert reporter.open_case(code).status_code == 303
        assert "Sealed before the move" in reporter.client.get("/case").get_data(as_text=True)
        officer_says(after, case_id, "Sealed after the move", officer_key)
        again = Reporter(after.test_client())
        assert again.open_case(code).status_code == 303
        page = again.client.get("/case").get_data(as_text=True)
        assert "Sealed before the move" in page and "Sealed after the move" in page

    def test_a_moved_case_with_its_sealed_key_altered_opens_nothing(self, moved):
        _before, after, code = moved
        assert Reporter(after.test_client()).open_case(code).status_code == 303
        with after.app_context():
            report = db.session().query(Report).one()
            other = codes.seal_reporter_key(b"x" * 32, crypto.PrivateKey.generate())
            report.reporter_key_sealed = other
            db.session().commit()
        assert Reporter(after.test_client()).open_case(code).status_code == 404

    def test_moving_back_to_a_lower_cost_works_the_same_way(self, moved):
        before, after, code = moved
        assert Reporter(after.test_client()).open_case(code).status_code == 303
        assert Reporter(before.test_client()).open_case(code).status_code == 303
        assert self._row(before).code_time_cost == OLD.time_cost
        assert Reporter(after.test_client()).open_case(code).status_code == 303

    def test_a_purge_empties_the_sealed_key(self, moved, clock):
        _before, after, code = moved
        assert Reporter(after.test_client()).open_case(code).status_code == 303
        with after.app_context():
            case_id = db.session().query(Report).one().id
            cases.close_case(db.session(), case_id, "substantiated", clock())
            assert retention.purge_closed(db.session(), after.extensions["whistle.blobs"], clock() + dt.timedelta(days=2), 1) == 1
        assert self._row(after).reporter_key_sealed is None
        assert Reporter(after.test_client()).open_case(code).status_code == 404

    def test_costs_read_from_the_database_are_bounded(self, make_app, monkeypatch, caplog):
        """With the production floor, a row claiming t=1 or 2 TiB runs neither; its case
        cannot be opened, and the others still can."""
        fake_calls: list[tuple[int, int, int]] = []

        def fake_argon2(secret, salt, *, time_cost, memory_cost, parallelism):
            fake_calls.append((time_cost, memory_cost, parallelism))
            return hashlib.sha256(secret + salt + bytes([time_cost])).digest()

        monkeypatch.setattr(crypto, "argon2id", fake_argon2)
        app = make_app(unsafe_code_cost=None)  # the real cost and floor; Argon2 faked
        client = app.test_client()
        codes_given = [Reporter(client).submit_ok() for _ in range(3)]
        with app.app_context():
            rows = db.session().query(Report).order_by(Report.id).all()
            rows[0].code_time_cost = 1
            rows[1].code_memory_cost = 2**31 - 1
            db.session().commit()
        fake_calls.clear()
        assert [Reporter(client).open_case(c).status_code for c in codes_given] == [404, 404, 303]
        assert set(fake_calls) == {codes.DEFAULT_COST.as_tuple()}
        assert "cannot be opened" in caplog.text


# --------------------------------------------------------------------------- the Argon2 gate, more than 2 slots


def _enter(stack, context):
    stack.enter_context(context)


def _attempt(gate: codes.ArgonGate, *, untagged: bool = False, hold: threading.Event | None = None) -> list:
    """Try a check in a thread; the list gets "ran" or "busy" when it is done."""
    def run():
        try:
            with gate.check(untagged=untagged):
                outcome.append("ran")
                if hold is not None:
                    hold.wait(30)
        except codes.Busy:
            outcome.append("busy")

    thread = threading.Thread(target=run, daemon=True)
    outcome: list = [thread]
    thread.start()
    return outcome


@pytest.mark.parametrize("slots", [3, 5])
def test_argon_gate_keeps_one_slot_for_reports_whatever_its_size(slots):
    gate = codes.ArgonGate(slots, check_wait=0.05)
    with contextlib.ExitStack() as stack:
        for _ in range(slots - 1):
            _enter(stack, gate.check(untagged=False))
        with pytest.raises(codes.Busy):  # every check slot taken: a check gives up
            _enter(stack, gate.check(untagged=False))
        _enter(stack, gate.new_report())  # the kept slot
        done = threading.Event()
        blocked = threading.Thread(target=lambda: (gate.new_report().__enter__(), done.set()), daemon=True)
        blocked.start()
        assert not done.wait(0.3)  # every slot taken: the next report waits its turn
    assert done.wait(5)


@pytest.mark.parametrize("slots", [3, 4])
def test_argon_gate_waiting_room_holds_four_per_check_slot(slots):
    check_slots = slots - 1
    gate = codes.ArgonGate(slots, check_wait=30)
    release = threading.Event()
    running = [_attempt(gate, hold=release) for _ in range(check_slots)]
    waiting = [_attempt(gate) for _ in range(3 * check_slots)]
    deadline = time.monotonic() + 10
    while sum(len(o) == 2 for o in running) < check_slots and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # the waiting ones are now in the room
    refused = _attempt(gate)
    refused[0].join(5)
    assert refused[1:] == ["busy"]  # the room is full: refused at once, not after 30 s
    release.set()
    for outcome in running + waiting:
        outcome[0].join(10)
    assert [o[1:] for o in running + waiting] == [["ran"]] * (4 * check_slots)


def _running(outcome: list) -> None:
    deadline = time.monotonic() + 10
    while outcome[1:] != ["ran"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outcome[1:] == ["ran"]


def test_argon_gate_lets_one_untagged_check_at_a_time_whatever_its_size():
    gate = codes.ArgonGate(4, check_wait=0.05)
    release = threading.Event()
    first = _attempt(gate, untagged=True, hold=release)
    _running(first)
    second, tagged = _attempt(gate, untagged=True), _attempt(gate)
    for outcome in (second, tagged):
        outcome[0].join(5)
    assert (second[1:], tagged[1:]) == (["busy"], ["ran"])
    release.set()
    first[0].join(5)
    third = _attempt(gate, untagged=True)
    third[0].join(5)
    assert third[1:] == ["ran"]


def test_argon_gate_has_at_least_one_slot():
    gate = codes.ArgonGate(0, check_wait=0.05)
    assert gate.slots == 1
    release = threading.Event()
    first = _attempt(gate, hold=release)  # one slot: checks still run
    _running(first)
    second = _attempt(gate)
    second[0].join(5)
    assert second[1:] == ["busy"]
    release.set()
    first[0].join(5)


def test_argon_gate_check_waits_two_seconds_for_a_slot():
    """The wait docs/benchmarks.md measured the flood with: a check holds a thread at most 2 s."""
    assert codes.ArgonGate(2).check_wait == 2.0
    codes.set_concurrency(3)
    try:
        assert codes._gate.check_wait == 2.0 and codes._gate.slots == 3
    finally:
        codes.set_concurrency(2)
