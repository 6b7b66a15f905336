"""The statistics' keys on `reports`: the referral's day (`referred_on`) and the rating's
day and score (`rated_on`, `rating_score`), so that the public figures are counted from
this one table, with no look-up of the referral event and no join of the ratings.

Revision ID: 0010
Revises: 0009

Existing rows are filled from their sources: the day of the case's first referral event,
or, for a referred case whose referral event a purge deleted, its closing day (what the
statistics counted for it before); the day and score of its rating.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

reports = sa.table(
    "reports", sa.column("id", sa.Integer), sa.column("referred_to", sa.String), sa.column("closed_on", sa.Date),
    sa.column("referred_on", sa.Date), sa.column("rated_on", sa.Date), sa.column("rating_score", sa.SmallInteger),
)
events = sa.table(
    "status_events", sa.column("report_id", sa.Integer), sa.column("kind", sa.String), sa.column("status", sa.String),
    sa.column("on", sa.Date),
)
ratings = sa.table("ratings", sa.column("report_id", sa.Integer), sa.column("score", sa.SmallInteger),
                   sa.column("rated_on", sa.Date))


def upgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("referred_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("rated_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("rating_score", sa.SmallInteger(), nullable=True))
    referral = (
        sa.select(sa.func.min(events.c.on))
        .where(events.c.report_id == reports.c.id, events.c.kind == "status", events.c.status == "referred")
        .scalar_subquery()
    )
    op.execute(
        reports.update().where(reports.c.referred_to.is_not(None))
        .values(referred_on=sa.func.coalesce(referral, reports.c.closed_on))
    )
    rating = ratings.c.report_id == reports.c.id
    op.execute(
        reports.update().where(sa.exists().where(rating)).values(
            rated_on=sa.select(ratings.c.rated_on).where(rating).scalar_subquery(),
            rating_score=sa.select(ratings.c.score).where(rating).scalar_subquery(),
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("rating_score")
        batch_op.drop_column("rated_on")
        batch_op.drop_column("referred_on")
