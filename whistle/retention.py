"""Retention: closed cases are purged after `retention_days`, keeping what the statistics count.

A purge deletes a case's messages, its files (rows and sealed files in the blob store) and
the status events the statistics do not need, and empties every secret column of its row:
the sealed content, the tracking-code salt and verifier, and the reporter's public key.
The lookup digits are replaced by a value no tracking code can have (`x` + the case
number), so the case's code then finds no case at all and the status page answers exactly
as for an unknown code. What stays is the row's workflow metadata (channel, category,
status, outcome, received_on, the deadlines, closed_on, purged_on, and the statistics'
copies referred_on, rated_on and rating_score), the score of the
reporter's rating (its comment is emptied), and the first acknowledgement and the closing
events, so the public statistics, including the share
handled within the deadlines, still count the case.

The secret columns stay NOT NULL: a purged row holds empty values, and `purged_on` says
why; every reader of those columns goes through a service that refuses purged cases.

Services commit themselves. Files are deleted only after the commit that removed their
rows has succeeded: a failed commit leaves rows and files as they were, and a crash
after the commit leaves only unreferenced ciphertext that `whistle sweep` removes.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Iterator, Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .cases import CHILD_TABLES, REPORT_SEALED_COLUMNS
from .models import Attachment, Rating, Report, Status, StatusEvent
from .storage import BlobStore

log = logging.getLogger(__name__)

#: Reports purged per transaction: bounds the transaction and the files held back.
BATCH = 100


class PurgeFailed(Exception):
    """The database did not take the purge; nothing of the failed batch changed."""


def cutoff(today: dt.date, retention_days: int) -> dt.date:
    """Cases closed before this day are due: closed more than `retention_days` days ago."""
    return today - dt.timedelta(days=retention_days)


def due_for_purge(session: Session, today: dt.date, retention_days: int) -> list[tuple[int, dt.date]]:
    """(case number, closed_on) of every case a purge today would wipe; [] when retention is off."""
    if retention_days <= 0:
        return []
    rows = session.execute(
        select(Report.id, Report.closed_on)
        .where(
            Report.status == Status.CLOSED,
            Report.closed_on.is_not(None),
            Report.closed_on < cutoff(today, retention_days),
            Report.purged_on.is_(None),
        )
        .order_by(Report.id)
    )
    return [(row.id, row.closed_on) for row in rows]


def _batches(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def _kept_events(session: Session, ids: list[int]) -> list[int]:
    """Per case, the first acknowledgement and the last closing: what the statistics read."""
    first_ack = select(func.min(StatusEvent.id)).where(
        StatusEvent.report_id.in_(ids), StatusEvent.status == Status.ACKNOWLEDGED
    ).group_by(StatusEvent.report_id)
    last_close = select(func.max(StatusEvent.id)).where(
        StatusEvent.report_id.in_(ids), StatusEvent.status == Status.CLOSED
    ).group_by(StatusEvent.report_id)
    return [*session.scalars(first_ack), *session.scalars(last_close)]


def _wipe(session: Session, ids: list[int], today: dt.date) -> list[str]:
    """Stage the purge of these cases in the session; return the blob names to delete."""
    blobs = list(session.scalars(select(Attachment.blob_name).where(Attachment.report_id.in_(ids))))
    kept = _kept_events(session, ids)
    for table in CHILD_TABLES:
        session.execute(delete(table).where(table.report_id.in_(ids)))
    session.execute(
        delete(StatusEvent).where(StatusEvent.report_id.in_(ids), StatusEvent.id.not_in(kept))
    )
    # The rating's score stays (the satisfaction share counts it); its words go.
    session.execute(update(Rating).where(Rating.report_id.in_(ids)).values(comment=None))
    for report in session.scalars(select(Report).where(Report.id.in_(ids))):
        report.lookup = f"x{report.id}"  # digits only in a code: no code can find it again
        for column, emptied in REPORT_SEALED_COLUMNS.items():
            setattr(report, column, emptied)
        report.code_salt = b""
        report.code_verifier = b""
        report.reporter_public_key = b""
        report.reporter_key_sealed = None
        report.purged_on = today
    return blobs


def purge_closed(session: Session, store: BlobStore, today: dt.date, retention_days: int) -> int:
    """Purge every case closed more than `retention_days` days before `today`; return how many.

    `retention_days` 0 (or less) purges nothing. Works in batches, each its own
    transaction; a failing batch raises `PurgeFailed` with that batch untouched (earlier
    batches stay purged, which is as consistent as purging fewer).
    """
    ids = [case for case, _closed in due_for_purge(session, today, retention_days)]
    purged = 0
    for batch in _batches(ids, BATCH):
        try:
            blobs = _wipe(session, batch, today)
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise PurgeFailed(f"the database refused the purge of cases {batch[0]}..{batch[-1]}") from exc
        session.expire_all()  # collections loaded before the bulk deletes are stale now
        for name in blobs:
            try:
                store.delete(name)
            except OSError:  # unreferenced ciphertext now; `whistle sweep` removes it
                log.warning("could not delete a purged case's sealed file; `whistle sweep` will")
        purged += len(batch)
    return purged
