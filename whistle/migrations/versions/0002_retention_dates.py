"""Retention: the day a case closed (the period counts from it) and the day it was purged.

Revision ID: 0002
Revises: 0001

Cases closed before this revision get `closed_on` from their last "closed" status event,
so the retention job treats them like any other closed case.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("purged_on", sa.Date(), nullable=True))

    reports = sa.table("reports", sa.column("id"), sa.column("status"), sa.column("closed_on", sa.Date()))
    events = sa.table("status_events", sa.column("report_id"), sa.column("status"), sa.column("on", sa.Date()))
    last_closed = (
        sa.select(sa.func.max(events.c.on))
        .where(events.c.report_id == reports.c.id, events.c.status == "closed")
        .scalar_subquery()
    )
    op.execute(reports.update().where(reports.c.status == "closed").values(closed_on=last_closed))


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("purged_on")
        batch_op.drop_column("closed_on")
