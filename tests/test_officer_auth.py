"""The officers' app: its own cookie, signing in (one answer for every failure), the first
sign-in steps, the second factor, throttling, session expiry and the unlocked key."""

from __future__ import annotations

import base64
import json
import re

import pyotp
import pytest

from whistle import accounts, create_app, crypto, db
from whistle.models import Account, AuditEntry, Role

from .conftest import OFFICER_PASSPHRASE, Creds, csrf_token


def _page(response) -> str:
    return re.sub(r'value="[^"]*"', 'value=""', response.get_data(as_text=True))


class TestSeparation:
    def test_officer_app_uses_its_own_cookie(self, officer_app, make_account, officer_browser):
        officer_browser.sign_in(make_account())
        assert officer_browser.client.get_cookie("whistle_officer") is not None
        assert officer_browser.client.get_cookie("whistle") is None

    def test_reporter_app_serves_no_officer_page(self, app, officer_app):
        reporter_rules = {r.rule for r in app.url_map.iter_rules()}
        officer_rules = {r.rule for r in officer_app.url_map.iter_rules()} - {"/static/<path:filename>"}
        assert not reporter_rules & officer_rules - {"/"}
        for path in ("/sign-in", "/passphrase", "/enrol", "/sign-out"):
            assert app.test_client().get(path).status_code == 404

    def test_every_officer_page_needs_sign_in(self, officer_app):
        client = officer_app.test_client()
        for rule in officer_app.url_map.iter_rules():
            if rule.endpoint in ("static", "favicon", "officer_auth.sign_in") or "GET" not in rule.methods:
                continue
            path = re.sub(r"<(?:int:)?(\w+)>", "1", rule.rule)
            response = client.get(path)
            assert response.status_code == 303 and response.location.endswith("/sign-in"), rule.rule

    def test_favicon_request_leaves_the_visit_cookie_alone(self, officer_app, make_account, officer_browser):
        # Chromium asks for /favicon.ico without the SameSite=Strict cookie; a redirect to the
        # sign-in page used to answer it with a new cookie that replaced the officer's session.
        officer_browser.sign_in(make_account())
        response = officer_app.test_client().get("/favicon.ico")
        assert response.status_code == 204 and "Set-Cookie" not in response.headers
        assert officer_browser.client.get("/cases").status_code == 200

    def test_language_chosen_before_sign_in_stays_after_it_and_after_sign_out(self, make_account, officer_browser):
        officer_browser.client.get("/sign-in?lang=en")
        officer_browser.sign_in(make_account())
        assert "Cases" in officer_browser.client.get("/cases").get_data(as_text=True)
        page = officer_browser.post("/sign-out", page="/cases", follow_redirects=True).get_data(as_text=True)
        assert 'lang="en"' in page

    def test_every_post_needs_a_csrf_token(self, officer_app, make_account, officer_browser):
        officer_browser.sign_in(make_account())
        for rule in officer_app.url_map.iter_rules():
            if "POST" not in rule.methods:
                continue
            path = re.sub(r"<(?:int:)?(\w+)>", "1", rule.rule)
            for token in (None, "forged"):
                data = {} if token is None else {"csrf_token": token}
                response = officer_browser.client.post(path, data=data)
                assert response.status_code == 400, (rule.rule, token)


class TestSignIn:
    def test_unknown_user_wrong_passphrase_and_wrong_code_look_the_same(self, make_account, officer_browser, wallclock):
        creds = make_account()
        tries = [
            Creds("nobody", OFFICER_PASSPHRASE, creds.totp_secret),
            Creds(creds.username, "wrong passphrase here", creds.totp_secret),
        ]
        answers = [officer_browser.sign_in(t) for t in tries]
        answers.append(officer_browser.sign_in(creds, code="000000" if creds.code(wallclock) != "000000" else "111111"))
        assert {a.status_code for a in answers} == {401}
        assert len({_page(a) for a in answers}) == 1

    def test_right_credentials_open_the_workspace(self, make_account, officer_browser):
        response = officer_browser.sign_in(make_account())
        assert response.status_code == 303 and response.location.endswith("/")
        assert officer_browser.client.get("/cases").status_code == 200

    def test_a_code_is_accepted_once(self, make_account, officer_browser, officer_app, wallclock):
        creds = make_account()
        code = creds.code(wallclock)
        assert officer_browser.sign_in(creds, code=code).status_code == 303
        other = OfficerBrowserFactory.new(officer_app, wallclock)
        assert other.sign_in(creds, code=code).status_code == 401

    def test_disabled_account_cannot_sign_in_and_its_session_ends(self, make_account, officer_browser, officer_app, clock):
        creds = make_account()
        officer_browser.sign_in(creds)
        with officer_app.app_context():
            accounts.find(db.session(), creds.username).disabled_on = clock()
            db.session().commit()
        assert officer_browser.client.get("/cases").location.endswith("/sign-in")
        assert officer_browser.sign_in(creds).status_code == 401

    def test_recovery_code_signs_in_once(self, officer_app, officer_browser, wallclock, clock):
        from whistle.extensions import password_hashing, server_key

        with officer_app.app_context():
            s = db.session()
            account = accounts.create_account(s, password_hashing(), "rc", "RC", Role.SUPERVISOR, OFFICER_PASSPHRASE, clock())
            account.must_change_passphrase = False
            secret = accounts.new_totp_secret()
            codes = accounts.enroll_totp(s, server_key(), account, secret, pyotp.TOTP(secret).at(wallclock()), wallclock(), clock())
        creds = Creds("rc", OFFICER_PASSPHRASE, secret)
        assert len(codes) == 10 and len(set(codes)) == 10
        assert officer_browser.sign_in(creds, code=codes[3].upper()).status_code == 303
        again = OfficerBrowserFactory.new(officer_app, wallclock)
        assert again.sign_in(creds, code=codes[3]).status_code == 401
        with officer_app.app_context():
            stored = db.session().scalar(accounts.select(Account).where(Account.username == "rc")).recovery_codes
            assert codes[0] not in stored and len(json.loads(stored)) == 9

    def test_throttled_after_ten_failures_even_with_the_right_passphrase(self, make_account, officer_browser):
        creds = make_account()
        for _ in range(accounts.THROTTLE_FAILURES):
            assert officer_browser.sign_in(Creds(creds.username, "wrong passphrase!", creds.totp_secret)).status_code == 401
        assert officer_browser.sign_in(creds).status_code == 429

    def test_unknown_names_are_throttled_the_same_way(self, officer_browser):
        ghost = Creds("ghost", "wrong passphrase!", None)
        answers = [officer_browser.sign_in(ghost).status_code for _ in range(accounts.THROTTLE_FAILURES + 1)]
        assert answers[-1] == 429 and set(answers[:-1]) == {401}

    def test_throttle_ends_after_its_window(self, make_account, officer_browser, wallclock):
        creds = make_account()
        for _ in range(accounts.THROTTLE_FAILURES):
            officer_browser.sign_in(Creds(creds.username, "wrong passphrase!", creds.totp_secret))
        wallclock.advance(accounts.THROTTLE_SECONDS + 1)
        assert officer_browser.sign_in(creds).status_code == 303

    def test_stored_hash_follows_a_raised_cost(self, make_account, make_app, wallclock):
        from whistle import create_officer_app
        from whistle.codes import CodeCost

        creds = make_account()
        stronger = make_app(factory=create_officer_app, password_cost=CodeCost(2, 512, 1))
        browser = OfficerBrowserFactory.new(stronger, wallclock)
        assert browser.sign_in(creds).status_code == 303
        with stronger.app_context():
            stored = accounts.find(db.session(), creds.username).password_hash
        assert "m=512,t=2,p=1" in stored

    def test_sign_in_and_failures_are_on_the_audit_trail(self, make_account, officer_browser, officer_app):
        creds = make_account()
        officer_browser.sign_in(Creds(creds.username, "wrong passphrase!", creds.totp_secret))
        officer_browser.sign_in(creds)
        with officer_app.app_context():
            actions = [e.action for e in db.session().scalars(accounts.select(AuditEntry).order_by(AuditEntry.seq))]
        assert actions[-3:] == ["login_failed", "login", "unlock"]


class OfficerBrowserFactory:
    @staticmethod
    def new(app, wallclock):
        from .conftest import OfficerBrowser

        return OfficerBrowser(app.test_client(), wallclock)


class TestFirstSignIn:
    def test_one_time_passphrase_then_second_factor_then_workspace(self, officer_app, officer_browser, wallclock, clock):
        from whistle.extensions import password_hashing

        with officer_app.app_context():
            accounts.create_account(db.session(), password_hashing(), "newbie", "New Officer", Role.OFFICER, "one-time-pass-123", clock())
            db.session().commit()
        creds = Creds("newbie", "one-time-pass-123", None)
        assert officer_browser.sign_in(creds).status_code == 303
        # Until the passphrase is changed, every page leads to that step.
        assert officer_browser.client.get("/").location.endswith("/passphrase")
        page = officer_browser.client.get("/passphrase").get_data(as_text=True)
        response = officer_browser.client.post("/passphrase", data={
            "current": "one-time-pass-123", "new": "my own long passphrase", "repeat": "my own long passphrase",
            "csrf_token": csrf_token(page),
        })
        assert response.status_code == 303
        assert officer_browser.client.get("/").location.endswith("/enrol")
        page = officer_browser.client.get("/enrol").get_data(as_text=True)
        assert "<svg" in page  # the QR code is drawn by the server, inline
        secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)
        response = officer_browser.client.post("/enrol", data={
            "code": pyotp.TOTP(secret).at(wallclock()), "csrf_token": csrf_token(page),
        })
        assert response.status_code == 200
        assert len(re.findall(r"<li><code>[a-z2-9]{5}-[a-z2-9]{5}</code></li>", response.get_data(as_text=True))) == 10
        assert officer_browser.client.get("/cases").status_code == 200
        with officer_app.app_context():
            account = accounts.find(db.session(), "newbie")
            # A new officer's key pair was made, sealed under their own passphrase, and registered.
            assert account.key_id is not None and accounts.unlock_key(account, "my own long passphrase") is not None
            assert not account.must_change_passphrase and account.totp_enrolled_on == clock()

    def test_wrong_enrolment_code_keeps_the_same_secret(self, make_account, officer_browser, wallclock):
        officer_browser.sign_in(make_account(enrolled=False))
        page = officer_browser.client.get("/enrol").get_data(as_text=True)
        secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)
        response = officer_browser.client.post("/enrol", data={"code": "12345", "csrf_token": csrf_token(page)})
        assert response.status_code == 400
        assert secret in response.get_data(as_text=True)


class TestSession:
    def test_idle_expiry(self, officer_app, make_account, officer_browser, wallclock):
        officer_browser.sign_in(make_account())
        wallclock.advance(officer_app.extensions["whistle.settings"].officer_idle_minutes * 60 - 5)
        assert officer_browser.client.get("/cases").status_code == 200  # activity keeps it open
        wallclock.advance(officer_app.extensions["whistle.settings"].officer_idle_minutes * 60 - 5)
        assert officer_browser.client.get("/cases").status_code == 200
        wallclock.advance(officer_app.extensions["whistle.settings"].officer_idle_minutes * 60 + 1)
        assert officer_browser.client.get("/").status_code == 303

    def test_absolute_expiry(self, officer_app, make_account, officer_browser, wallclock):
        officer_browser.sign_in(make_account())
        limit = officer_app.extensions["whistle.settings"].officer_session_hours * 3600
        step = officer_app.extensions["whistle.settings"].officer_idle_minutes * 60 - 60
        elapsed = 0
        while elapsed + step < limit:
            wallclock.advance(step)
            elapsed += step
            assert officer_browser.client.get("/cases").status_code == 200
        wallclock.advance(limit - elapsed + 1)
        assert officer_browser.client.get("/").status_code == 303

    def test_sign_out_ends_the_session_for_a_copied_cookie(self, make_account, officer_browser, officer_app, wallclock):
        officer_browser.sign_in(make_account())
        stolen = officer_browser.client.get_cookie("whistle_officer").value
        assert officer_browser.post("/sign-out", page="/cases").status_code == 303
        thief = officer_app.test_client()
        thief.set_cookie("whistle_officer", stolen)
        assert thief.get("/cases").location.endswith("/sign-in")

    def test_neither_cookie_nor_state_store_alone_holds_the_key(self, make_account, officer_browser, officer_app, officer_key):
        officer_browser.sign_in(make_account())
        raw_cookie = officer_browser.client.get_cookie("whistle_officer").value
        cookie = officer_app.session_interface.get_signing_serializer(officer_app).loads(raw_cookie)
        store = officer_app.extensions["whistle.state"]
        record = json.loads(store.get("officer-session:" + cookie["sid"]))
        secret = officer_key.unsafe_to_bytes()
        for half in (raw_cookie.encode(), json.dumps(cookie).encode(), json.dumps(record).encode()):
            for form in (secret, base64.b64encode(secret), secret.hex().encode()):
                assert form not in half
        opened = crypto.open_with_key(base64.b64decode(cookie["half"]), base64.b64decode(record["key"]), b"whistle v1 officer session key")
        assert opened == secret  # together they do: that is the session

    def test_supervisor_session_holds_no_key(self, make_account, officer_browser, officer_app):
        officer_browser.sign_in(make_account("sup", role=Role.SUPERVISOR))
        cookie = officer_app.session_interface.get_signing_serializer(officer_app).loads(
            officer_browser.client.get_cookie("whistle_officer").value
        )
        record = json.loads(officer_app.extensions["whistle.state"].get("officer-session:" + cookie["sid"]))
        assert record["key"] is None


def test_create_app_for_reporters_is_unchanged(make_app):
    app = make_app(factory=create_app)
    assert app.config["SESSION_COOKIE_NAME"] == "whistle"


def test_reset_second_factor_from_the_command_line(officer_app, make_account, officer_browser, instance, database_url, secret_key):
    from click.testing import CliRunner

    from whistle.cli import main

    creds = make_account()
    (instance / "config.toml").write_text(f'secret_key = "{secret_key}"\ndatabase_url = "{database_url}"\n', "utf-8")
    result = CliRunner().invoke(main, ["accounts", "reset-factor", creds.username, "--instance", str(instance)])
    assert result.exit_code == 0, result.output
    # The passphrase alone now signs in, straight to enrolling again.
    assert officer_browser.sign_in(creds, code="").status_code == 303
    assert officer_browser.client.get("/cases").location.endswith("/enrol")
