"""Tracking codes: a reporter key kept across a move to a new Argon2 cost, and an index on
the cost columns (every code check asks which costs live cases have).

Revision ID: 0006
Revises: 0005

Existing cases keep their reporter key derived from their code (`reporter_key_sealed`
empty); a case moves to the current cost, and fills the column, when its code next opens
it (docs/crypto.md section 12).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reporter_key_sealed", sa.LargeBinary(length=128), nullable=True))
        batch_op.create_index(
            "ix_reports_code_cost", ["code_time_cost", "code_memory_cost", "code_parallelism", "purged_on"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index("ix_reports_code_cost")
        batch_op.drop_column("reporter_key_sealed")
