"""The administrators' pages: accounts listed without a secret, created with a one-time
passphrase shown once, disabled (sessions ending at once), a supervisor's passphrase and
anyone's second factor reset, notice addresses; an officer's passphrase reset by nobody;
every action on the audit trail; no page for other roles."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from whistle import accounts, db
from whistle.models import Account, AuditEntry, Role

from .conftest import Creds, OfficerBrowser, csrf_token


def _text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def admin(officer_app, make_account, wallclock) -> OfficerBrowser:
    browser = OfficerBrowser(officer_app.test_client(), wallclock)
    browser.sign_in(make_account("admin1", role=Role.ADMIN))
    return browser


def _id(officer_app, username: str) -> int:
    with officer_app.app_context():
        return accounts.find(db.session(), username).id


def _account(officer_app, username: str) -> Account:
    with officer_app.app_context():
        return accounts.find(db.session(), username)


def _post(browser: OfficerBrowser, path: str, page: str, **data):
    token = csrf_token(_text(browser.client.get(page)))
    return browser.client.post(path + "?lang=en", data={**data, "csrf_token": token})


def _audit(officer_app) -> list[tuple[str, str]]:
    with officer_app.app_context():
        return [(e.action, e.detail) for e in db.session().scalars(select(AuditEntry).order_by(AuditEntry.seq))]


def _create(admin: OfficerBrowser, username: str, role: str, email: str = ""):
    return _post(admin, "/admin/accounts/new", "/admin/accounts/new", username=username, display_name="Somchai", role=role, email=email)


def _one_time(response) -> str:
    return re.search(r'<code class="secret">([a-z0-9-]+)</code>', _text(response)).group(1)


class TestList:
    def test_lists_role_state_and_second_factor_and_never_a_secret(self, admin, officer_app, make_account):
        make_account("officer-a")
        make_account("sup", role=Role.SUPERVISOR, enrolled=False)
        page = _text(admin.client.get("/admin/accounts?lang=en"))
        assert "officer-a" in page and "Designated officer" in page and "Supervisor" in page
        assert "Not yet" in page and "On" in page and "Certified" in page
        with officer_app.app_context():
            for a in db.session().scalars(select(Account)):
                for secret in (a.password_hash, a.private_key, a.recovery_codes):
                    if secret and secret != "[]":
                        assert secret not in page and secret[-20:] not in page
                assert not a.totp_secret or a.totp_secret.hex() not in page

    @pytest.mark.parametrize("role", [Role.OFFICER, Role.SUPERVISOR])
    def test_only_admins_reach_the_pages(self, officer_app, make_account, officer_browser, role):
        officer_browser.sign_in(make_account("someone", role=role))
        target = _id(officer_app, "someone")
        for path in ("/admin/accounts", "/admin/accounts/new", f"/admin/accounts/{target}"):
            assert officer_browser.client.get(path).status_code == 403, path
        token = csrf_token(_text(officer_browser.client.get("/passphrase")))
        for action in ("disable", "passphrase", "second-factor", "email", "retire-key"):
            response = officer_browser.client.post(f"/admin/accounts/{target}/{action}", data={"csrf_token": token})
            assert response.status_code == 403, action
        assert not _account(officer_app, "someone").disabled_on


class TestCreate:
    def test_one_time_passphrase_is_shown_once_and_must_be_changed(self, admin, officer_app, wallclock):
        response = _create(admin, "Sup.Two", "supervisor", "sup2@example.go.th")
        assert response.status_code == 200 and "shown only now" in _text(response)
        passphrase = _one_time(response)
        assert passphrase not in _text(admin.client.get(f"/admin/accounts/{_id(officer_app, 'sup.two')}"))
        account = _account(officer_app, "sup.two")
        assert account.role is Role.SUPERVISOR and account.must_change_passphrase and account.email == "sup2@example.go.th"
        person = OfficerBrowser(officer_app.test_client(), wallclock)
        assert person.sign_in(Creds("sup.two", passphrase, None)).status_code == 303
        assert person.client.get("/").location.endswith("/passphrase")
        assert ("account_created", '{"role":"supervisor","target":"sup.two"}') in _audit(officer_app)

    def test_taken_name_and_bad_address_are_refused_keeping_what_was_typed(self, admin, make_account):
        make_account("officer-a")
        taken = _create(admin, "Officer-A", "officer")
        assert taken.status_code == 400 and "This user name is taken" in _text(taken) and 'value="Somchai"' in _text(taken)
        bad = _create(admin, "fresh", "officer", "not an address")
        assert bad.status_code == 400 and "not an e-mail address" in _text(bad) and 'value="fresh"' in _text(bad)
        odd = _create(admin, "bad name!", "officer")
        assert odd.status_code == 400 and "letters, digits" in _text(odd)
        assert _create(admin, "x", "superuser").status_code == 400


class TestDisable:
    def test_sessions_end_at_once_and_sign_in_is_refused(self, admin, officer_app, make_account, wallclock):
        creds = make_account("sup", role=Role.SUPERVISOR)
        first, second = (OfficerBrowser(officer_app.test_client(), wallclock) for _ in range(2))
        first.sign_in(creds)
        wallclock.advance(30)
        second.sign_in(creds)
        store = officer_app.extensions["whistle.state"]
        sids = [officer_app.session_interface.get_signing_serializer(officer_app).loads(
            b.client.get_cookie("whistle_officer").value)["sid"] for b in (first, second)]
        target = _id(officer_app, "sup")
        response = _post(admin, f"/admin/accounts/{target}/disable", f"/admin/accounts/{target}")
        assert response.status_code == 303
        for sid in sids:  # gone from the shared store, not only refused by the next request
            assert store.get("officer-session:" + sid) is None
        assert first.client.get("/cases").location.endswith("/sign-in")
        wallclock.advance(30)
        assert OfficerBrowser(officer_app.test_client(), wallclock).sign_in(creds).status_code == 401
        assert ("account_disabled", '{"target":"sup"}') in _audit(officer_app)

    def test_an_admin_cannot_disable_or_reset_themselves(self, admin, officer_app):
        me = _id(officer_app, "admin1")
        for action in ("disable", "passphrase", "second-factor"):
            assert _post(admin, f"/admin/accounts/{me}/{action}", "/admin/accounts").status_code == 403
        assert _account(officer_app, "admin1").disabled_on is None


class TestResets:
    def test_supervisor_passphrase_reset_gives_a_new_one_time_passphrase(self, admin, officer_app, make_account, wallclock):
        creds = make_account("sup", role=Role.SUPERVISOR)
        signed = OfficerBrowser(officer_app.test_client(), wallclock)
        signed.sign_in(creds)
        target = _id(officer_app, "sup")
        response = _post(admin, f"/admin/accounts/{target}/passphrase", f"/admin/accounts/{target}")
        assert response.status_code == 200
        new = _one_time(response)
        assert signed.client.get("/cases").location.endswith("/sign-in")
        wallclock.advance(30)
        fresh = OfficerBrowser(officer_app.test_client(), wallclock)
        assert fresh.sign_in(creds).status_code == 401  # the old passphrase no longer works
        wallclock.advance(30)
        assert fresh.sign_in(Creds("sup", new, creds.totp_secret)).status_code == 303
        assert fresh.client.get("/").location.endswith("/passphrase")
        assert ("passphrase_reset", '{"target":"sup"}') in _audit(officer_app)

    def test_an_officer_passphrase_cannot_be_reset_and_the_page_says_why(self, admin, officer_app, make_account):
        make_account("officer-a")
        target = _id(officer_app, "officer-a")
        page = _text(admin.client.get(f"/admin/accounts/{target}?lang=en"))
        assert "cannot be reset by anyone" in page and "keys/README.md" in page
        assert f"/admin/accounts/{target}/passphrase" not in page
        before = _account(officer_app, "officer-a").password_hash
        assert _post(admin, f"/admin/accounts/{target}/passphrase", f"/admin/accounts/{target}").status_code == 403
        assert _account(officer_app, "officer-a").password_hash == before

    def test_second_factor_reset_makes_the_person_enrol_again(self, admin, officer_app, make_account, wallclock):
        creds = make_account("officer-a")
        target = _id(officer_app, "officer-a")
        assert _post(admin, f"/admin/accounts/{target}/second-factor", f"/admin/accounts/{target}").status_code == 303
        account = _account(officer_app, "officer-a")
        assert account.totp_secret is None and account.totp_enrolled_on is None and account.recovery_codes == "[]"
        person = OfficerBrowser(officer_app.test_client(), wallclock)
        assert person.sign_in(creds, code="").status_code == 303
        assert person.client.get("/cases").location.endswith("/enrol")
        assert ("second_factor_reset", '{"target":"officer-a"}') in _audit(officer_app)


class TestEmail:
    def test_address_is_saved_refused_when_wrong_and_audited(self, admin, officer_app, make_account):
        make_account("officer-a")
        target = _id(officer_app, "officer-a")
        page = f"/admin/accounts/{target}"
        assert _post(admin, f"{page}/email", page, email="somchai@example.go.th").status_code == 303
        assert _account(officer_app, "officer-a").email == "somchai@example.go.th"
        bad = _post(admin, f"{page}/email", page, email="somchai at example")
        assert bad.status_code == 400 and "not an e-mail address" in _text(bad)
        assert _account(officer_app, "officer-a").email == "somchai@example.go.th"
        assert _post(admin, f"{page}/email", page, email="").status_code == 303
        assert _account(officer_app, "officer-a").email is None
        assert [a for a, _d in _audit(officer_app)].count("account_changed") == 2
