"""Intake: storing a tip (from the web form, or recorded by an officer from another
channel), opening a case by its tracking code, and the reporter's side of the case: its
dated steps, deadlines and conversation, what the reporter sent (re-read with their own
key), what they add later, and the files the officers send them.

Services own their transaction: each public function here either commits everything it
was asked to store, or nothing (and removes any file it had moved into the store).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from . import audit, cases, codes, crypto, items, keyring
from .codes import CodeCost, TrackingCode
from .config import Settings
from .ephemeral import EphemeralStore
from .models import Account, Agency, Attachment, Author, Channel, EventKind, Message, Outcome, Rating, Report, Status, StatusEvent
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
class SentFile:
    """A file as its reporter sees it. `before`: sent before files were sealed to the
    reporter's key, so only the officers can open it; `readable` False: sealed to the
    reporter but it does not open here (altered or moved), its name withheld;
    `downloadable`: an officer's file that the officer's signed message names."""

    id: int
    name: str = ""
    size: int = 0
    cleaned: str | None = None
    readable: bool = True
    before: bool = False
    downloadable: bool = False


@dataclass(frozen=True)
class ThreadMessage:
    """A message as the reporter sees it. An officer's message whose signature does not
    check (`verified` False) is shown as a warning, never with its text nor its files."""

    author: Author
    on: dt.date
    text: str
    files: list[SentFile] = field(default_factory=list)
    verified: bool = True
    #: An officer's message that explains why the case needs more time.
    explains: bool = False


@dataclass(frozen=True)
class Sent:
    """What the reporter sent, as they re-read it with their own key. `tip` None with
    `before` True: the tip was sent before tips were sealed to the reporter (the officers
    still have it); `tip` None with `before` False: it does not open here (altered)."""

    tip: dict[str, str] | None
    before: bool
    files: list[SentFile]
    #: The reporter's additions to the report, in order; each is a ThreadMessage.
    additions: list[ThreadMessage] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    """One dated step of a case as its reporter sees it, never with who took it: a
    workflow step (with the agency of a referral, the outcome of a closing), a delay
    explained (with the new deadline and, if its signature checked, the officers'
    explanation), or the opening of the reporter's confidential identity."""

    kind: EventKind
    status: Status
    on: dt.date
    agency: str | None = None
    outcome: str | None = None
    new_due: dt.date | None = None
    explanation: str | None = None


@dataclass(frozen=True)
class CaseView:
    status: Status
    outcome: str | None
    category: str
    channel: Channel
    received_on: dt.date
    ack_due: dt.date
    resolve_due: dt.date
    acknowledged_on: dt.date | None
    closed_on: dt.date | None
    referred_to: str | None
    #: A resolution deadline passed with the case neither closed nor explained.
    resolve_missed: bool
    steps: list[Step]
    identity_given: bool
    identity_opened_on: dt.date | None
    messages: list[ThreadMessage] = field(default_factory=list)
    #: The reporter's rating of the handling (1 to 5), once given.
    rating: int | None = None
    sent: Sent | None = None


def _unique_lookup(session: Session, server_key: bytes) -> TrackingCode:
    while True:
        code = codes.new_code(server_key)
        if not session.scalar(select(exists().where(Report.lookup == code.lookup))):
            return code


def _attach(
    report: Report,
    uploads: Sequence[SealingUpload],
    recipients: list[crypto.PublicKey],
    message: Message | None = None,
) -> None:
    """Record the request's files on the case (or on one of its messages), each bound to
    its place: its metadata and its wrap block are sealed for this case and this file, to
    `recipients` (the officers, the recovery key and the case's reporter key)."""
    for upload in uploads:
        attachment = Attachment(blob_name=upload.blob_name, sealed_size=upload.sealed_size, message=message)
        meta = items.FileMeta(upload.filename, upload.content_type, upload.size, upload.cleaned, upload.sha256, items.parent_slot(message))
        attachment.meta = items.seal_file_meta(report, attachment, meta, recipients)
        attachment.wraps = upload.wrap_for(recipients, items.file_context(report, attachment))
        report.attachments.append(attachment)


#: How long to look, after a commit whose answer was lost, for whether it took.
COMMIT_CHECK_SECONDS = 5.0


def _took(session: Session, stored: Callable[[Session], bool]) -> bool | None:
    """After a failed commit: did it take after all? A connection can drop after the
    database committed but before it said so. None if the database cannot tell us yet."""
    deadline = time.monotonic() + COMMIT_CHECK_SECONDS
    while True:
        try:
            with Session(bind=session.get_bind()) as fresh:
                return bool(stored(fresh))
        except SQLAlchemyError:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.25)


def commit_with_files(
    session: Session,
    store: BlobStore,
    uploads: Sequence[SealingUpload],
    today: dt.date,
    stored: Callable[[Session], bool] | None = None,
) -> None:
    """Move the files in, then commit; if the commit fails, take the files out again.

    A crash between the two leaves only an unreferenced file of ciphertext, which
    `whistle sweep` removes; never a row that points at a missing file. If the commit's
    answer is lost (the connection dropped), `stored` asks a fresh connection whether the
    change is there: if it is, this is a success (the reporter gets their code); if it
    cannot be told, the files stay (a row may point at them; `whistle sweep` removes them
    if none does). After the commit the files' times are set back to the day.
    """
    claimed: list[str] = []
    try:
        session.flush()
        for upload in uploads:
            claimed.append(upload.claim())
        session.commit()
    except (SQLAlchemyError, OSError, UploadNotKept) as exc:
        session.rollback()
        took = _took(session, stored) if stored is not None and isinstance(exc, SQLAlchemyError) else False
        if took is not True:
            if took is False:
                for name in claimed:
                    store.delete(name)
            raise StorageFailed() from exc
        log.warning("a commit's answer was lost, but the change was stored (%s)", type(exc).__name__)
    for name in claimed:
        try:
            store.blur_times(name, today)
        except OSError as exc:  # the tip is stored: its code must still be shown
            log.error("could not set a stored file's times back to its day (%s)", type(exc).__name__)


def _exists(session: Session, *where) -> bool:
    return bool(session.scalar(select(exists().where(*where))))


def _require_files_kept(uploads: Sequence[SealingUpload]) -> None:
    """Refuse at once, before any costly work, when the disk did not take a file."""
    if any(upload.refused is not None for upload in uploads):
        raise StorageFailed()


def submit_report(
    session: Session,
    store: BlobStore,
    settings: Settings,
    server_key: bytes,
    trust: keyring.Trust,
    category: str,
    fields: dict[str, str],
    uploads: Sequence[SealingUpload],
    today: dt.date,
    channel: Channel = Channel.WEB,
    *,
    identity: dict[str, str] | None = None,
) -> TrackingCode:
    """Store a new tip, whole, and return its tracking code (shown once, never stored); the
    code's tag is made under `server_key`. `identity`, if the reporter chose to give it, is
    sealed apart from the tip."""
    code, _report = _store_tip(
        session, store, settings, server_key, trust, category, fields, uploads, today, channel, today, identity
    )
    return code


class ReceivedInFuture(ValueError):
    """A tip cannot have been received after today."""


@dataclass(frozen=True)
class RecordedTip:
    """What an officer hands to the reporter of a tip received by another channel: the
    code (shown once, never stored) and the case's dates."""

    code: TrackingCode
    case_id: int
    channel: Channel
    received_on: dt.date
    ack_due: dt.date
    resolve_due: dt.date
    has_identity: bool


#: The channels an officer records tips from (the web channel records its own).
RECORDED_CHANNELS = (Channel.PHONE, Channel.LETTER, Channel.WALK_IN, Channel.EMAIL, Channel.GENERAL)


def record_tip(
    session: Session,
    store: BlobStore,
    settings: Settings,
    server_key: bytes,
    trust: keyring.Trust,
    actor: Account,
    channel: Channel | str,
    received_on: dt.date,
    category: str,
    fields: dict[str, str],
    uploads: Sequence[SealingUpload],
    today: dt.date,
    *,
    identity: dict[str, str] | None = None,
) -> RecordedTip:
    """Store a tip an officer received by telephone, letter, in person, e-mail or from the
    general complaints channel, sealed like any tip, with its deadlines counted from the day
    it was received; on the audit trail (without content) in the same transaction."""
    channel = Channel(channel)
    if channel not in RECORDED_CHANNELS:
        raise ValueError(channel.value)
    if received_on > today:
        raise ReceivedInFuture(received_on.isoformat())
    code, report = _store_tip(
        session, store, settings, server_key, trust, category, fields, uploads, today, channel, received_on, identity,
        recorded_by=actor,
    )
    return RecordedTip(code, report.id, channel, report.received_on, report.ack_due, report.resolve_due, report.identity is not None)


def _given(identity: dict[str, str] | None) -> dict[str, str] | None:
    """The identity if any part of it was given, else None (the reporter stays anonymous)."""
    if identity is None or not any((identity.get(k) or "").strip() for k in items.IDENTITY_FIELDS):
        return None
    return {k: (identity.get(k) or "").strip() for k in items.IDENTITY_FIELDS}


def _store_tip(
    session: Session,
    store: BlobStore,
    settings: Settings,
    server_key: bytes,
    trust: keyring.Trust,
    category: str,
    fields: dict[str, str],
    uploads: Sequence[SealingUpload],
    today: dt.date,
    channel: Channel,
    received_on: dt.date,
    identity: dict[str, str] | None,
    recorded_by: Account | None = None,
) -> tuple[TrackingCode, Report]:
    _require_files_kept(uploads)
    try:
        recipients = keyring.recipients(session, trust)
        code = _unique_lookup(session, server_key)
    except SQLAlchemyError as exc:  # the database is unreachable: nothing stored yet
        session.rollback()
        raise StorageFailed() from exc
    salt = codes.new_salt()
    cost = settings.code_cost
    keys = codes.derive(code.secret, salt, cost)
    content = {k: fields.get(k, "") for k in TIP_FIELDS}
    due = cases.deadlines(settings.organisation, received_on)
    report = Report(
        uid=crypto.random_bytes(16),
        lookup=code.lookup,
        channel=channel,
        category=category,
        status=Status.RECEIVED,
        received_on=received_on,
        ack_due=due.ack_due,
        resolve_due=due.resolve_due,
        code_salt=salt,
        code_time_cost=cost.time_cost,
        code_memory_cost=cost.memory_cost,
        code_parallelism=cost.parallelism,
        code_verifier=keys.verifier,
        reporter_public_key=keys.reporter_key.public_key().to_bytes(),
    )
    # The tip and its files are sealed to the reporter's own key too, so that the code
    # re-reads them (crypto §22); the identity never is: a stolen code must not name them.
    with_reporter = [*recipients, keys.reporter_key.public_key()]
    report.content = items.seal_tip(report, content, with_reporter)
    given = _given(identity)
    if given is not None:
        report.identity = items.seal_identity(report, given, recipients)
    report.sealed_for = keyring.recipients_digest(recipients)
    report.events.append(StatusEvent(status=Status.RECEIVED, on=received_on))
    _attach(report, uploads, with_reporter)
    session.add(report)
    if recorded_by is not None:
        try:
            session.flush()  # the case number, for the audit entry
            audit.record(
                session, "tip_recorded", recorded_by, report.id, channel=channel.value,
                received_on=received_on.isoformat(), files=len(uploads), identity=given is not None,
            )
        except SQLAlchemyError as exc:
            session.rollback()
            raise StorageFailed() from exc
    uid = report.uid
    commit_with_files(session, store, uploads, today, lambda fresh: _exists(fresh, Report.uid == uid))
    return code, report


def open_case(
    session: Session, settings: Settings, server_key: bytes, state: EphemeralStore, code: TrackingCode
) -> OpenedCase:
    """Prove a code and return the case it opens, or raise `UnknownCode` (or `codes.Busy`).

    In order, each step cheaper than the next: the tag decides which budget the check
    spends (`codes.check_budget`), an exhausted budget is `Busy` before the database is
    asked, and then one derivation runs per Argon2 cost that live cases have, the case's
    own under its salt and every other under a decoy salt. An unknown lookup runs the same
    derivations, all under decoy salts, so unknown and wrong codes cost the same work and
    end in the same error, whatever costs cases were made with. A case made at an older
    cost moves to the current one when its code opens it.
    """
    tagged = codes.tag_matches(server_key, code)
    budget = codes.check_budget(
        state, server_key, code, tagged, settings.code_lookup_budget, settings.code_untagged_budget
    )
    budget.admit()
    report = session.scalar(select(Report).where(Report.lookup == code.lookup))
    costs = _costs_to_run(session, settings)
    own = _stored_cost(report)
    decoy = codes.decoy_salt(server_key, code.lookup)
    next_salt = codes.new_salt()
    salts = [
        report.code_salt if report is not None and cost == own
        else next_salt if report is not None and cost == settings.code_cost
        else decoy
        for cost in costs
    ]
    derived = codes.derive_each(code.secret, list(zip(salts, costs)), untagged=not tagged)
    if report is None or own not in costs or not codes.verifier_matches(
        report.code_verifier, derived[costs.index(own)].keys.verifier
    ):
        budget.failed()
        raise UnknownCode()
    opened = OpenedCase(report.id, _reporter_key(report, derived[costs.index(own)]))
    if own != settings.code_cost:
        current = costs.index(settings.code_cost)
        _move_to_cost(session, report, opened.reporter_key, settings.code_cost, next_salt, derived[current])
    return opened


def _stored_cost(report: Report | None) -> CodeCost | None:
    if report is None:
        return None
    return CodeCost(report.code_time_cost, report.code_memory_cost, report.code_parallelism)


def _costs_to_run(session: Session, settings: Settings) -> list[CodeCost]:
    """The Argon2 costs every check runs now: the current one and those live cases have."""
    rows = session.execute(
        select(Report.code_time_cost, Report.code_memory_cost, Report.code_parallelism, func.count())
        .where(Report.purged_on.is_(None))
        .group_by(Report.code_time_cost, Report.code_memory_cost, Report.code_parallelism)
    )
    stored = [(CodeCost(t, m, p), count) for t, m, p, count in rows]
    costs = codes.costs_to_run(settings.code_cost, stored, settings.code_cost_floor)
    if len(costs) < len({cost for cost, _count in stored} | {settings.code_cost}):
        log.warning("cases exist at Argon2 costs that checks do not run (out of bounds or too many); they cannot be opened")
    return costs


def _reporter_key(report: Report, derivation: codes.Derivation) -> crypto.PrivateKey:
    """The case's reporter key: derived from the code, or, after a move to a new cost, the
    one kept from before. A key that does not match the case's public key (a row altered
    by someone without the code) opens nothing."""
    if report.reporter_key_sealed is None:
        key = derivation.keys.reporter_key
    else:
        try:
            key = codes.open_reporter_key(derivation.seal_key, report.reporter_key_sealed)
        except crypto.OpenError:
            raise UnknownCode() from None
    if not crypto.constant_time_equal(key.public_key().to_bytes(), report.reporter_public_key):
        raise UnknownCode()
    return key


def _move_to_cost(
    session: Session, report: Report, reporter_key: crypto.PrivateKey, cost: CodeCost, salt: bytes, derivation: codes.Derivation
) -> None:
    """Store the case's code proof at `cost` under a new salt, keeping its reporter key
    (sealed under the new derivation), so that messages sealed to it stay readable and
    officers keep sealing to the same public key. The old salt is overwritten: a later
    copy of the database cannot test guesses at the old cost. If the database does not
    take it, the case stays as it was and moves next time."""
    report.code_salt = salt
    report.code_time_cost, report.code_memory_cost, report.code_parallelism = cost.as_tuple()
    report.code_verifier = derivation.keys.verifier
    report.reporter_key_sealed = codes.seal_reporter_key(derivation.seal_key, reporter_key)
    try:
        session.commit()
    except SQLAlchemyError:
        session.rollback()
        log.warning("could not move a case to the current code cost; it will move when next opened")


def _opened_report(session: Session, report_id: int, *, whole: bool = False) -> Report:
    """The case a reporter has open; purged since it was opened reads as an unknown code."""
    try:
        return cases.get_case(session, report_id, whole=whole)
    except cases.CaseNotFound:
        raise UnknownCode() from None


def view_case(session: Session, trust: keyring.Trust, opened: OpenedCase) -> CaseView:
    """What the reporter sees: status, each dated step, deadlines, what they sent (opened
    with their own key) and the conversation. An officer's message counts only with a
    signature by a certified officer key for this very place in this very case; anything
    else is shown as a warning, without its text or its files."""
    report = _opened_report(session, opened.report_id, whole=True)  # its thread and files at once
    key = opened.reporter_key
    signers = keyring.signers(session, trust)
    thread, additions, explanations = [], [], []
    for message in report.messages:
        opened_message = items.open_message(report, message, key, signers, trust.memo)
        # Every message of a thread is sealed to its reporter where it stands: one that does
        # not open here was altered or moved, and is shown as a warning like a forgery.
        verified = opened_message.readable and (message.author is Author.REPORTER or bool(opened_message.verified))
        text = opened_message.text if verified else ""
        files = _message_files(report, message, key, opened_message) if verified else []
        entry = ThreadMessage(message.author, message.created_on, text, files, verified, message.explains)
        if verified and opened_message.adds and message.author is Author.REPORTER:
            additions.append(entry)
        else:
            thread.append(entry)
        if message.explains and message.author is Author.OFFICER:
            explanations.append(text if verified else None)
    steps = _steps(report, explanations)
    opened_on = [step.on for step in steps if step.kind is EventKind.IDENTITY_OPENED]
    return CaseView(
        status=report.status,
        outcome=report.outcome.value if report.outcome else None,
        category=report.category,
        channel=report.channel,
        received_on=report.received_on,
        ack_due=report.ack_due,
        resolve_due=report.resolve_due,
        acknowledged_on=report.acknowledged_on,
        closed_on=report.closed_on,
        referred_to=report.referred_to.value if report.referred_to else None,
        resolve_missed=report.resolve_missed,
        steps=steps,
        identity_given=report.identity is not None,
        identity_opened_on=opened_on[0] if opened_on else None,
        messages=thread,
        rating=report.rating.score if report.rating is not None else None,
        sent=_sent(report, key, additions),
    )


def _sent(report: Report, key: crypto.PrivateKey, additions: list[ThreadMessage]) -> Sent:
    tip, before = None, not cases.sealed_to_reporter(report, report.content)
    if not before:
        try:
            tip = {k: str(v) for k, v in items.open_tip(report, key).items() if k in TIP_FIELDS}
        except (crypto.OpenError, ValueError):
            tip = None
    files = [_reporter_file(report, a, key) for a in report.attachments if a.message_id is None]
    return Sent(tip, before, files, additions)


def _reporter_file(report: Report, attachment: Attachment, key: crypto.PrivateKey, signed_digest: str | None = None) -> SentFile:
    """A file's name and size for its reporter. An officer's file (`signed_digest` given:
    the SHA-256 its officer signed) is offered for download only if its wrap block is
    sealed to the reporter and its metadata agrees with the signature."""
    if not cases.sealed_to_reporter(report, attachment.meta):
        return SentFile(attachment.id, before=True)
    try:
        meta = items.open_file_meta(report, attachment, key, items.parent_slot(attachment.message))
    except (crypto.OpenError, ValueError, TypeError):
        return SentFile(attachment.id, readable=False)
    downloadable = (
        signed_digest is not None and meta.sha256 == signed_digest
        and cases.sealed_to_reporter(report, attachment.wraps, "file")
    )
    return SentFile(attachment.id, meta.name, meta.size, meta.cleaned, downloadable=downloadable)


def _signed_digest(files: list[dict], blob_name: str) -> str | None:
    """The SHA-256 an officer's signed message gives for this file, if it names it."""
    for entry in files:
        if entry.get("id") == blob_name and isinstance(entry.get("sha256"), str):
            return entry["sha256"]
    return None


def _message_files(report: Report, message: Message, key: crypto.PrivateKey, opened: items.Opened) -> list[SentFile]:
    """The files of a message its reporter may see. For an officer's message only those its
    signature names count: a file a database writer slipped in under the officers' message
    (a lure with a telling name) shows as a warning, never with its name."""
    if message.author is not Author.OFFICER:
        return [_reporter_file(report, a, key) for a in message.attachments]
    shown = []
    for attachment in message.attachments:
        digest = _signed_digest(opened.files, attachment.blob_name)
        shown.append(_reporter_file(report, attachment, key, digest) if digest is not None else SentFile(attachment.id, readable=False))
    return shown


class FileNotForReporter(LookupError):
    """Not a file the officers sent this reporter, or it does not open as they signed it."""


@dataclass(frozen=True)
class OfficerFile:
    name: str
    size: int
    chunks: Iterator[bytes]


def open_officer_file(
    session: Session, store: BlobStore, trust: keyring.Trust, opened: OpenedCase, attachment_id: int
) -> OfficerFile:
    """A file an officer sent with a message, for the reporter to download: only a file of
    this case, attached to an officer's message whose signature checks and names it, whose
    whole plaintext has the SHA-256 signed. It is read through once to check that before a
    byte is sent; the chunks given back are checked again as they go, and the last one is
    held back until the digest matches, so a file swapped in between is never delivered
    whole. `FileNotForReporter` otherwise."""
    report = _opened_report(session, opened.report_id)
    key = opened.reporter_key
    attachment = session.get(Attachment, attachment_id)
    if attachment is None or attachment.report_id != report.id or attachment.message is None:
        raise FileNotForReporter(attachment_id)
    message = attachment.message
    if message.author is not Author.OFFICER:
        raise FileNotForReporter(attachment_id)
    signed = items.open_message(report, message, key, keyring.signers(session, trust), trust.memo)
    if not (signed.readable and signed.verified):
        raise FileNotForReporter(attachment_id)
    digest = _signed_digest(signed.files, attachment.blob_name)
    info = _reporter_file(report, attachment, key, digest) if digest is not None else None
    if info is None or not info.downloadable:
        raise FileNotForReporter(attachment_id)
    ctx = items.file_context(report, attachment)

    def plaintext() -> Iterator[bytes]:
        with store.open(attachment.blob_name) as sealed:
            yield from crypto.open_file_stream(sealed, attachment.wraps, key, ctx, accept_legacy=False)

    try:
        whole, size = hashlib.sha256(), 0
        for chunk in plaintext():
            whole.update(chunk)
            size += len(chunk)
    except (crypto.OpenError, OSError):
        raise FileNotForReporter(attachment_id) from None
    if not hmac.compare_digest(whole.hexdigest(), digest):
        raise FileNotForReporter(attachment_id)

    def checked() -> Iterator[bytes]:
        again, held = hashlib.sha256(), None
        for chunk in plaintext():
            again.update(chunk)
            if held is not None:
                yield held
            held = chunk
        if not hmac.compare_digest(again.hexdigest(), digest):
            raise crypto.OpenError()
        if held is not None:
            yield held

    return OfficerFile(info.name, size, checked())


_AGENCIES = frozenset(a.value for a in Agency)
_OUTCOMES = frozenset(o.value for o in Outcome)


def _steps(report: Report, explanations: list[str | None]) -> list[Step]:
    """The case's timeline for its reporter. Assignments are the officers' business and
    are left out; each explained delay is paired with its explaining message (they are
    written together, in order: casework.send_message)."""
    steps = []
    pending = iter(explanations)
    for event in report.events:
        if event.kind is EventKind.STATUS:
            agency = event.detail if event.status is Status.REFERRED and event.detail in _AGENCIES else None
            outcome = event.detail if event.status is Status.CLOSED and event.detail in _OUTCOMES else None
            steps.append(Step(event.kind, event.status, event.on, agency=agency, outcome=outcome))
        elif event.kind is EventKind.EXTENDED:
            steps.append(Step(event.kind, event.status, event.on, new_due=_date(event.detail), explanation=next(pending, None)))
        elif event.kind is EventKind.IDENTITY_OPENED:
            steps.append(Step(event.kind, event.status, event.on))
    return steps


def _date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text or "")
    except ValueError:
        return None


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
    adds: bool = False,
) -> Message:
    """Add a message to a case's conversation in the session (the caller commits with
    `commit_with_files`), sealed to the officers, the recovery key and the reporter, so the
    thread survives any one officer leaving, its files too (so the reporter can download
    the officers'). An officer's message is signed with `signing_key` (theirs), and its
    signature covers its files. `adds`: the reporter adds to their report."""
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
        _attach(report, uploads, [*recipients, reporter], message)
        files = [(u.blob_name, u.sha256) for u in uploads]
        message.body = items.seal_message(report, message, text, files, [*recipients, reporter], signing_key, adds=adds)
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
    message = stage_message(session, trust, report, author, text, uploads, today, signing_key=signing_key)
    seq = message.seq
    commit_with_files(
        session, store, uploads, today, lambda fresh: _exists(fresh, Message.report_id == report_id, Message.seq == seq)
    )


def add_to_report(
    session: Session,
    store: BlobStore,
    trust: keyring.Trust,
    report_id: int,
    text: str,
    uploads: Sequence[SealingUpload],
    today: dt.date,
) -> None:
    """The reporter adds information or files to their report, as GlobaLeaks lets a
    whistleblower do: a reporter's message marked, inside its seal, as an addition, so
    that it is bound to its case and place like any message and officers are told of it
    as of a reply (notify.py). `cases.CaseClosed` once the case is closed. Commits."""
    _require_files_kept(uploads)
    report = _opened_report(session, report_id)
    if report.status is Status.CLOSED:
        raise cases.CaseClosed(report_id)
    message = stage_message(session, trust, report, Author.REPORTER, text, uploads, today, adds=True)
    seq = message.seq
    commit_with_files(
        session, store, uploads, today, lambda fresh: _exists(fresh, Message.report_id == report_id, Message.seq == seq)
    )


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
    # The statistics' copy, in the same transaction (statistics.py counts from reports alone).
    report.rated_on, report.rating_score = rating.rated_on, rating.score
    try:
        session.commit()
    except IntegrityError:  # rated in another request at the same moment: the first stands
        session.rollback()
        raise CannotRate() from None
