"""Notices to officers (`whistle notify`): each account's e-mail address, the last case
and reporter's message a notice covered, and the near deadlines already announced.

Revision ID: 0008
Revises: 0007

Existing accounts start as if told about everything stored so far, so that the first run
after the upgrade does not announce every old case as new.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deadline_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_deadline_notices_account_id_accounts"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["report_id"], ["reports.id"], name=op.f("fk_deadline_notices_report_id_reports"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deadline_notices")),
        sa.UniqueConstraint("account_id", "report_id", "due_on", name=op.f("uq_deadline_notices_account_id_report_id_due_on")),
    )
    with op.batch_alter_table("deadline_notices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deadline_notices_report_id"), ["report_id"], unique=False)

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("notified_report_id", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("notified_message_id", sa.Integer(), nullable=False, server_default="0"))

    connection = op.get_bind()
    last_report = connection.execute(sa.text("SELECT coalesce(max(id), 0) FROM reports")).scalar_one()
    last_message = connection.execute(sa.text("SELECT coalesce(max(id), 0) FROM messages")).scalar_one()
    accounts = sa.table("accounts", sa.column("notified_report_id"), sa.column("notified_message_id"))
    connection.execute(accounts.update().values(notified_report_id=last_report, notified_message_id=last_message))


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("notified_message_id")
        batch_op.drop_column("notified_report_id")
        batch_op.drop_column("email")
    with op.batch_alter_table("deadline_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deadline_notices_report_id"))
    op.drop_table("deadline_notices")
