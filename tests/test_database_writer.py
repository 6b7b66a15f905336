"""Attacks by someone who can write the database and the blob store but holds no private
key and not the secret key (DESIGN §2, issue: "a database writer can neither forge nor
move"). Each attack is carried out on a real instance with the writer's own powers only:
the public keys in the database, SQL updates, and crypto.seal with keys of their own."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from whistle import cases, crypto, db, items, keyring
from whistle.extensions import trust_of
from whistle.intake import read_tip
from whistle.models import Attachment, Author, KeyRole, Message, RecipientKey, Report

from .conftest import Reporter, csrf_token, file_plaintext, officer_says

LURE = "Please come to room 204 with your ID card"


def _page(reporter: Reporter, code: str) -> str:
    reporter.open_case(code)
    return reporter.client.get("/case?lang=en").get_data(as_text=True)


def _public_recipients(session) -> list[crypto.PublicKey]:
    """What the writer can read in the registry: every registered public key."""
    return [crypto.PublicKey.from_bytes(r.public_key) for r in session.scalars(select(RecipientKey))]


def _insert_officer_message(app, case_id: int, body_for) -> None:
    """Add a row to the thread as the writer would: next place, author 'officer'."""
    with app.app_context():
        session = db.session()
        report = session.get(Report, case_id)
        message = Message(seq=items.next_seq(report.messages), author=Author.OFFICER, created_on=report.received_on)
        reporter_key = crypto.PublicKey.from_bytes(report.reporter_public_key)
        message.body = body_for(report, message, [*_public_recipients(session), reporter_key])
        report.messages.append(message)
        session.commit()


@pytest.fixture
def case(app, reporter):
    code = reporter.submit_ok(what="The tender was split", files=[(io.BytesIO(b"%PDF scan " * 9000), "scan.pdf")])
    with app.app_context():
        case_id = db.session().scalar(select(Report.id))
    return code, case_id


class TestLureMessages:
    """A message the reporter's page would show as the officers' is the unmasking lure."""

    def test_genuine_officer_message_is_shown(self, app, reporter, case, officer_key):
        code, case_id = case
        officer_says(app, case_id, "Which building was it?", officer_key)
        assert "Which building was it?" in _page(reporter, code)

    @pytest.mark.parametrize("forgery", ["legacy v1", "v2 unsigned", "v2 signed by the writer's own key"])
    def test_forged_officer_message_is_never_shown(self, app, reporter, case, forgery):
        code, case_id = case
        own = crypto.PrivateKey.generate()

        def body(report, message, recipients):
            ctx = cases.context(report, cases.message_slot(message.seq, Author.OFFICER))
            payload = items._payload(LURE, ())
            if forgery == "legacy v1":
                return crypto.seal(LURE.encode(), recipients)
            if forgery == "v2 unsigned":
                return crypto.seal(payload, recipients, ctx)
            return crypto.seal_signed(payload, recipients, ctx, own.signing_key)

        _insert_officer_message(app, case_id, body)
        page = _page(reporter, code)
        assert LURE not in page
        assert "could not be confirmed as coming from the officers" in page

    def test_writer_registering_a_key_of_their_own_gains_no_signer(self, app, reporter, case, clock):
        """Even a key added to the registry, marked officer and active, signs nothing the
        reporter sees: it has no certificate from the recovery key."""
        code, case_id = case
        own = crypto.PrivateKey.generate()
        with app.app_context():
            keyring.register(db.session(), keyring.KeyInfo(KeyRole.OFFICER, "officer-9", own.public_key(), own.signing_key.verify_key()), clock())
            db.session().commit()

        def body(report, message, recipients):
            ctx = cases.context(report, cases.message_slot(message.seq, Author.OFFICER))
            return crypto.seal_signed(items._payload(LURE, ()), recipients, ctx, own.signing_key)

        _insert_officer_message(app, case_id, body)
        assert LURE not in _page(reporter, code)

    def test_genuine_message_copied_from_another_case_is_not_shown(self, app, reporter, case, officer_key):
        code, case_id = case
        other = Reporter(app.test_client()).submit_ok(what="another case")
        with app.app_context():
            other_id = db.session().scalar(select(Report.id).where(Report.id != case_id))
        officer_says(app, other_id, LURE, officer_key)
        with app.app_context():
            session = db.session()
            source = session.scalar(select(Message).where(Message.report_id == other_id))
            report = session.get(Report, case_id)
            report.messages.append(Message(seq=1, author=Author.OFFICER, created_on=source.created_on, body=source.body))
            session.commit()
        assert LURE not in _page(reporter, code)
        assert LURE in _page(Reporter(app.test_client()), other)  # still fine where it belongs

    def test_genuine_message_moved_to_another_place_in_the_thread_is_not_shown(self, app, reporter, case, officer_key):
        code, case_id = case
        officer_says(app, case_id, "First question", officer_key)
        with app.app_context():
            message = db.session().scalar(select(Message))
            message.seq = 7
            db.session().commit()
        page = _page(reporter, code)
        assert "First question" not in page and "could not be confirmed" in page

    def test_revoked_officer_key_stops_signing_at_once(self, app, reporter, case, officer_key, instance):
        code, case_id = case
        officer_says(app, case_id, "Before the key was stolen", officer_key)
        keyring.revoke_in_anchor(instance / keyring.ANCHOR_FILE, officer_key.key_id)
        assert "Before the key was stolen" not in _page(reporter, code)


class TestMovedContent:
    def test_tip_copied_into_another_case_does_not_open(self, app, reporter, case, officer_key):
        _code, case_id = case
        Reporter(app.test_client()).submit_ok(what="victim case")
        with app.app_context():
            session = db.session()
            source = session.get(Report, case_id)
            target = session.scalar(select(Report).where(Report.id != case_id))
            target.content = source.content
            session.commit()
            target = session.scalar(select(Report).where(Report.id != case_id))
            with pytest.raises(crypto.OpenError):
                read_tip(target, officer_key)

    def test_file_moved_to_another_case_does_not_open(self, app, reporter, case, officer_key):
        _code, case_id = case
        Reporter(app.test_client()).submit_ok(what="victim case")
        with app.app_context():
            session = db.session()
            attachment = session.scalar(select(Attachment))
            target = session.scalar(select(Report).where(Report.id != case_id))
            attachment.report_id = target.id
            session.commit()
            attachment = session.scalar(select(Attachment))
            with pytest.raises(crypto.OpenError):
                file_plaintext(app, target, attachment, officer_key)

    def test_case_binding_columns_cannot_be_changed(self, app, case, officer_key):
        """Channel, received date, uid and reporter key are bound into every item."""
        _code, case_id = case
        import datetime as dt

        from whistle.models import Channel

        for column, value in (("channel", Channel.PHONE), ("received_on", dt.date(2020, 1, 1)), ("uid", b"\x00" * 16)):
            with app.app_context():
                session = db.session()
                report = session.get(Report, case_id)
                original = getattr(report, column)
                setattr(report, column, value)
                with pytest.raises(crypto.OpenError):
                    read_tip(report, officer_key)
                setattr(report, column, original)
                assert read_tip(report, officer_key)
                session.rollback()


class TestDamagedWraps:
    def test_damaged_recovery_wrap_is_caught_by_the_officer(self, app, case, officer_key, recovery_key):
        """The wrap block's MAC covers every recipient's entry: an officer opening the tip
        today notices the recovery key's wrap was damaged, not only on the day it is needed."""
        _code, case_id = case
        with app.app_context():
            session = db.session()
            report = session.get(Report, case_id)
            assert read_tip(report, officer_key)
            content = bytearray(report.content)
            ids = crypto.envelope_recipients(bytes(content))
            recovery_entry = 7 + 1 + ids.index(recovery_key.key_id) * (16 + 1168)
            content[recovery_entry + 16 + 600] ^= 0x01  # inside the recovery key's HPKE wrap
            report.content = bytes(content)
            with pytest.raises(crypto.OpenError):
                read_tip(report, officer_key)

    def test_officer_page_flags_the_damaged_item(self, app, case, officer_app, make_account, officer_browser):
        _code, case_id = case
        with app.app_context():
            session = db.session()
            report = session.get(Report, case_id)
            content = bytearray(report.content)
            content[-40] ^= 0x01
            report.content = bytes(content)
            session.commit()
        officer_browser.sign_in(make_account())
        page = officer_browser.client.get(f"/cases/{case_id}?lang=en").get_data(as_text=True)
        assert "could not be opened with your key" in page


class TestRecipients:
    def test_writer_cannot_add_a_recipient_for_new_tips(self, app, reporter, clock):
        """A key registered by the writer, with a certificate of their own making, gets no
        new tip: only the anchor's recovery key certifies."""
        thief = crypto.PrivateKey.generate()
        fake_anchor = crypto.PrivateKey.generate()
        with app.app_context():
            session = db.session()
            row = keyring.register(session, keyring.KeyInfo(KeyRole.OFFICER, "it-helper", thief.public_key(), thief.signing_key.verify_key()), clock())
            row.certificate = crypto.certify(fake_anchor.signing_key, thief.public_key(), thief.signing_key.verify_key(), "officer", "it-helper", clock().isoformat())
            # and swap the registry's recovery row for a key of their own
            recovery = session.scalar(select(RecipientKey).where(RecipientKey.role == KeyRole.RECOVERY))
            recovery.public_key = fake_anchor.public_key().to_bytes()
            session.commit()
        reporter.submit_ok(what="after the break-in")
        with app.app_context():
            report = db.session().scalars(select(Report).order_by(Report.id.desc())).first()
            assert thief.key_id not in crypto.envelope_recipients(report.content)
            assert fake_anchor.key_id not in crypto.envelope_recipients(report.content)
            with pytest.raises(crypto.OpenError):
                read_tip(report, thief)

    def test_uncertified_officer_key_gets_nothing_until_certified(self, app, reporter, recovery_key, clock):
        newcomer = crypto.PrivateKey.generate()
        with app.app_context():
            keyring.register(db.session(), keyring.KeyInfo(KeyRole.OFFICER, "officer-2", newcomer.public_key()), clock())
            db.session().commit()
        reporter.submit_ok(what="one")
        with app.app_context():
            keyring.certify(db.session(), trust_of(app), newcomer, recovery_key, "officer-2", clock())
            db.session().commit()
        reporter.submit_ok(what="two")
        with app.app_context():
            first, second = db.session().scalars(select(Report).order_by(Report.id))
            assert newcomer.key_id not in crypto.envelope_recipients(first.content)
            assert read_tip(second, newcomer)["what"] == "two"


def test_reporter_reply_cannot_be_moved_onto_an_officer_slot(app, reporter, case, officer_key):
    code, case_id = case
    page = reporter.client.get("/status")
    reporter.open_case(code)
    case_page = reporter.client.get("/case").get_data(as_text=True)
    reporter.client.post("/case/reply", data={"text": LURE, "csrf_token": csrf_token(case_page)})
    with app.app_context():
        message = db.session().scalar(select(Message))
        message.author = Author.OFFICER  # the writer relabels the reporter's own words
        db.session().commit()
    assert "could not be confirmed" in _page(reporter, code)


class TestReporterSlots:
    """Items sealed to the reporter's key as well (the tip, its files, additions) keep
    every version 2 property: bound to case and slot, wraps authenticated as a whole."""

    def _add(self, reporter, text, files=()):
        page = reporter.client.get("/case").get_data(as_text=True)
        data = {"add-text": text, "add-csrf_token": csrf_token(page)}
        if files:
            data["add-files"] = list(files)
        response = reporter.client.post("/case/add", data=data, content_type="multipart/form-data")
        assert response.status_code == 303

    def test_addition_copied_into_another_case_does_not_open(self, app, reporter, case, officer_key):
        code, case_id = case
        reporter.open_case(code)
        self._add(reporter, LURE, [(io.BytesIO(b"%PDF added"), "added.pdf")])
        other = Reporter(app.test_client())
        other_code = other.submit_ok(what="victim case")
        with app.app_context():
            session = db.session()
            source = session.scalar(select(Message).where(Message.report_id == case_id))
            target = session.scalar(select(Report).where(Report.id != case_id))
            target.messages.append(Message(seq=1, author=Author.REPORTER, created_on=source.created_on, body=source.body))
            added = source.attachments[0]
            added.report_id = target.id  # and its file, as the writer would move it
            session.commit()
            target = session.get(Report, target.id)
            from .conftest import message_text

            with pytest.raises(crypto.OpenError):
                message_text(target, target.messages[0], officer_key)
            with pytest.raises(crypto.OpenError):
                file_plaintext(app, target, session.get(Attachment, added.id), officer_key)
        assert LURE not in _page(other, other_code)

    def test_addition_moved_to_another_place_in_its_thread_does_not_open(self, app, reporter, case, officer_key):
        code, case_id = case
        reporter.open_case(code)
        self._add(reporter, LURE)
        with app.app_context():
            message = db.session().scalar(select(Message))
            message.seq = 5
            db.session().commit()
        assert LURE not in _page(reporter, code)

    def test_reporter_wrap_of_a_file_moved_to_another_slot_does_not_open(self, app, reporter, case):
        """The tip's file (sealed to the reporter) re-filed under an addition of the same
        case: its metadata names where it belongs, and its slot is bound."""
        code, case_id = case
        reporter.open_case(code)
        self._add(reporter, "more")
        with app.app_context():
            session = db.session()
            attachment = session.scalar(select(Attachment).where(Attachment.message_id.is_(None)))
            attachment.message_id = session.scalar(select(Message.id))
            session.commit()
        page = _page(reporter, code)
        assert "scan.pdf" not in page and "could not be confirmed" in page

    def test_reporter_wrap_copied_into_another_case_does_not_open_for_anyone(self, app, reporter, case, officer_key):
        _code, case_id = case
        other = Reporter(app.test_client())
        other_code = other.submit_ok(what="victim case", files=[(io.BytesIO(b"%PDF theirs"), "theirs.pdf")])
        with app.app_context():
            session = db.session()
            source = session.get(Report, case_id)
            target = session.scalar(select(Report).where(Report.id != case_id))
            target.content = source.content
            theirs = target.attachments[0]
            theirs.meta = source.attachments[0].meta
            session.commit()
            target = session.get(Report, target.id)
            with pytest.raises(crypto.OpenError):
                read_tip(target, officer_key)
        page = _page(other, other_code)
        assert "The tender was split" not in page and "scan.pdf" not in page
        # Not sealed to this reporter's key: read as a tip sent before re-reading existed
        # (crypto §17: a writer can hide a tip from its reporter, as by deleting it).
        assert "sent before reports could be re-read here" in page

    def test_reporter_wrap_entry_dropped_or_damaged_is_caught(self, app, reporter, case, officer_key):
        """Removing the reporter's entry (to hide the tip from them) or damaging it breaks
        the block's MAC: the officers' next read notices."""
        code, case_id = case
        with app.app_context():
            session = db.session()
            report = session.get(Report, case_id)
            mine = cases.reporter_key_id(report)
            content = report.content
            ids = crypto.envelope_recipients(content)
            at = 8 + ids.index(mine) * crypto.WRAP_ENTRY_LEN
            dropped = bytearray(content[:7] + bytes([len(ids) - 1]) + content[8:at] + content[at + crypto.WRAP_ENTRY_LEN :])
            damaged = bytearray(content)
            damaged[at + 16 + 500] ^= 0x01
            for altered in (bytes(dropped), bytes(damaged)):
                report.content = altered
                with pytest.raises(crypto.OpenError):
                    read_tip(report, officer_key)
            report.content = bytes(damaged)
            session.commit()
        assert "could not be opened here" in _page(reporter, code)
