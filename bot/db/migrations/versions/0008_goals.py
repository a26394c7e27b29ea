"""goals: a participant's goals (up to three open) and their weekly progress ratings

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('goals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('text', bot.db.types.EncryptedText(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_by', sa.String(length=40), nullable=False),
    sa.Column('created_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=40), nullable=True),
    sa.Column('updated_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('done_by', sa.String(length=40), nullable=True),
    sa.Column('done_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_goals_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_goals'))
    )
    with op.batch_alter_table('goals', schema=None) as batch_op:
        batch_op.create_index('ix_goals_participant_status', ['participant_id', 'status'], unique=False)

    op.create_table('goal_ratings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('goal_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('local_date', sa.Date(), nullable=True),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.Column('note', bot.db.types.EncryptedText(), nullable=True),
    sa.Column('rated_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['goal_id'], ['goals.id'], name=op.f('fk_goal_ratings_goal_id_goals')),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_goal_ratings_participant_id_participants')),
    sa.ForeignKeyConstraint(['run_id'], ['flow_runs.id'], name=op.f('fk_goal_ratings_run_id_flow_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_goal_ratings')),
    sa.UniqueConstraint('run_id', 'goal_id', name=op.f('uq_goal_ratings_run_id'))
    )
    with op.batch_alter_table('goal_ratings', schema=None) as batch_op:
        batch_op.create_index('ix_goal_ratings_goal_rated', ['goal_id', 'rated_at'], unique=False)
        batch_op.create_index('ix_goal_ratings_participant_rated', ['participant_id', 'rated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('goal_ratings', schema=None) as batch_op:
        batch_op.drop_index('ix_goal_ratings_participant_rated')
        batch_op.drop_index('ix_goal_ratings_goal_rated')

    op.drop_table('goal_ratings')
    with op.batch_alter_table('goals', schema=None) as batch_op:
        batch_op.drop_index('ix_goals_participant_status')

    op.drop_table('goals')
