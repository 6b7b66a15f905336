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

from sqlalchemy import exists, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from . import cases, codes, crypto, keyring
from .codes import CodeCost, TrackingCode
from .config import Settings
from .ephemeral import EphemeralStore
from .models import Attachment, Author, Channel, Message, Report, Status, StatusEvent
from .storage import BlobStore
from .uploads import SealingUpload

log = logging.getLogger(__name__)

#: The reporter's fields, in the order they are shown to officers.
TIP_FIELDS = ("what", "people", "when", "where", "how_known", "evidence")


class UnknownCode(Exception):
    """No case opens with this code: it is unknown or wrong (deliberately the same error)."""


class StorageFailed(Exception):
    """The database did not take the write; nothing was stored."""


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
    claimed: list[SealingUpload] = []
    try:
        session.flush()
        for upload in uploads:
            upload.claim()
            claimed.append(upload)
        session.commit()
    except (SQLAlchemyError, OSError) as exc:
        session.rollback()
        for upload in claimed:
            assert upload.blob_name is not None
            store.delete(upload.blob_name)
        raise StorageFailed() from exc
    for upload in claimed:
        assert upload.blob_name is not None
        store.blur_times(upload.blob_name, today)


def submit_report(
    session: Session,
    store: BlobStore,
    settings: Settings,
    server_key: bytes,
    category: str,
    fields: dict[str, str],
    uploads: Sequence[SealingUpload],
    today: dt.date,
    channel: Channel = Channel.WEB,
) -> TrackingCode:
    """Store a new tip, whole, and return its tracking code (shown once, never stored); the
    code's tag is made under `server_key`."""
    try:
        recipients = keyring.recipients(session)
        code = _unique_lookup(session, server_key)
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
