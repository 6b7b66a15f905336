"""A commit whose answer is lost (the connection drops after the database committed) must
not leave a tip without its code, nor delete the files of a stored tip."""

from __future__ import annotations

import io

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from whistle import db
from whistle.models import Attachment, Report

from .conftest import file_plaintext, receipt_code


def _lose_the_answer(monkeypatch, *, took: bool) -> None:
    real = Session.commit

    def commit(self):
        if took:
            real(self)
        raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(Session, "commit", commit)


def test_stored_tip_whose_commit_answer_was_lost_still_shows_its_code(app, reporter, monkeypatch, officer_key):
    _lose_the_answer(monkeypatch, took=True)
    response = reporter.submit(files=[(io.BytesIO(b"%PDF evidence"), "e.pdf")])
    monkeypatch.undo()
    assert response.status_code == 200
    code = receipt_code(response.get_data(as_text=True))
    assert reporter.open_case(code).status_code == 303
    with app.app_context():
        report = db.session().scalar(select(Report))
        assert file_plaintext(app, report, report.attachments[0], officer_key) == b"%PDF evidence"


def test_commit_that_did_not_take_stores_nothing_and_keeps_no_file(app, reporter, monkeypatch):
    _lose_the_answer(monkeypatch, took=False)
    response = reporter.submit(files=[(io.BytesIO(b"%PDF evidence"), "e.pdf")])
    monkeypatch.undo()
    assert response.status_code == 503
    store = app.extensions["whistle.blobs"]
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Report)) == 0
        assert db.session().scalar(select(func.count()).select_from(Attachment)) == 0
    assert [p for p in store.root.iterdir() if p.is_file()] == []
