"""Boundaries of the officers' app: no page shows a tip's content to anyone but an officer
(every GET route crawled with real ids, anonymously, as an admin and as a supervisor),
every form refuses a missing or forged CSRF token whoever is signed in, and no officer
page answers on the reporters' app."""

from __future__ import annotations

import io
import json
import re

import pytest
from sqlalchemy import select

from whistle import cases, crypto, db, keyring
from whistle.models import Account, Attachment, Report, Role

from .conftest import OfficerBrowser, csrf_token, officer_says

MARKERS = {
    "tip": "TIP-TEXT-MARKER-7c1",
    "file name": "FILE-NAME-MARKER-7c1.pdf",
    "file content": "FILE-CONTENT-MARKER-7c1",
    "reply": "REPLY-MARKER-7c1",
    "officer message": "OFFICER-MESSAGE-MARKER-7c1",
    "note": "NOTE-MARKER-7c1",
    "identity": "IDENTITY-MARKER-7c1",
}


@pytest.fixture
def planted(reporter, officer_app, make_account, wallclock, officer_key, clock):
    """A case holding every kind of content, each with its marker; returns the real ids."""
    code = reporter.submit_ok(
        what=MARKERS["tip"], files=[(io.BytesIO(MARKERS["file content"].encode() * 50), MARKERS["file name"])]
    )
    reporter.open_case(code)
    reporter.reply(MARKERS["reply"])
    with officer_app.app_context():
        session = db.session()
        report = session.scalars(select(Report).order_by(Report.id.desc())).first()
        recipients = keyring.recipients(session, officer_app.extensions["whistle.trust"])
        identity = json.dumps({"name": MARKERS["identity"]}).encode()
        report.identity = crypto.seal(identity, recipients, cases.context(report, cases.IDENTITY_SLOT))
        session.commit()
        case_id = report.id
        file_id = session.scalar(select(Attachment.id).where(Attachment.report_id == case_id))
    officer_says(officer_app, case_id, MARKERS["officer message"], officer_key)
    officer = OfficerBrowser(officer_app.test_client(), wallclock)
    officer.sign_in(make_account("officer-a"))
    page = officer.client.get(f"/cases/{case_id}").get_data(as_text=True)
    officer.client.post(f"/cases/{case_id}/notes", data={"text": MARKERS["note"], "csrf_token": csrf_token(page)})
    page = officer.client.get(f"/cases/{case_id}").get_data(as_text=True)
    for key in ("tip", "reply", "officer message", "note", "file name"):  # the officer does see them
        assert MARKERS[key] in page, key
    with officer_app.app_context():
        ids = {a.username: a.id for a in db.session().scalars(select(Account))}
    return {"case_id": case_id, "file_id": file_id, "account_id": ids["officer-a"], "run": "x" * 22,
            "filename": "officer.css", "year": 2570, "period": "h1", "table": "category", "request_id": 1}


def with_ids(rule, ids: dict) -> str:
    """The rule's path with real ids in place of its arguments."""
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(ids[m.group(1)]), rule.rule)


def real_paths(app, ids: dict) -> list[str]:
    """Every GET route with real ids, and the query strings that select content."""
    paths = [with_ids(rule, ids) for rule in app.url_map.iter_rules() if "GET" in rule.methods]
    case_id, account_id = ids["case_id"], ids["account_id"]
    return paths + [f"/audit?case={case_id}", f"/audit?person={account_id}", "/cases?status=all", "/?lang=en"]


def assert_no_marker(response, path: str, who: str) -> None:
    body = response.get_data()
    for what, marker in MARKERS.items():
        assert marker.encode() not in body, f"{who} sees the {what} at {path}"


def crawl(browser: OfficerBrowser, paths: list[str], who: str) -> dict[str, int]:
    answers = {}
    for path in paths:
        response = browser.client.get(path)
        assert_no_marker(response, path, who)
        if response.status_code in (302, 303) and response.location:
            assert_no_marker(browser.client.get(response.location), response.location, who)
        answers[path] = response.status_code
        assert response.status_code < 500, (who, path)
    return answers


class TestNoContentOutsideOfficers:
    def test_anonymous_crawl_sees_no_marker(self, planted, officer_app, wallclock):
        answers = crawl(OfficerBrowser(officer_app.test_client(), wallclock), real_paths(officer_app, planted), "anonymous")
        assert {p for p, s in answers.items() if s == 200} <= {"/sign-in", "/static/officer.css"}

    @pytest.mark.parametrize("role", [Role.ADMIN, Role.SUPERVISOR])
    def test_signed_in_crawl_sees_no_marker(self, planted, officer_app, make_account, wallclock, role):
        browser = OfficerBrowser(officer_app.test_client(), wallclock)
        browser.sign_in(make_account(f"crawler-{role.value}", role=role))
        answers = crawl(browser, real_paths(officer_app, planted), role.value)
        seen = {p for p, s in answers.items() if s == 200}
        if role is Role.SUPERVISOR:  # the pages it is for were really reached, not refused
            assert {f"/cases/{planted['case_id']}", f"/audit?case={planted['case_id']}", "/cases?status=all"} <= seen
        else:
            assert {"/admin/accounts", f"/admin/accounts/{planted['account_id']}", "/admin/publicity"} <= seen


class TestForms:
    @pytest.mark.parametrize("role", [Role.OFFICER, Role.ADMIN, Role.SUPERVISOR])
    def test_every_form_refuses_a_missing_or_forged_token(self, planted, officer_app, make_account, wallclock, role):
        browser = OfficerBrowser(officer_app.test_client(), wallclock)
        browser.sign_in(make_account(f"poster-{role.value}", role=role))
        for rule in officer_app.url_map.iter_rules():
            if "POST" not in rule.methods:
                continue
            path = with_ids(rule, planted)
            other = OfficerBrowser(officer_app.test_client(), wallclock)
            stale = csrf_token(other.client.get("/sign-in").get_data(as_text=True))  # valid, but another session's
            for token in (None, "forged", stale):
                data = {} if token is None else {"csrf_token": token}
                for kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
                    response = browser.client.post(path, data=data, content_type=kind)
                    assert response.status_code == 400, (role, rule.rule, token, kind)


def test_no_officer_page_on_the_reporter_app(planted, app, officer_app):
    reporter = app.test_client()
    for path in real_paths(officer_app, planted):
        if path.split("?")[0] in ("/", "/static/officer.css"):
            continue
        assert reporter.get(path).status_code == 404, path
        assert reporter.post(path.split("?")[0]).status_code in (404, 405), path
    for rule in officer_app.url_map.iter_rules():
        if "POST" in rule.methods:
            assert reporter.post(with_ids(rule, planted)).status_code == 404, rule.rule
