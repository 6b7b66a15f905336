"""Intake: storing a tip, opening a case by its tracking code, and the reporter's side of
the conversation.

Services own their transaction: each public function here either commits everything it
was asked to store, or nothing (and removes any file it had moved into the store).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Sequence

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from . import cases, codes, crypto, items, keyring
from .codes import CodeCost, TrackingCode
from .config import Settings
from .models import Attachment, Author, Channel, Message, Rating, Report, Status, StatusEvent
from .storage import BlobStore
from .uploads import SealingUpload, UploadNotKept

log = logging.getLogger(__name__)

#: The reporter's fields, in the order they are shown to officers.
TIP_FIELDS = ("what", "people", "when", "where", "how_known", "evidence")


class UnknownCode(Exception):
    """No case opens with this code: it is unknown or wrong (deliberately the same error)."""


class StorageFailed(Exception):
    """The database or the blob store did not take the write; nothing was stored."""


@dataclass(frozen=True)
class OpenedCase:
    """A case the reporter has proved the code of; `reporter_key` decrypts their thread."""

    report_id: int
    reporter_key: crypto.PrivateKey


@dataclass(frozen=True)
class ThreadMessage:
    """A message as the reporter sees it. An officer's message whose signature does not
    check (`verified` False) is shown as a warning, never with its text."""

    author: Author
    on: dt.date
    text: str
    files: int
    verified: bool = True


@dataclass(frozen=True)
class CaseView:
    status: Status
    outcome: str | None
    category: str
    received_on: dt.date
    ack_due: dt.date
    resolve_due: dt.date
    events: list[tuple[Status, dt.date]]
    messages: list[ThreadMessage] = field(default_factory=list)
    #: The reporter's rating of the handling (1 to 5), once given.
    rating: int | None = None


def _unique_lookup(session: Session) -> TrackingCode:
    while True:
        code = codes.new_code()
        if not session.scalar(select(exists().where(Report.lookup == code.lookup))):
            return code


def _attach(
    report: Report,
    uploads: Sequence[SealingUpload],
    recipients: list[crypto.PublicKey],
    message: Message | None = None,
) -> None:
    """Record the request's files on the case (or on one of its messages), each bound to
    its place: its metadata and its wrap block are sealed for this case and this file."""
    for upload in uploads:
        attachment = Attachment(blob_name=upload.blob_name, sealed_size=upload.sealed_size, message=message)
        meta = items.FileMeta(upload.filename, upload.content_type, upload.size, upload.cleaned, upload.sha256, items.parent_slot(message))
        attachment.meta = items.seal_file_meta(report, attachment, meta, recipients)
        attachment.wraps = upload.wrap_for(recipients, items.file_context(report, attachment))
        report.attachments.append(attachment)


def commit_with_files(session: Session, store: BlobStore, uploads: Sequence[SealingUpload], today: dt.date) -> None:
    """Move the files in, then commit; if the commit fails, take the files out again.

    A crash between the two leaves only an unreferenced file of ciphertext, which
    `whistle sweep` removes; never a row that points at a missing file. After the commit
    the files' times are set back to the day, as coarse as the rows' dates.
    """
    claimed: list[str] = []
    try:
        session.flush()
        for upload in uploads:
            claimed.append(upload.claim())
        session.commit()
    except (SQLAlchemyError, OSError, UploadNotKept) as exc:
        session.rollback()
        for name in claimed:
            store.delete(name)
        raise StorageFailed() from exc
    for name in claimed:
        try:
            store.blur_times(name, today)
        except OSError as exc:  # the tip is stored: its code must still be shown
            log.error("could not set a stored file's times back to its day (%s)", type(exc).__name__)


def _require_files_kept(uploads: Sequence[SealingUpload]) -> None:
    """Refuse at once, before any costly work, when the disk did not take a file."""
    if any(upload.refused is not None for upload in uploads):
        raise StorageFailed()


def submit_report(
    session: Session,
    store: BlobStore,
    settings: Settings,
    trust: keyring.Trust,
    category: str,
    fields: dict[str, str],
    uploads: Sequence[SealingUpload],
    today: dt.date,
    channel: Channel = Channel.WEB,
) -> TrackingCode:
    """Store a new tip, whole, and return its tracking code (shown once, never stored)."""
    _require_files_kept(uploads)
    try:
        recipients = keyring.recipients(session, trust)
        code = _unique_lookup(session)
    except SQLAlchemyError as exc:  # the database is unreachable: nothing stored yet
        session.rollback()
        raise StorageFailed() from exc
    salt = codes.new_salt()
    cost = settings.code_cost
    keys = codes.derive(code.secret, salt, cost)
    content = {k: fields.get(k, "") for k in TIP_FIELDS}
    due = cases.deadlines(settings.organisation, today)
    report = Report(
        uid=crypto.random_bytes(16),
        lookup=code.lookup,
        channel=channel,
        category=category,
        status=Status.RECEIVED,
        received_on=today,
        ack_due=due.ack_due,
        resolve_due=due.resolve_due,
        code_salt=salt,
        code_time_cost=cost.time_cost,
        code_memory_cost=cost.memory_cost,
        code_parallelism=cost.parallelism,
        code_verifier=keys.verifier,
        reporter_public_key=keys.reporter_key.public_key().to_bytes(),
    )
    report.content = items.seal_tip(report, content, recipients)
    report.events.append(StatusEvent(status=Status.RECEIVED, on=today))
    _attach(report, uploads, recipients)
    session.add(report)
    commit_with_files(session, store, uploads, today)
    return code


def open_case(session: Session, settings: Settings, server_key: bytes, code: TrackingCode) -> OpenedCase:
    """Prove a code and return the case it opens, or raise `UnknownCode` (or `codes.Busy`).

    An unknown lookup runs the same Argon2id work under a decoy salt, so unknown and wrong
    codes cost the same time and end in the same error.
    """
    report = session.scalar(select(Report).where(Report.lookup == code.lookup))
    if report is None:
        codes.derive(code.secret, codes.decoy_salt(server_key, code.lookup), settings.code_cost, check=True)
        raise UnknownCode()
    cost = CodeCost(report.code_time_cost, report.code_memory_cost, report.code_parallelism)
    keys = codes.derive(code.secret, report.code_salt, cost, check=True)
    if not codes.verifier_matches(report.code_verifier, keys.verifier):
        raise UnknownCode()
    return OpenedCase(report.id, keys.reporter_key)


def _opened_report(session: Session, report_id: int) -> Report:
    """The case a reporter has open; purged since it was opened reads as an unknown code."""
    try:
        return cases.get_case(session, report_id)
    except cases.CaseNotFound:
        raise UnknownCode() from None


def view_case(session: Session, trust: keyring.Trust, opened: OpenedCase) -> CaseView:
    """What the reporter sees: status, dates, deadlines and the conversation. An officer's
    message counts only with a signature by a certified officer key for this very place in
    this very case; anything else is shown as a warning, without its text."""
    report = _opened_report(session, opened.report_id)
    signers = keyring.signers(session, trust)
    thread = []
    for message in report.messages:
        opened_message = items.open_message(report, message, opened.reporter_key, signers)
        # Every message of a thread is sealed to its reporter where it stands: one that does
        # not open here was altered or moved, and is shown as a warning like a forgery.
        verified = opened_message.readable and (message.author is Author.REPORTER or bool(opened_message.verified))
        text = opened_message.text if verified else ""
        thread.append(ThreadMessage(message.author, message.created_on, text, len(message.attachments), verified))
    return CaseView(
        status=report.status,
        outcome=report.outcome.value if report.outcome else None,
        category=report.category,
        received_on=report.received_on,
        ack_due=report.ack_due,
        resolve_due=report.resolve_due,
        events=[(e.status, e.on) for e in report.events],
        messages=thread,
        rating=report.rating.score if report.rating is not None else None,
    )


def stage_message(
    session: Session,
    trust: keyring.Trust,
    report: Report,
    author: Author,
    text: str,
    uploads: Sequence[SealingUpload],
    today: dt.date,
    *,
    author_id: int | None = None,
    explains: bool = False,
    signing_key: crypto.SigningKey | None = None,
) -> Message:
    """Add a message to a case's conversation in the session (the caller commits with
    `commit_with_files`), sealed to the officers, the recovery key and the reporter, so the
    thread survives any one officer leaving. An officer's message is signed with
    `signing_key` (theirs), and its signature covers its files."""
    recipients = keyring.recipients(session, trust)
    reporter = crypto.PublicKey.from_bytes(report.reporter_public_key)
    with session.no_autoflush:  # the new rows are whole only once sealed
        message = Message(
            seq=items.next_seq(report.messages),
            author=author,
            author_id=author_id,
            explains=explains,
            created_on=today,
        )
        report.messages.append(message)
        _attach(report, uploads, recipients, message)
        files = [(u.blob_name, u.sha256) for u in uploads]
        message.body = items.seal_message(report, message, text, files, [*recipients, reporter], signing_key)
    return message


def add_message(
    session: Session,
    store: BlobStore,
    trust: keyring.Trust,
    report_id: int,
    author: Author,
    text: str,
    uploads: Sequence[SealingUpload],
    today: dt.date,
    *,
    signing_key: crypto.SigningKey | None = None,
) -> None:
    """Add a reporter's message (or, from the command line, an officer's) and commit it."""
    _require_files_kept(uploads)
    report = _opened_report(session, report_id)
    stage_message(session, trust, report, author, text, uploads, today, signing_key=signing_key)
    commit_with_files(session, store, uploads, today)


def read_tip(report: Report, private_key: crypto.PrivateKey) -> dict[str, str]:
    """The reporter's fields, opened with an officer's or the recovery key."""
    return items.open_tip(report, private_key)


# --------------------------------------------------------------------------- satisfaction


class CannotRate(Exception):
    """The case is not closed yet, or was rated already (one rating per case)."""


def rate_case(
    session: Session, trust: keyring.Trust, report_id: int, score: int, comment: str, today: dt.date
) -> None:
    """The reporter rates the handling of their closed case, once: a score from 1 to 5
    (counted by the statistics) and optional words sealed to the officers. Commits."""
    if not 1 <= score <= 5:
        raise ValueError("a score is 1 to 5")
    report = _opened_report(session, report_id)
    if report.status is not Status.CLOSED or report.rating is not None:
        raise CannotRate()
    rating = Rating(score=score, rated_on=today)
    if comment:
        rating.comment = items.seal_rating_comment(report, comment, keyring.recipients(session, trust))
    report.rating = rating
    try:
        session.commit()
    except IntegrityError:  # rated in another request at the same moment: the first stands
        session.rollback()
        raise CannotRate() from None
