"""Cases: the one home of what every audience asks of a case.

Finding a case ("not found" included), its deadlines, its workflow (each step dated, with
its actor, on the audit trail in the same transaction), and the list of the sealed items
it holds, which re-wrapping (keyring), purging (retention) and exporting (bundles) all
walk, so that a new kind of sealed item is added in one place.

The workflow (DESIGN §7): received → acknowledged → under review → investigating →
referred (to an outside agency) → closed (with an outcome). A case moves forward only; it
may skip steps (a tip outside the organisation's authority goes straight to closed), and
leaving "received" by any step acknowledges it.

Deadlines: a tip is acknowledged within `ack_days` and resolved within `resolve_days`, or
an explanation is sent to the reporter before the resolution deadline, which sets the next
one. Days are calendar days or working days (`day_count`), with public holidays as data.

Services here commit their own transaction, as every service does.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, load_only, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from . import audit, crypto
from .config import Organisation
from .models import (
    Account,
    Agency,
    Attachment,
    Author,
    EventKind,
    IdentityRequest,
    Message,
    Note,
    Outcome,
    Rating,
    Report,
    Status,
    StatusEvent,
)


class CaseNotFound(LookupError):
    """No case with this number, or it was purged."""


class CaseClosed(Exception):
    """The case is closed; it takes no further workflow step."""


def get_case(session: Session, case_id: int, *, whole: bool = False) -> Report:
    """The case with this number; `CaseNotFound` if there is none or it was purged.

    `whole` loads its thread, files, notes and timeline at once (a handful of queries
    instead of one per message), for a page that shows them all. It replaces whatever of
    them this session had loaded: ask for it before changing any, as a page's GET does.
    """
    report = session.get(Report, case_id)
    if report is None or report.purged_on is not None:
        raise CaseNotFound(case_id)
    if whole:
        _load_whole(session, report)
    return report


def _load_whole(session: Session, report: Report) -> None:
    """Load a case's thread, files, notes, timeline and the accounts they name in one
    query each (five in all, fewer when the accounts are already loaded), and link them
    in Python. SQLAlchemy's selectinload did the same work in nine loader passes, the
    attachments fetched twice, at 2.4 times the cost (docs/benchmarks.md, "The officers'
    workspace")."""
    rid = report.id
    messages = session.scalars(select(Message).where(Message.report_id == rid).order_by(Message.id)).all()
    attachments = session.scalars(select(Attachment).where(Attachment.report_id == rid).order_by(Attachment.id)).all()
    notes = session.scalars(select(Note).where(Note.report_id == rid).order_by(Note.id)).all()
    events = session.scalars(select(StatusEvent).where(StatusEvent.report_id == rid).order_by(StatusEvent.id)).all()
    wanted = {report.assignee_id, *(m.author_id for m in messages), *(n.author_id for n in notes), *(e.actor_id for e in events)}
    wanted.discard(None)
    known = {key[1][0]: obj for key, obj in session.identity_map.items() if key[0] is Account}
    missing = wanted - known.keys()
    if missing:
        known.update((a.id, a) for a in session.scalars(select(Account).where(Account.id.in_(missing))))
    by_message: dict[int | None, list[Attachment]] = {}
    for attachment in attachments:
        by_message.setdefault(attachment.message_id, []).append(attachment)
    messages_by_id = {m.id: m for m in messages}

    link = set_committed_value
    link(report, "messages", list(messages))
    link(report, "attachments", list(attachments))
    link(report, "notes", list(notes))
    link(report, "events", list(events))
    link(report, "assignee", known.get(report.assignee_id))
    for message in messages:
        link(message, "report", report)
        link(message, "attachments", by_message.get(message.id, []))
        link(message, "author_account", known.get(message.author_id))
    for attachment in attachments:
        link(attachment, "report", report)
        link(attachment, "message", messages_by_id.get(attachment.message_id))
    for note in notes:
        link(note, "report", report)
        link(note, "author", known.get(note.author_id))
    for event in events:
        link(event, "report", report)
        link(event, "actor", known.get(event.actor_id))


# --------------------------------------------------------------------------- deadlines

#: Days before a deadline from which a case is "due soon" in the lists.
DUE_SOON_DAYS = 2


def is_working_day(organisation: Organisation, day: dt.date) -> bool:
    return day.weekday() < 5 and day not in organisation.holidays


def add_days(organisation: Organisation, start: dt.date, days: int) -> dt.date:
    """The day `days` days after `start`, counted as the organisation counts them."""
    if organisation.day_count == "calendar":
        return start + dt.timedelta(days=days)
    day = start
    while days > 0:
        day += dt.timedelta(days=1)
        if is_working_day(organisation, day):
            days -= 1
    return day


def days_between(organisation: Organisation, start: dt.date, end: dt.date) -> int:
    """Days from `start` to `end` as the organisation counts them (negative if `end` is earlier)."""
    if organisation.day_count == "calendar" or start == end:
        return (end - start).days
    sign, (lo, hi) = (1, (start, end)) if end > start else (-1, (end, start))
    count, day = 0, lo
    while day < hi:
        day += dt.timedelta(days=1)
        count += is_working_day(organisation, day)
    return sign * count


@dataclass(frozen=True)
class Deadlines:
    ack_due: dt.date
    resolve_due: dt.date


def deadlines(organisation: Organisation, received_on: dt.date) -> Deadlines:
    """When a tip received on `received_on` must be acknowledged, and resolved or explained."""
    return Deadlines(
        ack_due=add_days(organisation, received_on, organisation.ack_days),
        resolve_due=add_days(organisation, received_on, organisation.resolve_days),
    )


@dataclass(frozen=True)
class DaysLeft:
    """One deadline seen from today, in the words the list and the case page both show.

    `late` is judged by the dates alone, as `DeadlineState.overdue` is: on the Saturday
    after a Friday deadline the case is late although, in working days, no day has passed
    (`days` 0). `days`: days left (> 0), 0 due today or late by no whole counted day,
    days late (< 0), as the organisation counts days; a deadline ahead is never 0 days
    away unless it is today (a deadline on a coming non-working day counts calendar days).
    """

    days: int
    late: bool

    @property
    def today(self) -> bool:
        return self.days == 0 and not self.late


def days_left(organisation: Organisation, due: dt.date, today: dt.date) -> DaysLeft:
    if due > today:
        return DaysLeft(days_between(organisation, today, due) or (due - today).days, late=False)
    if due == today:
        return DaysLeft(0, late=False)
    return DaysLeft(-days_between(organisation, due, today), late=True)


@dataclass(frozen=True)
class DeadlineState:
    """Where a case stands against its deadlines today, for the list and the case page
    alike (both show `ack` and `resolve` through labels.days_left). "Due soon": a pending
    deadline within `DUE_SOON_DAYS` days (as the organisation counts days)."""

    ack_pending: bool
    ack: DaysLeft
    resolve_pending: bool
    resolve: DaysLeft
    overdue: bool
    due_soon: bool

    @property
    def ack_days_left(self) -> int:
        return self.ack.days

    @property
    def resolve_days_left(self) -> int:
        return self.resolve.days


def deadline_state(organisation: Organisation, report: Report, today: dt.date) -> DeadlineState:
    still_open = report.status is not Status.CLOSED
    ack_pending = still_open and report.acknowledged_on is None
    pending = [due for waiting, due in ((ack_pending, report.ack_due), (still_open, report.resolve_due)) if waiting]
    overdue = any(due < today for due in pending)  # the same test as DaysLeft.late
    soon = add_days(organisation, today, DUE_SOON_DAYS)
    return DeadlineState(
        ack_pending=ack_pending,
        ack=days_left(organisation, report.ack_due, today),
        resolve_pending=still_open,
        resolve=days_left(organisation, report.resolve_due, today),
        overdue=overdue,
        due_soon=not overdue and any(due <= soon for due in pending),
    )


# --------------------------------------------------------------------------- lists


@dataclass(frozen=True)
class ListQuery:
    """What the case list shows: every field is a filter or the order, as in the page's form."""

    status: str = "open"  # open | closed | all | a Status value
    category: str = ""
    channel: str = ""
    assignee: str = ""  # "" anyone | "me" | "none"
    due: str = ""  # "" | overdue | soon
    sort: str = "received"  # received | ack_due | resolve_due
    descending: bool = True
    page: int = 1

    SORTS = ("received", "ack_due", "resolve_due")


@dataclass(frozen=True)
class ListPage:
    rows: list[Report]
    total: int
    page: int
    pages: int


PER_PAGE = 50


def list_cases(session: Session, organisation: Organisation, query: ListQuery, me: Account, today: dt.date) -> ListPage:
    """One page of cases with their metadata only (no sealed column is read)."""
    conditions = [Report.purged_on.is_(None)]
    open_ = Report.status != Status.CLOSED
    if query.status == "open":
        conditions.append(open_)
    elif query.status == "closed":
        conditions.append(Report.status == Status.CLOSED)
    elif query.status in {s.value for s in Status}:
        conditions.append(Report.status == Status(query.status))
    if query.category:
        conditions.append(Report.category == query.category)
    if query.channel:
        conditions.append(Report.channel == query.channel)
    if query.assignee == "me":
        conditions.append(Report.assignee_id == me.id)
    elif query.assignee == "none":
        conditions.append(Report.assignee_id.is_(None))
    ack_late = and_(Report.acknowledged_on.is_(None), Report.ack_due < today)
    overdue = and_(open_, or_(ack_late, Report.resolve_due < today))
    if query.due == "overdue":
        conditions.append(overdue)
    elif query.due == "soon":
        soon = add_days(organisation, today, DUE_SOON_DAYS)
        ack_soon = and_(Report.acknowledged_on.is_(None), Report.ack_due <= soon)
        conditions += [open_, ~overdue, or_(ack_soon, Report.resolve_due <= soon)]

    column = {"received": Report.received_on, "ack_due": Report.ack_due, "resolve_due": Report.resolve_due}.get(query.sort, Report.received_on)
    order = (column.desc(), Report.id.desc()) if query.descending else (column.asc(), Report.id.asc())
    total = session.scalar(select(func.count()).select_from(Report).where(*conditions)) or 0
    pages = max(1, -(-total // PER_PAGE))
    page = min(max(1, query.page), pages)
    metadata_only = load_only(
        Report.id, Report.status, Report.category, Report.channel, Report.received_on, Report.ack_due,
        Report.resolve_due, Report.acknowledged_on, Report.assignee_id, Report.referred_to, Report.outcome,
    )
    rows = session.scalars(
        select(Report).options(metadata_only, selectinload(Report.assignee)).where(*conditions)
        .order_by(*order).limit(PER_PAGE).offset((page - 1) * PER_PAGE)
    ).all()
    return ListPage(list(rows), total, page, pages)


# --------------------------------------------------------------------------- workflow

ORDER = (Status.RECEIVED, Status.ACKNOWLEDGED, Status.UNDER_REVIEW, Status.INVESTIGATING, Status.REFERRED, Status.CLOSED)


class StepNotAllowed(Exception):
    """This step cannot follow the case's current one, or lacks what it needs."""


def next_steps(report: Report) -> list[Status]:
    """The steps a case may take from where it is."""
    if report.status is Status.CLOSED:
        return []
    return list(ORDER[ORDER.index(report.status) + 1 :])


def _event(report: Report, kind: EventKind, actor: Account | None, today: dt.date, detail: str | None = None) -> None:
    report.events.append(
        StatusEvent(kind=kind, status=report.status, on=today, actor_id=actor.id if actor else None, detail=detail)
    )


def move(
    session: Session,
    report: Report,
    status: Status | str,
    actor: Account | None,
    today: dt.date,
    *,
    agency: Agency | str | None = None,
    outcome: Outcome | str | None = None,
) -> None:
    """Take one workflow step, dated, with its actor, on the audit trail. Commits.

    Referring needs the agency; closing needs the outcome. Closing after the resolution
    deadline marks that deadline as missed, for the statistics.
    """
    status = Status(status)
    if status not in next_steps(report):
        raise StepNotAllowed(f"{report.status.value} -> {status.value}")
    detail = None
    if status is Status.REFERRED:
        if not agency:
            raise StepNotAllowed("a referral names the agency")
        report.referred_to = Agency(agency)
        report.referred_on = today  # the statistics' copy of the event's day (statistics.py)
        detail = report.referred_to.value
    if status is Status.CLOSED:
        if not outcome:
            raise StepNotAllowed("closing names the outcome")
        report.outcome = Outcome(outcome)
        report.closed_on = today
        detail = report.outcome.value
        if today > report.resolve_due:
            report.resolve_missed = True
    if report.acknowledged_on is None:
        report.acknowledged_on = today
    report.status = status
    _event(report, EventKind.STATUS, actor, today, detail)
    audit.record(session, "status_change", actor, report.id, to=status.value, detail=detail)
    session.commit()


def close_case(session: Session, case_id: int, outcome: Outcome | str, today: dt.date, actor: Account | None = None) -> None:
    """Close a case with its outcome. Commits."""
    report = get_case(session, case_id)
    if report.status is Status.CLOSED:
        raise CaseClosed(case_id)
    move(session, report, Status.CLOSED, actor, today, outcome=outcome)


def assign(session: Session, report: Report, assignee: Account | None, actor: Account, today: dt.date) -> None:
    """Give the case to an officer (or to nobody). Commits."""
    report.assignee_id = assignee.id if assignee is not None else None
    name = assignee.username if assignee is not None else None
    _event(report, EventKind.ASSIGNED, actor, today, name)
    audit.record(session, "assign", actor, report.id, to=name)
    session.commit()


class DeadlineNotLater(ValueError):
    """A new resolution deadline must be later than today."""


def record_extension(session: Session, report: Report, new_due: dt.date, actor: Account, today: dt.date) -> None:
    """Set the next resolution deadline, as an explanation to the reporter does. The caller
    sends the explanation in the same transaction, and commits. An explanation sent after
    the deadline had passed leaves that deadline missed."""
    if report.status is Status.CLOSED:
        raise CaseClosed(report.id)
    if new_due <= today:
        raise DeadlineNotLater(new_due.isoformat())
    if today > report.resolve_due:
        report.resolve_missed = True
    old = report.resolve_due
    report.resolve_due = new_due
    _event(report, EventKind.EXTENDED, actor, today, new_due.isoformat())
    audit.record(session, "deadline_extended", actor, report.id, old=old.isoformat(), new=new_due.isoformat())


# --------------------------------------------------------------------------- sealed items


# Where each sealed item of a case belongs (crypto §4). A reader computes the slot from
# what it expects to open (message 3, an officer's), never from a column alone.

TIP_SLOT = "tip"
IDENTITY_SLOT = "identity"
RATING_SLOT = "rating"


def message_slot(seq: int, author: Author) -> str:
    return f"message/{seq}/{Author(author).value}"


def note_slot(seq: int) -> str:
    return f"note/{seq}"


def file_slot(blob_name: str, part: str) -> str:
    """`part` is "meta" (its name and type) or "data" (the file stream's wrap block)."""
    return f"file/{blob_name}/{part}"


def binding(report: Report) -> bytes:
    """What ties an item to this case: its uid, reporter key, channel and received date."""
    return crypto.case_binding(report.uid, report.reporter_public_key, report.channel.value, report.received_on.isoformat())


def context(report: Report, slot: str) -> crypto.Context:
    return crypto.Context(binding(report), slot)


@dataclass(frozen=True)
class SealedItem:
    """One sealed value of a case: `getattr(row, column)` is its ciphertext, sealed for
    `slot`. `kind` is "envelope" for an item sealed whole, or "file" for a file's wrap
    block (its content is a blob in the store). `to_reporter` items are sealed to the
    case's reporter key too, besides the officers and the recovery key; `signed` items
    were signed by the officer who wrote them."""

    row: Report | Message | Note | Attachment | Rating
    column: str
    kind: str
    slot: str
    to_reporter: bool = False
    signed: bool = False


#: The sealed columns of the case's own row, their slots, and what a purge leaves in each.
REPORT_SEALED_COLUMNS = {"content": b"", "identity": None}
_REPORT_SLOTS = {"content": TIP_SLOT, "identity": IDENTITY_SLOT}
#: The tables whose rows belong to one case and hold sealed items or officers' words
#: about it (a purge deletes them).
CHILD_TABLES = (Attachment, Message, Note, IdentityRequest)


def reporter_key_id(report: Report) -> bytes:
    return crypto.PublicKey.from_bytes(report.reporter_public_key).key_id


def sealed_to_reporter(report: Report, sealed: bytes | None, kind: str = "envelope") -> bool:
    """Whether a version 2 item (an envelope, or a file's wrap block) names the case's
    reporter key among its recipients. The tip and its files are sealed to the reporter
    since the reporter could re-read them (crypto §22); those sent before were not, and
    stay so: a re-wrap keeps each item's own answer, never grants the reporter more. A
    version 1 item is never counted as the reporter's: its block has no MAC, so an entry
    naming the reporter could have been added by anyone."""
    if not sealed:
        return False
    try:
        if kind == "file":
            if len(sealed) != crypto.wrap_block_len(sealed[:1], crypto.VERSION_2):
                return False
            ids = crypto.recipient_ids(sealed)
        else:
            if crypto.is_legacy(sealed):
                return False
            ids = crypto.envelope_recipients(sealed)
        mine = reporter_key_id(report)
    except (crypto.OpenError, ValueError):
        return False
    return any(hmac.compare_digest(key_id, mine) for key_id in ids)


def sealed_items(report: Report) -> Iterator[SealedItem]:
    """Every sealed item of a case, the case's own first. Messages are always the
    reporter's to read; the tip and the files are when they were sealed so
    (`sealed_to_reporter`); the identity, notes and the rating's comment never are."""
    for column in REPORT_SEALED_COLUMNS:
        sealed = getattr(report, column)
        if sealed is not None:
            to_reporter = column == "content" and sealed_to_reporter(report, sealed)
            yield SealedItem(report, column, "envelope", _REPORT_SLOTS[column], to_reporter=to_reporter)
    for message in report.messages:
        officer = message.author is Author.OFFICER
        yield SealedItem(message, "body", "envelope", message_slot(message.seq, message.author), to_reporter=True, signed=officer)
    for note in report.notes:
        yield SealedItem(note, "body", "envelope", note_slot(note.seq), signed=True)
    for attachment in report.attachments:
        meta_to = sealed_to_reporter(report, attachment.meta)
        data_to = sealed_to_reporter(report, attachment.wraps, "file")
        yield SealedItem(attachment, "meta", "envelope", file_slot(attachment.blob_name, "meta"), to_reporter=meta_to)
        yield SealedItem(attachment, "wraps", "file", file_slot(attachment.blob_name, "data"), to_reporter=data_to)
    if report.rating is not None and report.rating.comment is not None:
        yield SealedItem(report.rating, "comment", "envelope", RATING_SLOT)
