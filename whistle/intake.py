"""Intake: storing a tip, opening a case by its tracking code, and the reporter's side of
the conversation.

Services own their transaction: each public function here either commits everything it
was asked to store, or nothing (and removes any file it had moved into the store).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Sequence

from sqlalchemy import exists, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from . import cases, codes, crypto, keyring
from .codes import CodeCost, TrackingCode
from .config import Settings
from .models import Attachment, Author, Channel, Message, Report, Status, StatusEvent
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
    author: Author
    on: dt.date
    text: str
    files: int


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
    for upload in uploads:
        meta = json.dumps(
            {"name": upload.filename, "type": upload.content_type, "size": upload.size, "cleaned": upload.cleaned}
        )
        report.attachments.append(
            Attachment(
                blob_name=upload.blob_name,
                wraps=upload.wraps,
                meta=crypto.seal(meta.encode(), recipients),
                sealed_size=upload.sealed_size,
                message=message,
            )
        )


def _commit_with_files(session: Session, store: BlobStore, uploads: Sequence[SealingUpload], today: dt.date) -> None:
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
    category: str,
    fields: dict[str, str],
    uploads: Sequence[SealingUpload],
    today: dt.date,
    channel: Channel = Channel.WEB,
) -> TrackingCode:
    """Store a new tip, whole, and return its tracking code (shown once, never stored)."""
    _require_files_kept(uploads)
    try:
        recipients = keyring.recipients(session)
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
        content=crypto.seal(json.dumps(content, ensure_ascii=False).encode("utf-8"), recipients),
    )
    report.events.append(StatusEvent(status=Status.RECEIVED, on=today))
    _attach(report, uploads, recipients)
    session.add(report)
    _commit_with_files(session, store, uploads, today)
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


def view_case(session: Session, opened: OpenedCase) -> CaseView:
    """What the reporter sees: status, dates, deadlines and the conversation."""
    report = _opened_report(session, opened.report_id)
    thread = []
    for message in report.messages:
        try:
            text = crypto.open_sealed(message.body, opened.reporter_key).decode("utf-8")
        except crypto.OpenError:
            continue  # not sealed to this reporter (cannot happen for messages made here)
        thread.append(ThreadMessage(message.author, message.created_on, text, len(message.attachments)))
    return CaseView(
        status=report.status,
        outcome=report.outcome.value if report.outcome else None,
        category=report.category,
        received_on=report.received_on,
        ack_due=report.ack_due,
        resolve_due=report.resolve_due,
        events=[(e.status, e.on) for e in report.events],
        messages=thread,
    )


def add_message(
    session: Session,
    store: BlobStore,
    report_id: int,
    author: Author,
    text: str,
    uploads: Sequence[SealingUpload],
    today: dt.date,
) -> None:
    """Add a message to a case's conversation, sealed to the officers, the recovery key and
    the reporter, so the thread survives any one officer leaving."""
    _require_files_kept(uploads)
    report = _opened_report(session, report_id)
    recipients = keyring.recipients(session)
    reporter = crypto.PublicKey.from_bytes(report.reporter_public_key)
    message = Message(
        author=author,
        created_on=today,
        body=crypto.seal(text.encode("utf-8"), [*recipients, reporter]),
    )
    report.messages.append(message)
    _attach(report, uploads, recipients, message)
    _commit_with_files(session, store, uploads, today)


def read_tip(report: Report, private_key: crypto.PrivateKey) -> dict[str, str]:
    """The reporter's fields, opened with an officer's or the recovery key."""
    return json.loads(crypto.open_sealed(report.content, private_key))
