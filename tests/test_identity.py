"""Identity on request: a reporter's name and contact, given in confidence, sealed apart
from the tip; opened only by the officer who stated a reason, after another person, a
supervisor, approved it; every step on the audit trail; the reporter told when."""

from __future__ import annotations

import base64
import json
import re

import pytest
from sqlalchemy import select, update

from whistle import crypto, db, identity, items
from whistle.models import Account, AuditEntry, EventKind, IdentityRequest, Report, Role

from .conftest import OfficerBrowser, csrf_token
from .test_proof import _dump_database

NAME = "สมศรี MARKERNAME7Q"
CONTACT = "081-555-0199 MARKERCONTACT7Q"
NEEDLES = ("MARKERNAME7Q", "MARKERCONTACT7Q", "สมศรี", "081-555-0199")
REASON = "The case needs the reporter's statement as a witness before the hearing."


class Office:
    """Two officers, two supervisors and an admin, each in their own browser."""

    def __init__(self, officer_app, make_account, wallclock) -> None:
        self.app = officer_app
        self.browsers = {}
        for username, role in (("officer-a", Role.OFFICER), ("officer-b", Role.OFFICER), ("sup-s", Role.SUPERVISOR),
                               ("sup-t", Role.SUPERVISOR), ("admin-x", Role.ADMIN)):
            browser = OfficerBrowser(officer_app.test_client(), wallclock)
            assert browser.sign_in(make_account(username, role=role)).status_code == 303
            self.browsers[username] = browser

    def __getitem__(self, username: str) -> OfficerBrowser:
        return self.browsers[username]

    def ask(self, username: str, case_id: int, reason: str = REASON):
        return self[username].post(f"/cases/{case_id}/identity/request", {"reason": reason}, page=f"/cases/{case_id}")

    def decide(self, username: str, request_id: int, decision: str):
        return self[username].post(f"/identity-requests/{request_id}/decide", {"decision": decision}, page="/identity-requests")

    def open(self, username: str, case_id: int):
        return self[username].post(f"/cases/{case_id}/identity/open", page="/passphrase")

    def actions(self) -> list[tuple[str, str, dict]]:
        with self.app.app_context():
            return [(e.action, e.actor, json.loads(e.detail))
                    for e in db.session().scalars(select(AuditEntry).order_by(AuditEntry.seq))
                    if e.action.startswith("identity_")]

    def request_id(self) -> int:
        with self.app.app_context():
            return db.session().scalar(select(IdentityRequest.id).order_by(IdentityRequest.id.desc()))

    def pages(self, case_id: int) -> str:
        """Every page officers, supervisors and the admin reach about the case, both languages."""
        seen = []
        for username, browser in self.browsers.items():
            for path in ("/cases", f"/cases/{case_id}", "/identity-requests", "/"):
                for lang in ("en", "th"):
                    seen.append(browser.client.get(f"{path}?lang={lang}", follow_redirects=True).get_data(as_text=True))
        return "\n".join(seen)


@pytest.fixture
def office(officer_app, make_account, wallclock) -> Office:
    return Office(officer_app, make_account, wallclock)


@pytest.fixture
def case_id(reporter, officer_app) -> int:
    reporter.code = reporter.submit_ok(identity_name=NAME, identity_contact=CONTACT)
    with officer_app.app_context():
        return db.session().scalar(select(Report.id))


def _absent(text: str) -> None:
    found = [n for n in NEEDLES if n in text]
    assert not found, found


def _reporter_page(reporter, lang="en") -> str:
    """The reporter's status page as words, without tags."""
    reporter.open_case(reporter.code)
    html = reporter.client.get(f"/case?lang={lang}").get_data(as_text=True)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


class TestSealed:
    def test_sealed_apart_to_the_officers_and_recovery_key_only(self, case_id, officer_app, officer_key, recovery_key):
        with officer_app.app_context():
            report = db.session().get(Report, case_id)
            for key in (officer_key, recovery_key):
                assert items.open_identity(report, key) == {"name": NAME, "contact": CONTACT}
            _absent(json.dumps(items.open_tip(report, officer_key), ensure_ascii=False))
            with pytest.raises(crypto.OpenError):  # the reporter's own key is no recipient
                items.open_identity(report, crypto.PrivateKey.generate())
        _absent(_dump_database(officer_app).decode("utf-8", "replace"))

    def test_a_case_export_leaves_it_out(self, case_id, officer_app, tmp_path):
        from whistle import bundles

        with officer_app.app_context():
            report = db.session().get(Report, case_id)
            sealed = report.identity
            out = bundles.export_case(db.session(), officer_app.extensions["whistle.blobs"], case_id, tmp_path / "case.zip")
        data = out.read_bytes()
        assert b"identity" not in data and base64.b64encode(sealed)[8:72] not in data and sealed[-64:] not in data

    def test_moved_to_the_tip_slot_it_does_not_open(self, case_id, officer_app, officer_key):
        with officer_app.app_context():
            report = db.session().get(Report, case_id)
            report.content = report.identity
            with pytest.raises(crypto.OpenError):
                items.open_tip(report, officer_key)

    def test_anonymous_report_has_none(self, reporter, officer_app, office):
        reporter.submit_ok()
        with officer_app.app_context():
            report = db.session().scalar(select(Report))
            assert report.identity is None
        assert office.ask("officer-a", report.id).status_code == 404

    def test_report_form_explains_the_choice(self, client):
        page = re.sub(r"\s+", " ", client.get("/report?lang=en").get_data(as_text=True))
        assert "Anonymous reports are accepted and handled in full." in page
        assert "opened only if a designated officer states a reason and a supervisor approves it" in page
        thai = client.get("/report?lang=th").get_data(as_text=True)
        assert "ไม่ประสงค์ออกนาม" in thai and "ผู้บังคับบัญชา" in thai


class TestReveal:
    def test_the_whole_path_audited_and_told_to_the_reporter(self, case_id, office, reporter, officer_app, clock):
        page = office["officer-a"].client.get(f"/cases/{case_id}?lang=en").get_data(as_text=True)
        assert "gave them in confidence" in page
        _absent(office.pages(case_id))

        clock.advance(1)
        assert office.ask("officer-a", case_id).status_code == 303
        request_id = office.request_id()
        listing = office["sup-s"].client.get("/identity-requests?lang=en").get_data(as_text=True)
        assert REASON.replace("'", "&#39;") in listing and f"#{case_id}" in listing and "Officer-A" in listing
        assert "Procurement and bid rigging" in listing  # the case's metadata, never its content
        assert "split a road contract" not in listing
        _absent(office.pages(case_id))
        assert office.open("officer-a", case_id).status_code == 403  # not approved yet

        clock.advance(1)
        assert office.decide("sup-s", request_id, "approve").status_code == 303
        _absent(office.pages(case_id))
        assert office.open("officer-b", case_id).status_code == 403  # approved for the one who asked
        assert "not opened" in _reporter_page(reporter)

        clock.advance(1)
        opened = office.open("officer-a", case_id)
        assert opened.status_code == 200 and opened.headers["Cache-Control"] == "no-store"
        html = opened.get_data(as_text=True)
        assert "MARKERNAME7Q" in html and "MARKERCONTACT7Q" in html
        office.open("officer-a", case_id)  # each look recorded; one step for the reporter

        assert office.actions() == [
            ("identity_requested", "officer-a", {"request": request_id}),
            ("identity_approved", "sup-s", {"request": request_id}),
            ("identity_revealed", "officer-a", {"request": request_id}),
            ("identity_revealed", "officer-a", {"request": request_id}),
        ]
        with officer_app.app_context():
            report = db.session().get(Report, case_id)
            events = [e for e in report.events if e.kind is EventKind.IDENTITY_OPENED]
            assert [e.on for e in events] == [clock()]
            assert db.session().get(IdentityRequest, request_id).revealed_on == clock()
        page = _reporter_page(reporter)
        assert ("Your name and contact, which you gave in confidence, were opened by the designated officers on "
                "28 November 2569 B.E., after a supervisor approved the reason they gave.") in page
        assert "28 November 2569 B.E. Your name and contact were opened by the designated officers" in page
        assert "Officer-A" not in page and "Sup-S" not in page
        assert "ข้อมูลชื่อและช่องทางติดต่อของท่าน" in _reporter_page(reporter, "th")
        _absent(office.pages(case_id))  # every other page still never shows it

    def test_a_refused_request_reveals_nothing(self, case_id, office, reporter):
        office.ask("officer-a", case_id)
        request_id = office.request_id()
        assert office.decide("sup-t", request_id, "refuse").status_code == 303
        assert office.open("officer-a", case_id).status_code == 403
        _absent(office.pages(case_id))
        assert office.decide("sup-s", request_id, "approve").status_code == 303  # decided already: no change
        assert office.open("officer-a", case_id).status_code == 403
        assert [a[:2] for a in office.actions()] == [("identity_requested", "officer-a"), ("identity_refused", "sup-t")]
        assert "not opened" in _reporter_page(reporter) and "were opened" not in _reporter_page(reporter)
        # Refused, the officer may ask again with a new reason.
        assert office.ask("officer-a", case_id, REASON + " The hearing is next week.").status_code == 303
        assert office.request_id() != request_id

    def test_one_open_request_at_a_time(self, case_id, office):
        office.ask("officer-a", case_id)
        office.ask("officer-a", case_id)
        with office.app.app_context():
            assert len(db.session().scalars(select(IdentityRequest)).all()) == 1

    def test_reason_must_be_given(self, case_id, office):
        response = office.ask("officer-a", case_id, "because")
        assert response.status_code == 400 and "20" in response.get_data(as_text=True)
        assert office.actions() == []


class TestWhoMayDoWhat:
    def test_officers_cannot_decide(self, case_id, office):
        office.ask("officer-a", case_id)
        request_id = office.request_id()
        for username in ("officer-a", "officer-b", "admin-x"):
            assert office.decide(username, request_id, "approve").status_code == 403
        assert office["officer-a"].client.get("/identity-requests").status_code == 403

    def test_nobody_decides_their_own_request(self, case_id, office):
        office.ask("officer-a", case_id)
        request_id = office.request_id()
        with office.app.app_context():  # the asker later made a supervisor
            db.session().execute(update(Account).where(Account.username == "officer-a").values(role=Role.SUPERVISOR))
            db.session().commit()
        page = office["officer-a"].client.get("/identity-requests?lang=en").get_data(as_text=True)
        assert "Your own request" in page
        office.decide("officer-a", request_id, "approve")
        with office.app.app_context():
            assert db.session().get(IdentityRequest, request_id).approved is None
            asker = db.session().scalar(select(Account).where(Account.username == "officer-a"))
            with pytest.raises(identity.OwnRequest):
                identity.decide(db.session(), request_id, True, asker, office.app.extensions["whistle.clock"]())

    def test_supervisors_and_admins_neither_ask_nor_open(self, case_id, office):
        for username in ("sup-s", "admin-x"):
            assert office.ask(username, case_id).status_code == 403
            assert office.open(username, case_id).status_code == 403

    def test_every_step_needs_the_form_token(self, case_id, office):
        office.ask("officer-a", case_id)
        request_id = office.request_id()
        for username, path, data in (
            ("officer-b", f"/cases/{case_id}/identity/request", {"reason": REASON}),
            ("sup-s", f"/identity-requests/{request_id}/decide", {"decision": "approve"}),
            ("officer-a", f"/cases/{case_id}/identity/open", {}),
        ):
            assert office[username].client.post(path, data=data).status_code == 400
        assert [a[0] for a in office.actions()] == ["identity_requested"]

    def test_supervisor_nav_links_the_requests(self, office):
        assert 'href="/identity-requests"' in office["sup-s"].client.get("/cases").get_data(as_text=True)
        assert 'href="/identity-requests"' not in office["officer-a"].client.get("/cases").get_data(as_text=True)
