"""Initial schema: keys, reports, status events, messages, attachments.

Revision ID: 0001
Revises: 
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('recipient_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.LargeBinary(length=16), nullable=False),
    sa.Column('role', sa.Enum('officer', 'recovery', name='keyrole', native_enum=False, length=32), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('public_key', sa.LargeBinary(length=1216), nullable=False),
    sa.Column('created_on', sa.Date(), nullable=False),
    sa.Column('retired_on', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recipient_keys')),
    sa.UniqueConstraint('key_id', name=op.f('uq_recipient_keys_key_id'))
    )
    op.create_table('reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lookup', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.Enum('web', 'phone', 'letter', 'walk_in', 'email', name='channel', native_enum=False, length=32), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Enum('received', 'acknowledged', 'under_review', 'investigating', 'referred', 'closed', name='status', native_enum=False, length=32), nullable=False),
    sa.Column('outcome', sa.Enum('substantiated', 'unsubstantiated', 'insufficient_information', 'outside_jurisdiction', name='outcome', native_enum=False, length=32), nullable=True),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('ack_due', sa.Date(), nullable=False),
    sa.Column('resolve_due', sa.Date(), nullable=False),
    sa.Column('code_salt', sa.LargeBinary(length=16), nullable=False),
    sa.Column('code_time_cost', sa.Integer(), nullable=False),
    sa.Column('code_memory_cost', sa.Integer(), nullable=False),
    sa.Column('code_parallelism', sa.Integer(), nullable=False),
    sa.Column('code_verifier', sa.LargeBinary(length=32), nullable=False),
    sa.Column('reporter_public_key', sa.LargeBinary(length=1216), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reports')),
    sa.UniqueConstraint('lookup', name=op.f('uq_reports_lookup'))
    )
    op.create_table('messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('author', sa.Enum('reporter', 'officer', name='author', native_enum=False, length=32), nullable=False),
    sa.Column('created_on', sa.Date(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_messages_report_id_reports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_messages_report_id'), ['report_id'], unique=False)

    op.create_table('status_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('received', 'acknowledged', 'under_review', 'investigating', 'referred', 'closed', name='status', native_enum=False, length=32), nullable=False),
    sa.Column('on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_status_events_report_id_reports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_status_events'))
    )
    with op.batch_alter_table('status_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_status_events_report_id'), ['report_id'], unique=False)

    op.create_table('attachments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('blob_name', sa.String(length=64), nullable=False),
    sa.Column('wraps', sa.LargeBinary(), nullable=False),
    sa.Column('meta', sa.LargeBinary(), nullable=False),
    sa.Column('sealed_size', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_attachments_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_attachments_report_id_reports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachments')),
    sa.UniqueConstraint('blob_name', name=op.f('uq_attachments_blob_name'))
    )
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attachments_report_id'), ['report_id'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attachments_report_id'))

    op.drop_table('attachments')
    with op.batch_alter_table('status_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_status_events_report_id'))

    op.drop_table('status_events')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_messages_report_id'))

    op.drop_table('messages')
    op.drop_table('reports')
    op.drop_table('recipient_keys')
    
