"""Notices to officers, through a real SMTP server the tests start (aiosmtpd, with
STARTTLS and a login): the exact mails, one per officer per run at most, for a new tip, a
reply and a near deadline, never repeated, tried again after a refusal, and never a tip's
words, its category, its code or a precise time in them."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import email.utils
import io
import re
import ssl
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from sqlalchemy import select

from whistle import accounts, audit, create_officer_app, db, notify
from whistle.cli import main
from whistle.labels import CATEGORY_LABELS
from whistle.models import Account, AuditEntry, Role

from . import live
from .conftest import csrf_token

SENDER = "whistle@example.go.th"
WORKSPACE = "https://officers.example.go.th/"
SMTP_USER, SMTP_PASSWORD = "notices", "smtp password from the environment"
MARKERS = ("NOTIFY-TIP-MARKER", "NOTIFY-REPLY-MARKER", "secret-evidence.pdf")


@dataclass
class Inbox:
    """What the test server accepted, and what it is told to refuse."""

    mails: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    logins: list[bytes] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        assert session.ssl is not None, "a notice was sent before STARTTLS"
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            SMTP_USER.encode(), SMTP_PASSWORD.encode())
        self.logins.append(auth_data.login if isinstance(auth_data, LoginPassword) else b"?")
        return AuthResult(success=ok, handled=False)  # False: the server answers 535 itself

    def take(self) -> list[tuple[str, list[str], email.message.EmailMessage]]:
        taken = [(f, to, email.message_from_bytes(raw, policy=email.policy.default)) for f, to, raw in self.mails]
        self.mails.clear()
        return taken


@pytest.fixture
def smtp(tmp_path):
    cert, key = live.self_signed_certificate(tmp_path, "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = live.free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, server_hostname="localhost", tls_context=context, require_starttls=True,
        authenticator=inbox.authenticate, auth_require_tls=True,
    )
    controller.start()
    yield inbox, port, cert
    controller.stop()


@pytest.fixture
def notices_app(make_app, smtp):
    _inbox, port, cert = smtp
    return make_app(
        factory=create_officer_app, smtp_host="localhost", smtp_port=port, smtp_sender=SENDER, workspace_url=WORKSPACE,
        smtp_user=SMTP_USER, smtp_password=SMTP_PASSWORD, smtp_ca_file=str(cert),
    )


def _address(app, username: str, address: str | None) -> None:
    with app.app_context():
        accounts.find(db.session(), username).email = address
        db.session().commit()


@pytest.fixture
def officers(notices_app, make_account, clock):
    make_account("officer-a")
    _address(notices_app, "officer-a", "somchai@example.go.th")
    make_account("officer-b")  # no address: nothing to send to
    make_account("sup", role=Role.SUPERVISOR)
    _address(notices_app, "sup", "sup@example.go.th")  # supervisors get no notices
    make_account("gone")
    _address(notices_app, "gone", "gone@example.go.th")
    with notices_app.app_context():
        accounts.find(db.session(), "gone").disabled_on = clock()
        db.session().commit()
    return notices_app


def run(app):
    from whistle.extensions import now, settings, today

    with app.app_context():
        with notify.SMTPMailer(settings()) as mailer:
            return notify.run(db.session(), settings(), mailer, today(), now())


EXPECTED_BODY = f"""\
มีเรื่องใหม่หรือเรื่องใกล้ครบกำหนดในพื้นที่ทำงานของเจ้าหน้าที่ โปรดเข้าสู่ระบบเพื่อดู:
{WORKSPACE}

ข้อความนี้ตั้งใจไม่บอกว่าเป็นเรื่องอะไร โปรดอย่าส่งต่อข้อความนี้

--

There is something new or due in the officers' workspace. Sign in to see it:
{WORKSPACE}

This message says nothing about what it is, on purpose. Do not forward it.
"""


def assert_is_the_notice(mail, to: str, wallclock) -> None:
    sender, rcpts, message = mail
    assert sender == SENDER and rcpts == [to]
    assert message["From"] == SENDER and message["To"] == to
    assert message["Subject"] == "มีเรื่องใหม่หรือเรื่องใกล้ครบกำหนดในพื้นที่ทำงานของเจ้าหน้าที่ / Something is new or due in the officers' workspace"
    sent_at = email.utils.parsedate_to_datetime(message["Date"])
    assert sent_at.minute == sent_at.second == 0  # the hour of the run, no finer
    assert abs(sent_at.timestamp() - wallclock()) < 3600
    assert re.fullmatch(r"<[0-9a-f]{32}@example\.go\.th>", message["Message-ID"])
    assert message.get_content() == EXPECTED_BODY
    assert set(message.keys()) <= {"Subject", "From", "To", "Date", "Message-ID", "Content-Type",
                                   "Content-Transfer-Encoding", "MIME-Version"}


def assert_says_nothing(mail, code: str, clock, wallclock) -> None:
    raw = mail[2].as_string() + mail[2].get_content()
    for marker in MARKERS:
        assert marker not in raw
    for key, label in CATEGORY_LABELS.items():
        assert key not in raw and str(label) not in raw
    digits = re.sub(r"\D", "", code)
    assert digits not in re.sub(r"\D", "", mail[2].get_content()) and code not in raw
    assert clock().isoformat() not in raw
    moment = dt.datetime.fromtimestamp(wallclock(), dt.timezone.utc)
    assert moment.strftime("%H:%M") not in raw.replace(moment.strftime("%H:00"), "")


class TestNotices:
    def test_new_tip_reply_and_near_deadline_each_give_one_exact_notice(self, officers, smtp, reporter, clock, wallclock):
        inbox, _port, _cert = smtp
        code = reporter.submit_ok(
            what="NOTIFY-TIP-MARKER", category="procurement", files=[(io.BytesIO(b"pdf"), "secret-evidence.pdf")]
        )
        assert run(officers) == notify.RunResult(sent=1, failed=0)
        mails = inbox.take()
        assert len(mails) == 1
        assert_is_the_notice(mails[0], "somchai@example.go.th", wallclock)
        assert_says_nothing(mails[0], code, clock, wallclock)
        assert inbox.logins == [SMTP_USER.encode()]

        wallclock.advance(3600)
        assert run(officers).sent == 0 and inbox.take() == []  # nothing new: no mail

        reporter.open_case(code)
        reporter.reply("NOTIFY-REPLY-MARKER")
        wallclock.advance(3600)
        run(officers)
        mails = inbox.take()
        assert len(mails) == 1
        assert_is_the_notice(mails[0], "somchai@example.go.th", wallclock)
        assert_says_nothing(mails[0], code, clock, wallclock)

        clock.advance(4)  # acknowledgement due in 3 days: not yet near
        assert run(officers).sent == 0
        clock.advance(1)  # due in 2 days: near
        run(officers)
        mails = inbox.take()
        assert len(mails) == 1
        assert_is_the_notice(mails[0], "somchai@example.go.th", wallclock)
        assert_says_nothing(mails[0], code, clock, wallclock)
        clock.advance(1)
        assert run(officers).sent == 0  # the same deadline is not announced twice
        clock.advance(10)  # now overdue, and the resolution deadline is near: that one is new
        assert run(officers).sent == 1 and len(inbox.take()) == 1
        assert run(officers).sent == 0

    def test_an_addition_to_the_report_is_news_like_a_reply(self, officers, smtp, reporter, clock, wallclock):
        inbox, _port, _cert = smtp
        code = reporter.submit_ok(what="NOTIFY-TIP-MARKER")
        assert run(officers).sent == 1 and len(inbox.take()) == 1
        reporter.open_case(code)
        page = reporter.client.get("/case").get_data(as_text=True)
        response = reporter.client.post(
            "/case/add", data={"add-text": "NOTIFY-REPLY-MARKER", "add-csrf_token": csrf_token(page)},
            content_type="multipart/form-data",
        )
        assert response.status_code == 303
        wallclock.advance(3600)
        assert run(officers).sent == 1
        mails = inbox.take()
        assert len(mails) == 1
        assert_is_the_notice(mails[0], "somchai@example.go.th", wallclock)
        assert_says_nothing(mails[0], code, clock, wallclock)

    def test_several_things_at_once_make_one_message_per_officer(self, officers, smtp, reporter, make_account, clock):
        inbox, _port, _cert = smtp
        make_account("officer-c")
        _address(officers, "officer-c", "somsri@example.go.th")
        for n in range(3):
            code = reporter.submit_ok(what=f"NOTIFY-TIP-MARKER {n}")
        reporter.open_case(code)
        reporter.reply("NOTIFY-REPLY-MARKER")
        clock.advance(6)
        assert run(officers).sent == 2
        assert sorted(to for _f, (to,), _m in inbox.take()) == ["somchai@example.go.th", "somsri@example.go.th"]

    def test_a_refused_notice_is_tried_again_and_others_still_go(self, officers, smtp, reporter, make_account):
        inbox, _port, _cert = smtp
        make_account("officer-c")
        _address(officers, "officer-c", "somsri@example.go.th")
        reporter.submit_ok(what="NOTIFY-TIP-MARKER")
        inbox.refuse.add("somchai@example.go.th")
        assert run(officers) == notify.RunResult(sent=1, failed=1)
        assert [to for _f, to, _m in inbox.take()] == [["somsri@example.go.th"]]
        inbox.refuse.clear()
        assert run(officers) == notify.RunResult(sent=1, failed=0)
        assert [to for _f, to, _m in inbox.take()] == [["somchai@example.go.th"]]
        with officers.app_context():
            sent = [e.detail for e in db.session().scalars(select(AuditEntry).where(AuditEntry.action == "notices_sent"))]
        assert sent == ['{"failed":1,"sent":1}', '{"failed":0,"sent":1}']

    def test_wrong_smtp_password_sends_nothing_and_forgets_nothing(self, make_app, smtp, make_account, reporter):
        inbox, port, cert = smtp
        app = make_app(factory=create_officer_app, smtp_host="localhost", smtp_port=port, smtp_sender=SENDER,
                       workspace_url=WORKSPACE, smtp_user=SMTP_USER, smtp_password="wrong", smtp_ca_file=str(cert))
        make_account("officer-a")
        _address(app, "officer-a", "somchai@example.go.th")
        reporter.submit_ok()
        assert run(app) == notify.RunResult(sent=0, failed=1)
        with app.app_context():
            assert accounts.find(db.session(), "officer-a").notified_report_id == 0

    def test_a_server_without_starttls_is_refused(self, make_app, make_account, reporter):
        inbox = Inbox()
        port = live.free_port()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            app = make_app(factory=create_officer_app, smtp_host="127.0.0.1", smtp_port=port, smtp_sender=SENDER,
                           workspace_url=WORKSPACE)
            make_account("officer-a")
            _address(app, "officer-a", "somchai@example.go.th")
            reporter.submit_ok()
            assert run(app).failed == 1 and inbox.mails == []
        finally:
            controller.stop()


class TestCommand:
    def test_whistle_notify_reads_the_password_from_the_environment(self, officers, smtp, instance, database_url, secret_key,
                                                                   reporter, monkeypatch):
        inbox, port, cert = smtp
        (instance / "config.toml").write_text(
            f'secret_key = "{secret_key}"\ndatabase_url = "{database_url}"\nsmtp_host = "localhost"\nsmtp_port = {port}\n'
            f'smtp_sender = "{SENDER}"\nworkspace_url = "{WORKSPACE}"\nsmtp_user = "{SMTP_USER}"\nsmtp_ca_file = "{cert}"\n'
            f'smtp_password = "ignored: only the environment counts"\n'
        )
        reporter.submit_ok()
        monkeypatch.setenv("WHISTLE_SMTP_PASSWORD", SMTP_PASSWORD)
        result = CliRunner().invoke(main, ["notify", "--instance", str(instance)], catch_exceptions=False)
        assert result.exit_code == 0 and "Sent 1 notices." in result.output
        assert len(inbox.take()) == 1
        monkeypatch.delenv("WHISTLE_SMTP_PASSWORD")
        reporter.submit_ok()
        result = CliRunner().invoke(main, ["notify", "--instance", str(instance)], catch_exceptions=False)
        assert result.exit_code == 1 and "not accepted" in result.output and inbox.mails == []

    def test_without_settings_notices_are_off(self, app, instance, database_url, secret_key):
        (instance / "config.toml").write_text(f'secret_key = "{secret_key}"\ndatabase_url = "{database_url}"\n')
        result = CliRunner().invoke(main, ["notify", "--instance", str(instance)], catch_exceptions=False)
        assert result.exit_code == 0 and "Notices are off" in result.output
