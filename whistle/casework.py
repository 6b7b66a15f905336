"""Casework: what a designated officer does with a case's content, with the key their
session unlocked. Every look and every change is on the audit trail, in the transaction
of the change (a look commits its own entry).

Supervisors and admins never reach these functions: they hold no key, and the views
check roles before calling.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from sqlalchemy.orm import Session

from . import audit, cases, crypto, intake, items, keyring
from .models import Account, Attachment, Author, Note, Report
from .storage import BlobStore
from .uploads import SealingUpload


@dataclass(frozen=True)
class FileInfo:
    id: int
    name: str
    type: str
    size: int
    cleaned: str | None
    readable: bool = True


@dataclass(frozen=True)
class ThreadEntry:
    """A message as an officer reads it. `verified` is False for an officer's message whose
    signature does not check (shown with a warning); `legacy` for one sealed before
    contexts and signatures existed."""

    author: Author
    author_name: str | None
    on: dt.date
    text: str
    explains: bool
    files: list[FileInfo] = field(default_factory=list)
    readable: bool = True
    verified: bool | None = None
    legacy: bool = False
    #: The reporter added this to their report (sealed inside the message).
    adds: bool = False


@dataclass(frozen=True)
class NoteEntry:
    author_name: str | None
    on: dt.date
    text: str
    readable: bool = True
    verified: bool | None = None


@dataclass(frozen=True)
class RatingEntry:
    """The reporter's rating of a closed case; `comment` is None when they wrote none,
    and `readable` False when it is there but this key cannot open it here."""

    score: int
    on: dt.date
    comment: str | None
    readable: bool = True


@dataclass(frozen=True)
class CaseContent:
    """A case as the officer reads it. An item this key cannot open is marked unreadable
    rather than hidden, so that a damaged or withheld item is noticed."""

    tip: dict[str, str] | None
    files: list[FileInfo]
    thread: list[ThreadEntry]
    notes: list[NoteEntry]
    has_identity: bool
    rating: RatingEntry | None = None

    @property
    def additions(self) -> int:
        """How many times the reporter added to the report since (shown in the thread)."""
        return sum(1 for m in self.thread if m.adds)


def _rating(report: Report, key: crypto.PrivateKey) -> RatingEntry | None:
    rating = report.rating
    if rating is None:
        return None
    if rating.comment is None:
        return RatingEntry(rating.score, rating.rated_on, None)
    try:
        return RatingEntry(rating.score, rating.rated_on, items.open_rating_comment(report, rating.comment, key))
    except (crypto.OpenError, ValueError):
        return RatingEntry(rating.score, rating.rated_on, None, readable=False)


def _file_info(report: Report, attachment: Attachment, key: crypto.PrivateKey) -> FileInfo:
    try:
        meta = items.open_file_meta(report, attachment, key, items.parent_slot(attachment.message))
    except (crypto.OpenError, ValueError, TypeError):
        return FileInfo(attachment.id, "", "", 0, None, readable=False)
    return FileInfo(attachment.id, meta.name, meta.type, meta.size, meta.cleaned)


def _name(account: Account | None) -> str | None:
    return account.display_name if account is not None else None


def read_case(session: Session, trust: keyring.Trust, report: Report, key: crypto.PrivateKey, actor: Account) -> CaseContent:
    """Decrypt everything an officer sees of a case; records the look. Commits."""
    try:
        tip = items.open_tip(report, key)
    except (crypto.OpenError, ValueError):
        tip = None
    signers = keyring.signers(session, trust)
    thread = []
    for message in report.messages:
        opened = items.open_message(report, message, key, signers, trust.memo)
        thread.append(
            ThreadEntry(
                author=message.author,
                author_name=_name(message.author_account),
                on=message.created_on,
                text=opened.text,
                explains=message.explains,
                files=[_file_info(report, a, key) for a in message.attachments],
                readable=opened.readable,
                verified=opened.verified,
                legacy=opened.legacy,
                adds=opened.adds and message.author is Author.REPORTER,
            )
        )
    notes = []
    for note in report.notes:
        opened = items.open_note(report, note, key, signers, trust.memo)
        notes.append(NoteEntry(_name(note.author), note.created_on, opened.text, opened.readable, opened.verified))
    audit.record(session, "tip_decrypt", actor, report.id)
    session.commit()
    return CaseContent(
        tip=tip,
        files=[_file_info(report, a, key) for a in report.attachments if a.message_id is None],
        thread=thread,
        notes=notes,
        has_identity=report.identity is not None,
        rating=_rating(report, key),
    )


class FileNotInCase(LookupError):
    pass


def open_file(
    session: Session, store: BlobStore, report: Report, attachment_id: int, key: crypto.PrivateKey, actor: Account
) -> tuple[FileInfo, Iterator[bytes]]:
    """A file's details and its plaintext, chunk by chunk; records the download. Commits.

    The stream raises `crypto.OpenError` at the first chunk that does not authenticate;
    the caller has sent the declared size, so a cut-off download is seen as incomplete.
    """
    attachment = session.get(Attachment, attachment_id)
    if attachment is None or attachment.report_id != report.id:
        raise FileNotInCase(attachment_id)
    info = _file_info(report, attachment, key)
    if not info.readable:
        raise crypto.OpenError()
    ctx = items.file_context(report, attachment)
    # Unwrap before streaming so that a key that is not a recipient, or a wrap block moved
    # from elsewhere, fails here, cleanly, before any byte is sent.
    crypto.unwrap_data_key(attachment.wraps, key, crypto.KIND_FILE, ctx)
    audit.record(session, "file_download", actor, report.id, file=attachment.id)
    session.commit()

    def chunks() -> Iterator[bytes]:
        with store.open(attachment.blob_name) as sealed:
            yield from crypto.open_file_stream(sealed, attachment.wraps, key, ctx)

    return info, chunks()


def add_note(
    session: Session, trust: keyring.Trust, report: Report, text: str, key: crypto.PrivateKey, actor: Account, today: dt.date
) -> None:
    """An internal note, signed by its author and sealed to the officers and the recovery
    key only. Commits."""
    recipients = keyring.recipients(session, trust)
    with session.no_autoflush:  # the note is whole only once sealed
        note = Note(seq=items.next_seq(report.notes), author_id=actor.id, created_on=today)
        report.notes.append(note)
        note.body = items.seal_note(report, note, text, recipients, key.signing_key)
    audit.record(session, "note_added", actor, report.id)
    session.commit()


def send_message(
    session: Session,
    store: BlobStore,
    trust: keyring.Trust,
    report: Report,
    text: str,
    uploads: Sequence[SealingUpload],
    key: crypto.PrivateKey,
    actor: Account,
    today: dt.date,
    *,
    new_due: dt.date | None = None,
) -> None:
    """Write to the reporter, signed with the officer's key; with `new_due`, the message
    explains a delay and sets the next resolution deadline (both in one transaction).
    Commits, files included."""
    if new_due is not None:
        cases.record_extension(session, report, new_due, actor, today)
    intake.stage_message(
        session, trust, report, Author.OFFICER, text, uploads, today,
        author_id=actor.id, explains=new_due is not None, signing_key=key.signing_key,
    )
    audit.record(session, "message_sent", actor, report.id, explains=new_due is not None, files=len(uploads))
    intake.commit_with_files(session, store, uploads, today)
