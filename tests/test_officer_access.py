"""Keys in the browser (keys/README.md, "In the workspace"): an admin adds an officer, the
officer's first sign-in makes their key, the recovery key's custodian certifies it on
their page, an officer grants it the stored cases by re-wrapping them in batches, an
admin removes an officer, and the recovery key brings everything back when every officer
is gone. Each path is walked as people do it, through the pages."""

from __future__ import annotations

import io
import json
import re

import pyotp
import pytest
from sqlalchemy import select

from whistle import access, crypto, db, items, keyring
from whistle.models import AuditEntry, KeyRole, Report, Role

from .conftest import FAST_KDF, OfficerBrowser, csrf_token, officer_says

RECOVERY_PASSPHRASE = "the recovery passphrase on paper"
NEW_PASSPHRASE = "the new officer's own passphrase"


@pytest.fixture
def recovery_file(recovery_key) -> bytes:
    """recovery.key as the custodian carries it on the USB stick."""
    doc = keyring.private_key_document(recovery_key, RECOVERY_PASSPHRASE, KeyRole.RECOVERY, "recovery", FAST_KDF)
    return json.dumps(doc).encode()


def _browser(officer_app, wallclock) -> OfficerBrowser:
    return OfficerBrowser(officer_app.test_client(), wallclock)


def _text(response) -> str:
    return response.get_data(as_text=True)


def add_officer(admin: OfficerBrowser, username: str) -> str:
    """The admin creates an officer account; returns the one-time passphrase shown once."""
    page = admin.client.get("/admin/accounts/new")
    response = admin.client.post("/admin/accounts/new", data={
        "username": username, "display_name": username.title(), "role": "officer", "email": "",
        "csrf_token": csrf_token(_text(page)),
    })
    assert response.status_code == 200, _text(response)[:3000]
    return re.search(r'<code class="secret">([a-z0-9-]+)</code>', _text(response)).group(1)


def first_sign_in(browser: OfficerBrowser, username: str, one_time: str, wallclock) -> None:
    """Sign in with the one-time passphrase, choose one's own, turn on the second factor."""
    from .conftest import Creds

    assert browser.sign_in(Creds(username, one_time, None)).status_code == 303
    page = browser.client.get("/passphrase")
    assert browser.client.post("/passphrase", data={
        "current": one_time, "new": NEW_PASSPHRASE, "repeat": NEW_PASSPHRASE, "csrf_token": csrf_token(_text(page)),
    }).status_code == 303
    page = _text(browser.client.get("/enrol"))
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)
    assert browser.client.post("/enrol", data={
        "code": pyotp.TOTP(secret).at(wallclock()), "csrf_token": csrf_token(page),
    }).status_code == 200


def custodian(browser: OfficerBrowser, recovery_file: bytes, passphrase: str = RECOVERY_PASSPHRASE, rewrap: bool = False):
    page = browser.client.get("/access/certify")
    data = {
        "recovery_key": (io.BytesIO(recovery_file), "recovery.key"),
        "passphrase": passphrase,
        "csrf_token": csrf_token(_text(page)),
    }
    if rewrap:
        data["rewrap"] = "y"
    return browser.client.post("/access/certify?lang=en", data=data, content_type="multipart/form-data")


def grant_access(browser: OfficerBrowser) -> list[str]:
    """Start the re-wrap and follow the progress page's refreshes to the end; returns the
    pages seen on the way."""
    page = browser.client.get("/access")
    response = browser.client.post("/access/rewrap", data={"csrf_token": csrf_token(_text(page))})
    seen = []
    while response.status_code == 200 or "/access/rewrap/" in (response.location or ""):
        if response.status_code == 303:
            response = browser.client.get(response.location)
            continue
        html = _text(response)
        seen.append(html)
        refresh = re.search(r'<meta http-equiv="refresh" content="\d+; url=([^"]+)">', html)
        assert refresh, html[:2000]
        response = browser.client.get(refresh.group(1).replace("&amp;", "&"))
    assert response.status_code == 303 and response.location.endswith("/access")
    return seen


def opens(officer_app, case_id: int, key: crypto.PrivateKey) -> bool:
    """Whether `key` opens the case's tip and every other item in it."""
    from whistle import cases

    with officer_app.app_context():
        report = db.session().get(Report, case_id)
        try:
            items.open_tip(report, key)
            for item in cases.sealed_items(report):
                sealed = getattr(item.row, item.column)
                ctx = cases.context(report, item.slot)
                if item.kind == "file":
                    crypto.unwrap_data_key(sealed, key, crypto.KIND_FILE, ctx)
                else:
                    crypto.open_sealed(sealed, key, ctx)
        except crypto.OpenError:
            return False
    return True


def _account_key(officer_app, username: str) -> crypto.PrivateKey:
    from whistle import accounts

    with officer_app.app_context():
        return accounts.unlock_key(accounts.find(db.session(), username), NEW_PASSPHRASE)


def _actions(officer_app) -> list[str]:
    with officer_app.app_context():
        return [e.action for e in db.session().scalars(select(AuditEntry).order_by(AuditEntry.seq))]


@pytest.fixture
def admin(officer_app, make_account, wallclock) -> OfficerBrowser:
    browser = _browser(officer_app, wallclock)
    browser.sign_in(make_account("admin1", role=Role.ADMIN))
    return browser


def _case_ids(officer_app) -> list[int]:
    with officer_app.app_context():
        return list(db.session().scalars(select(Report.id).order_by(Report.id)))


class TestNewOfficer:
    def test_add_sign_in_certify_grant_then_read_an_old_case(
        self, reporter, admin, officer_app, make_account, wallclock, recovery_file, monkeypatch, officer_key
    ):
        code = reporter.submit_ok(what="OLD-TIP-MARKER-0", files=[(io.BytesIO(b"OLD-FILE-MARKER" * 100), "old.txt")])
        for n in (1, 2):
            reporter.submit_ok(what=f"OLD-TIP-MARKER-{n}")
        old = _case_ids(officer_app)
        officer_says(officer_app, old[0], "OLD-OFFICER-MESSAGE", officer_key)
        reporter.open_case(code)
        assert reporter.reply("OLD-REPLY", files=[(io.BytesIO(b"reply file"), "reply.txt")]).status_code in (200, 303)
        newbie = _browser(officer_app, wallclock)
        first_sign_in(newbie, "newbie", add_officer(admin, "newbie"), wallclock)

        # Not certified: nothing is sealed to the key, the home page says why.
        home = _text(newbie.client.get("/?lang=en"))
        assert "Your key is not certified yet" in home
        assert "could not be opened with your key" in _text(newbie.client.get(f"/cases/{old[0]}?lang=en"))

        response = custodian(newbie, recovery_file)
        assert response.status_code == 303
        assert "Your key is certified" in _text(newbie.client.get("/access?lang=en"))
        key = _account_key(officer_app, "newbie")
        # New tips are sealed to it at once; the old ones wait for a re-wrap it cannot do.
        reporter.submit_ok(what="NEW-TIP-MARKER")
        assert opens(officer_app, _case_ids(officer_app)[-1], key)
        assert not opens(officer_app, old[0], key)
        home = _text(newbie.client.get("/?lang=en"))
        assert "3 stored cases are not yet wrapped" in home and "Your key does not open them" in home

        # A colleague whose key opens them grants access, two cases per batch.
        monkeypatch.setattr(access, "REWRAP_BATCH", 2)
        colleague = _browser(officer_app, wallclock)
        colleague.sign_in(make_account("officer-a"))
        assert "Do it now" in _text(colleague.client.get("/?lang=en"))
        pages = grant_access(colleague)
        assert len(pages) == 1 and "2 cases done, 1 to go" in pages[0]
        assert colleague.client.get("/").location.endswith("/cases")  # nothing left to do

        for case_id in old:
            assert opens(officer_app, case_id, key)
        page = _text(newbie.client.get(f"/cases/{old[0]}?lang=en"))
        assert "OLD-TIP-MARKER-0" in page and "OLD-OFFICER-MESSAGE" in page and "OLD-REPLY" in page
        assert "could not be opened" not in page and "no valid officer signature" not in page
        actions = _actions(officer_app)
        assert actions.count("key_certified") == 1 and actions.count("rewrap") == 2
        assert actions[-1] != "access_granted" and "access_granted" in actions

    def test_custodian_page_refuses_a_wrong_file_or_passphrase_and_changes_nothing(
        self, admin, officer_app, wallclock, recovery_file, officer_key
    ):
        newbie = _browser(officer_app, wallclock)
        first_sign_in(newbie, "newbie", add_officer(admin, "newbie"), wallclock)
        wrong_pass = custodian(newbie, recovery_file, passphrase="not the right passphrase")
        assert wrong_pass.status_code == 400 and "does not open this recovery key" in _text(wrong_pass)
        officer_file = json.dumps(keyring.private_key_document(officer_key, RECOVERY_PASSPHRASE, KeyRole.OFFICER, "x", FAST_KDF))
        not_recovery = custodian(newbie, officer_file.encode())
        assert not_recovery.status_code == 400 and "not a recovery key file" in _text(not_recovery)
        other = keyring.private_key_document(crypto.PrivateKey.generate(), RECOVERY_PASSPHRASE, KeyRole.RECOVERY, "r", FAST_KDF)
        not_ours = custodian(newbie, json.dumps(other).encode())
        assert not_ours.status_code == 400 and "not the recovery key this workspace trusts" in _text(not_ours)
        assert custodian(newbie, b"x" * 40_000).status_code in (400, 413)
        assert "key_certified" not in _actions(officer_app)
        with officer_app.app_context():
            row = keyring.find_key(db.session(), _account_key(officer_app, "newbie").key_id)
            assert row.certificate is None

    def test_recovery_key_file_never_reaches_the_disk(self, admin, officer_app, wallclock, recovery_file, tmp_path, monkeypatch):
        import tempfile

        newbie = _browser(officer_app, wallclock)
        first_sign_in(newbie, "newbie", add_officer(admin, "newbie"), wallclock)
        store = officer_app.extensions["whistle.blobs"]
        made = []
        monkeypatch.setattr(store, "new_incoming", lambda *a: made.append(1) or (_ for _ in ()).throw(AssertionError("blob store")))
        monkeypatch.setattr(tempfile, "SpooledTemporaryFile", lambda *a, **k: (_ for _ in ()).throw(AssertionError("temp file")))
        assert custodian(newbie, recovery_file).status_code == 303
        assert made == []
        marker = json.loads(recovery_file)["sealed"][:40].encode()
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert marker not in path.read_bytes(), path


class TestRemovingAnOfficer:
    def test_disable_retire_rewrap_and_the_key_opens_nothing_new_or_old(
        self, reporter, admin, officer_app, make_account, wallclock, recovery_file, officer_key, recovery_key, clock
    ):
        reporter.submit_ok(what="BEFORE-REMOVAL", files=[(io.BytesIO(b"a file"), "before.txt")])
        leaving_key = crypto.PrivateKey.generate()
        with officer_app.app_context():
            keyring.certify(db.session(), officer_app.extensions["whistle.trust"], leaving_key,
                            recovery_key, "leaver", clock())
            db.session().commit()
        stays = _browser(officer_app, wallclock)
        stays.sign_in(make_account("officer-a"))
        grant_access(stays)
        old = _case_ids(officer_app)[0]
        assert opens(officer_app, old, leaving_key)

        leaver = _browser(officer_app, wallclock)
        leaver.sign_in(make_account("leaver", private_key=leaving_key))
        with officer_app.app_context():
            from whistle import accounts

            leaver_id = accounts.find(db.session(), "leaver").id
        page = admin.client.get(f"/admin/accounts/{leaver_id}")
        assert admin.client.post(f"/admin/accounts/{leaver_id}/disable", data={"csrf_token": csrf_token(_text(page))}).status_code == 303
        assert leaver.client.get("/cases").location.endswith("/sign-in")  # its session ended at once

        reporter.submit_ok(what="AFTER-REMOVAL")
        new = _case_ids(officer_app)[-1]
        assert not opens(officer_app, new, leaving_key) and opens(officer_app, new, officer_key)
        assert opens(officer_app, old, leaving_key)  # until the re-wrap, which is pending work
        assert "1 stored case is not yet wrapped" in _text(stays.client.get("/?lang=en"))
        grant_access(stays)
        assert not opens(officer_app, old, leaving_key) and opens(officer_app, old, officer_key)
        assert {"account_disabled", "key_retired", "rewrap", "access_granted"} <= set(_actions(officer_app))

    def test_revoking_a_stolen_key_stops_its_signatures(self, admin, officer_app, make_account, wallclock, clock, recovery_key):
        stolen = crypto.PrivateKey.generate()
        with officer_app.app_context():
            keyring.certify(db.session(), officer_app.extensions["whistle.trust"], stolen,
                            recovery_key, "stolen", clock())
            db.session().commit()
        make_account("thief-victim", private_key=stolen)
        with officer_app.app_context():
            from whistle import accounts

            victim = accounts.find(db.session(), "thief-victim").id
            assert stolen.signing_key.verify_key() in keyring.signers(db.session(), officer_app.extensions["whistle.trust"])
        page = admin.client.get(f"/admin/accounts/{victim}")
        admin.client.post(f"/admin/accounts/{victim}/disable", data={"revoke": "y", "csrf_token": csrf_token(_text(page))})
        with officer_app.app_context():
            trust = officer_app.extensions["whistle.trust"]
            assert stolen.key_id in trust.anchor().revoked
            verify = stolen.signing_key.verify_key().to_bytes()
            assert verify not in [v.to_bytes() for v in keyring.signers(db.session(), trust)]
        assert "key_revoked" in _actions(officer_app)

    def test_last_certified_key_is_kept_until_another_is_certified(self, admin, officer_app, make_account, wallclock):
        make_account("only-one")
        with officer_app.app_context():
            from whistle import accounts

            only = accounts.find(db.session(), "only-one").id
        page = admin.client.get(f"/admin/accounts/{only}")
        response = admin.client.post(f"/admin/accounts/{only}/disable?lang=en", data={"csrf_token": csrf_token(_text(page))})
        page = _text(admin.client.get(response.location + "?lang=en"))
        assert "it is the last certified officer key" in page and "Retire the key" in page
        with officer_app.app_context():
            assert keyring.recipients(db.session(), officer_app.extensions["whistle.trust"])  # intake still works


class TestEveryOfficerGone:
    def test_recovery_key_certifies_a_new_officer_and_rewraps_everything_in_one_go(
        self, reporter, admin, officer_app, make_account, wallclock, recovery_file, officer_key, monkeypatch
    ):
        monkeypatch.setattr(access, "REWRAP_BATCH", 2)
        for n in range(5):
            reporter.submit_ok(what=f"KEPT-BY-RECOVERY-{n}", files=[(io.BytesIO(b"kept %d" % n), "kept.txt")])
        make_account("forgetful")  # holds officer_key; its passphrase is forgotten
        with officer_app.app_context():
            from whistle import accounts

            forgetful = accounts.find(db.session(), "forgetful").id
        page = admin.client.get(f"/admin/accounts/{forgetful}")
        admin.client.post(f"/admin/accounts/{forgetful}/disable", data={"csrf_token": csrf_token(_text(page))})

        phoenix = _browser(officer_app, wallclock)
        first_sign_in(phoenix, "phoenix", add_officer(admin, "phoenix"), wallclock)
        response = custodian(phoenix, recovery_file, rewrap=True)
        assert response.status_code == 303
        flashed = _text(phoenix.client.get("/access?lang=en"))
        assert "Your key is certified" in flashed and "(5 cases)" in flashed
        key = _account_key(officer_app, "phoenix")
        for case_id in _case_ids(officer_app):
            assert opens(officer_app, case_id, key)
        assert "KEPT-BY-RECOVERY-4" in _text(phoenix.client.get(f"/cases/{_case_ids(officer_app)[-1]}"))
        assert _actions(officer_app).count("rewrap") == 3  # batches of 2, each its own entry

        # The forgotten key, kept as the last certified one, can go now; its wraps too.
        page = admin.client.get(f"/admin/accounts/{forgetful}")
        admin.client.post(f"/admin/accounts/{forgetful}/retire-key", data={"csrf_token": csrf_token(_text(page))})
        grant_access(phoenix)
        for case_id in _case_ids(officer_app):
            assert not opens(officer_app, case_id, officer_key)
            assert opens(officer_app, case_id, key)
