"""Version 1 items keep opening, are listed, and are re-bound to version 2 with a key."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import select

from whistle import crypto, db, items, keyring, rebind
from whistle.extensions import trust_of
from whistle.intake import read_tip
from whistle.models import Attachment, Author, Message, Report

from .conftest import Reporter, file_meta, file_plaintext, message_text

FILE = b"%PDF legacy evidence " * 5000


@pytest.fixture
def legacy_case(app, reporter, officer_key):
    """A case as version 1 stored it: tip, a file, an officer's question and a reply."""
    code = reporter.submit_ok(what="legacy tip", files=[(io.BytesIO(FILE), "old.pdf")])
    store = app.extensions["whistle.blobs"]
    with app.app_context():
        session = db.session()
        report = session.scalar(select(Report))
        recipients = keyring.recipients(session, trust_of(app))
        reporter_key = crypto.PublicKey.from_bytes(report.reporter_public_key)
        report.content = crypto.seal(json.dumps({"what": "legacy tip"}).encode(), recipients)
        attachment = report.attachments[0]
        name, sink = store.new_incoming()
        with sink:
            sealer = crypto.FileSealer(sink, recipients)
            sealer.write(FILE)
            sealer.close()
        store.claim(name)
        store.delete(attachment.blob_name)
        attachment.blob_name, attachment.wraps = name, sealer.wraps
        attachment.meta = crypto.seal(json.dumps({"name": "old.pdf", "type": "application/pdf", "size": len(FILE)}).encode(), recipients)
        for seq, author, text in ((1, Author.OFFICER, "Legacy question?"), (2, Author.REPORTER, "Legacy answer.")):
            report.messages.append(Message(seq=seq, author=author, created_on=report.received_on,
                                           body=crypto.seal(text.encode(), [*recipients, reporter_key])))
        session.commit()
    return code


def _case_page(app, code: str) -> str:
    browser = Reporter(app.test_client())
    browser.open_case(code)
    return browser.client.get("/case?lang=en").get_data(as_text=True)


def test_legacy_items_open_and_officer_legacy_message_is_hidden(app, legacy_case, officer_key):
    with app.app_context():
        report = db.session().scalar(select(Report))
        assert read_tip(report, officer_key)["what"] == "legacy tip"
        assert file_plaintext(app, report, report.attachments[0], officer_key) == FILE
        assert [message_text(report, m, officer_key) for m in report.messages] == ["Legacy question?", "Legacy answer."]
    page = _case_page(app, legacy_case)
    assert "Legacy answer." in page and "Legacy question?" not in page and "could not be confirmed" in page


def test_list_names_cases_and_items(app, legacy_case):
    with app.app_context():
        (found,) = rebind.find_legacy(db.session())
    assert found.tip and found.files == 1 and found.messages == [(1, Author.OFFICER), (2, Author.REPORTER)]


def test_rebind_moves_items_to_version_2_and_leaves_officer_messages_unless_vouched(app, legacy_case, officer_key):
    store = app.extensions["whistle.blobs"]
    with app.app_context():
        old_blob = db.session().scalar(select(Attachment.blob_name))
        assert rebind.rebind_all(db.session(), store, trust_of(app), officer_key) == 3  # tip, file, reply
        report = db.session().scalar(select(Report))
        assert not crypto.is_legacy(report.content) and not crypto.is_legacy(report.attachments[0].meta)
        assert crypto.is_legacy(report.messages[0].body) and not crypto.is_legacy(report.messages[1].body)
        assert read_tip(report, officer_key)["what"] == "legacy tip"
        assert file_plaintext(app, report, report.attachments[0], officer_key) == FILE
        assert file_meta(report, report.attachments[0], officer_key).name == "old.pdf"
        assert report.attachments[0].blob_name != old_blob
    with pytest.raises(FileNotFoundError):
        store.open(old_blob)
    assert "Legacy question?" not in _case_page(app, legacy_case)
    with app.app_context():
        assert rebind.rebind_all(db.session(), store, trust_of(app), officer_key, sign_officer_messages=True) == 1
        assert rebind.find_legacy(db.session()) == []
    assert "Legacy question?" in _case_page(app, legacy_case)


def test_rebind_with_a_key_that_opens_nothing_changes_nothing(app, legacy_case):
    with app.app_context():
        before = db.session().scalar(select(Report)).content
        with pytest.raises(crypto.OpenError):
            rebind.rebind_all(db.session(), app.extensions["whistle.blobs"], trust_of(app), crypto.PrivateKey.generate())
        assert db.session().scalar(select(Report)).content == before
