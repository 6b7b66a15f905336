"""Which recipient keys each case's sealed items are wrapped for (`reports.sealed_for`),
so that re-wrap work still to do after a key was certified or retired is one query.

Revision ID: 0009
Revises: 0008

Existing cases get none: they count as still to re-wrap once, which is harmless (a
re-wrap for the same recipients changes nothing anyone can open).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sealed_for", sa.LargeBinary(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("sealed_for")
