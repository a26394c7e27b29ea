"""worker roles: the polling leader's lease and each worker's heartbeat and last scheduler tick

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 21:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('worker_processes',
    sa.Column('id', sa.String(length=120), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('polling', sa.Boolean(), nullable=False),
    sa.Column('started_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('seen_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_tick_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_processes'))
    )
    with op.batch_alter_table('worker_processes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_processes_seen_at'), ['seen_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('worker_processes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_worker_processes_seen_at'))
    op.drop_table('worker_processes')
