"""medications: a participant's own reminders (times, days) and each dose's outcome

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('medication_reminders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('name', bot.db.types.EncryptedText(), nullable=True),
    sa.Column('times', sa.String(length=60), nullable=False),
    sa.Column('days', sa.String(length=20), nullable=False),
    sa.Column('paused_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('removed_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_medication_reminders_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_medication_reminders'))
    )
    with op.batch_alter_table('medication_reminders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_medication_reminders_participant_id'), ['participant_id'], unique=False)

    op.create_table('medication_doses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reminder_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('local_date', sa.Date(), nullable=False),
    sa.Column('local_time', sa.String(length=5), nullable=False),
    sa.Column('due_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('deadline_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('snoozes', sa.Integer(), nullable=False),
    sa.Column('answered_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_medication_doses_participant_id_participants')),
    sa.ForeignKeyConstraint(['reminder_id'], ['medication_reminders.id'], name=op.f('fk_medication_doses_reminder_id_medication_reminders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_medication_doses')),
    sa.UniqueConstraint('reminder_id', 'local_date', 'local_time', name=op.f('uq_medication_doses_reminder_id'))
    )
    with op.batch_alter_table('medication_doses', schema=None) as batch_op:
        batch_op.create_index('ix_medication_doses_participant_due', ['participant_id', 'due_at'], unique=False)
        batch_op.create_index('ix_medication_doses_status_deadline', ['status', 'deadline_at'], unique=False)

    op.create_table('medication_consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('agreed', sa.Boolean(), nullable=False),
    sa.Column('after_missed', sa.Integer(), nullable=False),
    sa.Column('decided_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_medication_consents_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_medication_consents')),
    sa.UniqueConstraint('participant_id', name=op.f('uq_medication_consents_participant_id'))
    )


def downgrade() -> None:
    op.drop_table('medication_consents')
    with op.batch_alter_table('medication_doses', schema=None) as batch_op:
        batch_op.drop_index('ix_medication_doses_status_deadline')
        batch_op.drop_index('ix_medication_doses_participant_due')

    op.drop_table('medication_doses')
    with op.batch_alter_table('medication_reminders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_medication_reminders_participant_id'))

    op.drop_table('medication_reminders')
