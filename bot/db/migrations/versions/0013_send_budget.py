"""send budget: one global Telegram send rate shared by every worker (PostgreSQL)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 21:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # New tables only: a worker of the previous version ignores them (backward compatible).
    op.create_table('send_budget',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('next_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_send_budget'))
    )
    op.create_table('chat_send_pace',
    sa.Column('chat_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('next_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('chat_id', name=op.f('pk_chat_send_pace'))
    )
    with op.batch_alter_table('chat_send_pace', schema=None) as batch_op:
        batch_op.create_index('ix_chat_send_pace_next_at', ['next_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('chat_send_pace', schema=None) as batch_op:
        batch_op.drop_index('ix_chat_send_pace_next_at')
    op.drop_table('chat_send_pace')
    op.drop_table('send_budget')
