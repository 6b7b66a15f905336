"""Casework: what a designated officer does with a case's content, with the key their
session unlocked. Every look and every change is on the audit trail, in the transaction
of the change (a look commits its own entry).

Supervisors and admins never reach these functions: they hold no key, and the views
check roles before calling.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from sqlalchemy.orm import Session

from . import audit, cases, crypto, intake, keyring
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
    author: Author
    author_name: str | None
    on: dt.date
    text: str
    explains: bool
    files: list[FileInfo] = field(default_factory=list)
    readable: bool = True


@dataclass(frozen=True)
class NoteEntry:
    author_name: str | None
    on: dt.date
    text: str
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


def _file_info(attachment: Attachment, key: crypto.PrivateKey) -> FileInfo:
    try:
        meta = json.loads(crypto.open_sealed(attachment.meta, key))
        return FileInfo(attachment.id, str(meta.get("name") or ""), str(meta.get("type") or ""), int(meta.get("size") or 0), meta.get("cleaned"))
    except (crypto.OpenError, ValueError, TypeError):
        return FileInfo(attachment.id, "", "", 0, None, readable=False)


def _open_text(sealed: bytes, key: crypto.PrivateKey) -> tuple[str, bool]:
    try:
        return crypto.open_sealed(sealed, key).decode("utf-8"), True
    except (crypto.OpenError, UnicodeDecodeError):
        return "", False


def _name(account: Account | None) -> str | None:
    return account.display_name if account is not None else None


def read_case(session: Session, report: Report, key: crypto.PrivateKey, actor: Account) -> CaseContent:
    """Decrypt everything an officer sees of a case; records the look. Commits."""
    try:
        tip = json.loads(crypto.open_sealed(report.content, key))
    except (crypto.OpenError, ValueError):
        tip = None
    thread = []
    for message in report.messages:
        text, ok = _open_text(message.body, key)
        thread.append(
            ThreadEntry(
                author=message.author,
                author_name=_name(session.get(Account, message.author_id)) if message.author_id else None,
                on=message.created_on,
                text=text,
                explains=message.explains,
                files=[_file_info(a, key) for a in message.attachments],
                readable=ok,
            )
        )
    notes = []
    for note in report.notes:
        text, ok = _open_text(note.body, key)
        notes.append(NoteEntry(_name(note.author), note.created_on, text, ok))
    audit.record(session, "tip_decrypt", actor, report.id)
    session.commit()
    return CaseContent(
        tip=tip,
        files=[_file_info(a, key) for a in report.attachments if a.message_id is None],
        thread=thread,
        notes=notes,
        has_identity=report.identity is not None,
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
    info = _file_info(attachment, key)
    if not info.readable:
        raise crypto.OpenError()
    # Unwrap before streaming so that a key that is not a recipient fails here, cleanly.
    crypto.unwrap_data_key(attachment.wraps, key, crypto.KIND_FILE)
    audit.record(session, "file_download", actor, report.id, file=attachment.id)
    session.commit()

    def chunks() -> Iterator[bytes]:
        with store.open(attachment.blob_name) as sealed:
            yield from crypto.open_file_stream(sealed, attachment.wraps, key)

    return info, chunks()


def add_note(session: Session, report: Report, text: str, actor: Account, today: dt.date) -> None:
    """An internal note, sealed to the officers and the recovery key only. Commits."""
    recipients = keyring.recipients(session)
    report.notes.append(Note(author_id=actor.id, created_on=today, body=crypto.seal(text.encode("utf-8"), recipients)))
    audit.record(session, "note_added", actor, report.id)
    session.commit()


def send_message(
    session: Session,
    store: BlobStore,
    report: Report,
    text: str,
    uploads: Sequence[SealingUpload],
    actor: Account,
    today: dt.date,
    *,
    new_due: dt.date | None = None,
) -> None:
    """Write to the reporter; with `new_due`, the message explains a delay and sets the
    next resolution deadline (both in one transaction). Commits, files included."""
    if new_due is not None:
        cases.record_extension(session, report, new_due, actor, today)
    intake.stage_message(session, report, Author.OFFICER, text, uploads, today, author_id=actor.id, explains=new_due is not None)
    audit.record(session, "message_sent", actor, report.id, explains=new_due is not None, files=len(uploads))
    intake.commit_with_files(session, store, uploads, today)
