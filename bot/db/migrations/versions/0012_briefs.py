"""briefs and attendance: pre-session briefs sent, daily digest times, who marked attendance

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.add_column(sa.Column('digest_at', sa.String(length=5), nullable=True))
    op.create_table('session_presence',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('occurrence_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('present', sa.Boolean(), nullable=False),
    sa.Column('marked_by', sa.Integer(), nullable=True),
    sa.Column('marked_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['marked_by'], ['staff.id'], name=op.f('fk_session_presence_marked_by_staff')),
    sa.ForeignKeyConstraint(['occurrence_id'], ['session_occurrences.id'],
                            name=op.f('fk_session_presence_occurrence_id_session_occurrences'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'],
                            name=op.f('fk_session_presence_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_session_presence')),
    sa.UniqueConstraint('occurrence_id', 'participant_id', name='uq_session_presence_mark')
    )
    with op.batch_alter_table('session_presence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_session_presence_occurrence_id'), ['occurrence_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_session_presence_participant_id'), ['participant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('session_presence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_session_presence_participant_id'))
        batch_op.drop_index(batch_op.f('ix_session_presence_occurrence_id'))
    op.drop_table('session_presence')
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.drop_column('digest_at')
