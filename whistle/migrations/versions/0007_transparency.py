"""Transparency: reporters' ratings, frozen public figures per cut, executive summary
reports with their sign-off, and the tags of the analysis for prevention.

Revision ID: 0007
Revises: 0006

New tables only; existing rows are untouched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('publications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('cut_on', sa.Date(), nullable=False),
    sa.Column('made_on', sa.Date(), nullable=False),
    sa.Column('figures', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_publications')),
    sa.UniqueConstraint('fiscal_year', 'cut_on', name=op.f('uq_publications_fiscal_year_cut_on'))
    )
    op.create_table('summary_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('problems', sa.Text(), nullable=False),
    sa.Column('obstacles', sa.Text(), nullable=False),
    sa.Column('solutions', sa.Text(), nullable=False),
    sa.Column('written_by', sa.Integer(), nullable=True),
    sa.Column('written_on', sa.Date(), nullable=True),
    sa.Column('signed_off_by', sa.Integer(), nullable=True),
    sa.Column('signed_off_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['signed_off_by'], ['accounts.id'], name=op.f('fk_summary_reports_signed_off_by_accounts')),
    sa.ForeignKeyConstraint(['written_by'], ['accounts.id'], name=op.f('fk_summary_reports_written_by_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_summary_reports')),
    sa.UniqueConstraint('fiscal_year', 'period', name=op.f('uq_summary_reports_fiscal_year_period'))
    )
    op.create_table('prevention_tags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('unit', sa.String(length=64), nullable=False),
    sa.Column('weakness', sa.String(length=64), nullable=False),
    sa.Column('tagged_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_prevention_tags_report_id_reports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prevention_tags')),
    sa.UniqueConstraint('report_id', name=op.f('uq_prevention_tags_report_id'))
    )
    op.create_table('ratings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('score', sa.SmallInteger(), nullable=False),
    sa.Column('rated_on', sa.Date(), nullable=False),
    sa.Column('comment', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_ratings_report_id_reports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ratings')),
    sa.UniqueConstraint('report_id', name=op.f('uq_ratings_report_id'))
    )


def downgrade() -> None:
    op.drop_table('ratings')
    op.drop_table('prevention_tags')
    op.drop_table('summary_reports')
    op.drop_table('publications')
