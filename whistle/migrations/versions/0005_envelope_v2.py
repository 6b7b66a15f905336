"""Envelope format v2: what binds each sealed item to its case and slot (crypto §4), and
the officer keys' signing halves and certificates (crypto §2.2, §9).

Revision ID: 0005
Revises: 0004

Existing cases get a random `uid`; existing messages and notes get their place in their
case (`seq`: 1, 2, ... in the order they were written). Their sealed items stay version 1
until `whistle keys rebind` re-seals them with a private key (keys/README.md).
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _number_in_case(table: str) -> None:
    rows = sa.table(table, sa.column("id"), sa.column("report_id"), sa.column("seq"))
    connection = op.get_bind()
    places: dict[int, int] = {}
    for row_id, report_id in connection.execute(sa.select(rows.c.id, rows.c.report_id).order_by(rows.c.id)):
        places[report_id] = places.get(report_id, 0) + 1
        connection.execute(rows.update().where(rows.c.id == row_id).values(seq=places[report_id]))


def upgrade() -> None:
    for table in ("messages", "notes"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        _number_in_case(table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
            batch_op.create_unique_constraint(batch_op.f(f"uq_{table}_report_id_seq"), ["report_id", "seq"])

    with op.batch_alter_table("recipient_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verify_key", sa.LargeBinary(length=1984), nullable=True))
        batch_op.add_column(sa.Column("certificate", sa.LargeBinary(), nullable=True))

    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("uid", sa.LargeBinary(length=16), nullable=True))
    reports = sa.table("reports", sa.column("id"), sa.column("uid", sa.LargeBinary))
    connection = op.get_bind()
    for (report_id,) in connection.execute(sa.select(reports.c.id)):
        connection.execute(reports.update().where(reports.c.id == report_id).values(uid=os.urandom(16)))
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.alter_column("uid", existing_type=sa.LargeBinary(length=16), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_reports_uid"), ["uid"])


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_reports_uid"), type_="unique")
        batch_op.drop_column("uid")

    with op.batch_alter_table("recipient_keys", schema=None) as batch_op:
        batch_op.drop_column("certificate")
        batch_op.drop_column("verify_key")

    for table in ("notes", "messages"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f"uq_{table}_report_id_seq"), type_="unique")
            batch_op.drop_column("seq")
