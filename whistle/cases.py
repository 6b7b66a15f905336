"""Cases: the one home of what every audience asks of a case.

Finding a case ("not found" included), its deadlines, closing it, and the list of the
sealed items it holds, which re-wrapping (keyring), purging (retention) and exporting
(bundles) all walk, so that a new kind of sealed item is added in one place.

Services here commit their own transaction, as every service does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy.orm import Session

from .config import Organisation
from .models import Attachment, Message, Outcome, Report, Status, StatusEvent


class CaseNotFound(LookupError):
    """No case with this number, or it was purged."""


class CaseClosed(Exception):
    """The case is closed; it takes no further workflow step."""


def get_case(session: Session, case_id: int) -> Report:
    """The case with this number; `CaseNotFound` if there is none or it was purged."""
    report = session.get(Report, case_id)
    if report is None or report.purged_on is not None:
        raise CaseNotFound(case_id)
    return report


# --------------------------------------------------------------------------- deadlines


@dataclass(frozen=True)
class Deadlines:
    ack_due: dt.date
    resolve_due: dt.date


def deadlines(organisation: Organisation, received_on: dt.date) -> Deadlines:
    """When a tip received on `received_on` must be acknowledged, and resolved or explained."""
    return Deadlines(
        ack_due=received_on + dt.timedelta(days=organisation.ack_days),
        resolve_due=received_on + dt.timedelta(days=organisation.resolve_days),
    )


# --------------------------------------------------------------------------- closing


def close_case(session: Session, case_id: int, outcome: Outcome | str, today: dt.date) -> None:
    """Close a case with its outcome: a "closed" status event and `closed_on`."""
    report = get_case(session, case_id)
    if report.status is Status.CLOSED:
        raise CaseClosed(case_id)
    report.status = Status.CLOSED
    report.outcome = Outcome(outcome)
    report.closed_on = today
    report.events.append(StatusEvent(status=Status.CLOSED, on=today))
    session.commit()


# --------------------------------------------------------------------------- sealed items


@dataclass(frozen=True)
class SealedItem:
    """One sealed value of a case: `getattr(row, column)` is its ciphertext.

    `kind` is "envelope" for an item sealed whole, or "file" for a file's wrap block (its
    content is a blob in the store). `to_reporter` items are sealed to the case's reporter
    key too, besides the officers and the recovery key.
    """

    row: Report | Message | Attachment
    column: str
    kind: str
    to_reporter: bool = False


#: The sealed columns of the case's own row (a purge empties them).
REPORT_SEALED_COLUMNS = ("content",)
#: The tables whose rows belong to one case and hold sealed items (a purge deletes them).
CHILD_TABLES = (Attachment, Message)


def sealed_items(report: Report) -> Iterator[SealedItem]:
    """Every sealed item of a case, the case's own first."""
    for column in REPORT_SEALED_COLUMNS:
        yield SealedItem(report, column, "envelope")
    for message in report.messages:
        yield SealedItem(message, "body", "envelope", to_reporter=True)
    for attachment in report.attachments:
        yield SealedItem(attachment, "meta", "envelope")
        yield SealedItem(attachment, "wraps", "file")
