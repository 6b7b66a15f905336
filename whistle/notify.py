"""Notices to officers: an e-mail saying that something is new or due in the workspace,
and nothing more.

A notice goes through a mail provider the municipality does not control, so it carries no
content, no category, no case number, no tracking code and no time finer than the run
that sent it: the text is the same whatever happened, and `whistle notify` runs from an
hourly timer (deploy/systemd/whistle-notify.timer), one message per officer per run at
most. Its Date header is the hour of the run and its Message-ID is random (Python's own
would hold the exact time, the process id and the host's name).

Something is new or due for an officer when, since their last notice, a tip arrived, a
reporter replied, or a case's pending deadline came within `cases.DUE_SOON_DAYS` days (or
passed) without a notice of that very deadline. What was told is kept per account
(`notified_report_id`, `notified_message_id`, `DeadlineNotice`), committed after each
officer's message was accepted by the mail server, so a failed send is tried again at the
next run and a sent one is never repeated.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import secrets
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.orm import Session

from . import audit, cases
from .config import Organisation, Settings
from .models import Account, Author, DeadlineNotice, Message, Report, Role, Status

log = logging.getLogger(__name__)


class NoticesOff(Exception):
    """Notices are not configured; the message says which setting is missing."""


# --------------------------------------------------------------------------- what is due


@dataclass(frozen=True)
class News:
    """What one officer has not been told of yet."""

    last_report: int
    last_message: int
    deadlines: list[tuple[int, dt.date]] = field(default_factory=list)
    new: bool = False

    @property
    def any(self) -> bool:
        return self.new or bool(self.deadlines)


def _near_deadlines(session: Session, organisation: Organisation, today: dt.date) -> list[tuple[int, dt.date]]:
    """(case, date) of every pending deadline of an open case on or before the "due soon"
    horizon, overdue ones included."""
    soon = cases.add_days(organisation, today, cases.DUE_SOON_DAYS)
    rows = session.execute(
        select(Report.id, Report.ack_due, Report.resolve_due, Report.acknowledged_on).where(
            Report.purged_on.is_(None), Report.status != Status.CLOSED,
            or_(Report.resolve_due <= soon, (Report.acknowledged_on.is_(None)) & (Report.ack_due <= soon)),
        )
    )
    near = set()
    for case_id, ack_due, resolve_due, acknowledged_on in rows:
        if acknowledged_on is None and ack_due <= soon:
            near.add((case_id, ack_due))
        if resolve_due <= soon:
            near.add((case_id, resolve_due))
    return sorted(near)


def news_for(session: Session, account: Account, last_report: int, last_message: int, near: list[tuple[int, dt.date]]) -> News:
    told = set()
    if near:
        told = {tuple(row) for row in session.execute(
            select(DeadlineNotice.report_id, DeadlineNotice.due_on).where(
                DeadlineNotice.account_id == account.id,
                tuple_(DeadlineNotice.report_id, DeadlineNotice.due_on).in_(near),
            )
        )}
    untold = [d for d in near if d not in told]
    new = last_report > account.notified_report_id or last_message > account.notified_message_id
    return News(last_report, last_message, untold, new)


def recipients(session: Session) -> list[Account]:
    """The officers notices go to: active, past their first sign-in, with an address."""
    return list(session.scalars(
        select(Account).where(
            Account.role == Role.OFFICER, Account.disabled_on.is_(None), Account.must_change_passphrase.is_(False),
            Account.email.is_not(None),
        ).order_by(Account.id)
    ))


# --------------------------------------------------------------------------- the message


def the_notice(settings: Settings, to: str, now: float) -> EmailMessage:
    """The one notice there is: the same words for a tip, a reply or a deadline."""
    message = EmailMessage()
    with force_locale("th"):
        subject_th = _("Something is new or due in the officers' workspace")
        body_th = _("There is something new or due in the officers' workspace. Sign in to see it:")
        why_th = _("This message says nothing about what it is, on purpose. Do not forward it.")
    with force_locale("en"):
        subject_en = _("Something is new or due in the officers' workspace")
        body_en = _("There is something new or due in the officers' workspace. Sign in to see it:")
        why_en = _("This message says nothing about what it is, on purpose. Do not forward it.")
    message["Subject"] = f"{subject_th} / {subject_en}"
    message["From"] = settings.smtp_sender
    message["To"] = to
    hour = int(now) - int(now) % 3600
    message["Date"] = email.utils.formatdate(hour, usegmt=True)
    domain = settings.smtp_sender.rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<{secrets.token_hex(16)}@{domain}>"
    url = settings.workspace_url
    message.set_content(f"{body_th}\n{url}\n\n{why_th}\n\n--\n\n{body_en}\n{url}\n\n{why_en}\n")
    return message


# --------------------------------------------------------------------------- sending


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class SMTPMailer:
    """One connection to the configured server for a run, opened at the first message
    (a run with nothing to say connects to nothing): STARTTLS first (a server that does
    not offer it is refused), then AUTH when a user is set."""

    def __init__(self, settings: Settings, timeout: float = 30) -> None:
        if not settings.smtp_host or not settings.smtp_sender or not settings.workspace_url:
            raise NoticesOff("set smtp_host, smtp_sender and workspace_url (docs/operations.md, Notices)")
        self.settings, self.timeout = settings, timeout
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=self.timeout)
        try:
            if s.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=s.smtp_ca_file or None))
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, message: EmailMessage) -> None:
        if self._smtp is None:
            self._smtp = self._connect()
        self._smtp.send_message(message)

    def __enter__(self) -> SMTPMailer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None


@dataclass(frozen=True)
class RunResult:
    sent: int
    failed: int


def run(session: Session, settings: Settings, mailer: Mailer, today: dt.date, now: float) -> RunResult:
    """Send every officer who has news their one notice, and remember what it covered.
    Commits once per officer, after the server took the message."""
    organisation = settings.organisation
    last_report = session.scalar(select(func.coalesce(func.max(Report.id), 0)).where(Report.purged_on.is_(None))) or 0
    last_message = session.scalar(select(func.coalesce(func.max(Message.id), 0)).where(Message.author == Author.REPORTER)) or 0
    near = _near_deadlines(session, organisation, today)
    sent = failed = 0
    for account in recipients(session):
        news = news_for(session, account, last_report, last_message, near)
        if not news.any:
            continue
        try:
            mailer.send(the_notice(settings, account.email or "", now))
        except (smtplib.SMTPException, OSError) as exc:
            # The kind of failure only: a server's answer may quote the address.
            log.error("a notice was not accepted (%s); it is tried again at the next run", type(exc).__name__)
            failed += 1
            continue
        account.notified_report_id = max(account.notified_report_id, news.last_report)
        account.notified_message_id = max(account.notified_message_id, news.last_message)
        session.add_all(DeadlineNotice(account_id=account.id, report_id=r, due_on=d) for r, d in news.deadlines)
        session.commit()
        sent += 1
    if sent or failed:
        audit.record(session, "notices_sent", None, sent=sent, failed=failed)
        session.commit()
    return RunResult(sent, failed)
