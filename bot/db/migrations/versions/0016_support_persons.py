"""support persons: invites, their consent, what the participant shares

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('support_persons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(length=80), nullable=False),
    sa.Column('name', bot.db.types.EncryptedText(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=True),
    sa.Column('invite_expires_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('invited_by', sa.String(length=40), nullable=False),
    sa.Column('telegram_user_id', sa.BigInteger(), nullable=True),
    sa.Column('chat_id', sa.BigInteger(), nullable=True),
    sa.Column('locale', sa.String(length=10), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('consent_version', sa.String(length=40), nullable=True),
    sa.Column('consented_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('declined_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('left_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('unreachable_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_support_persons_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_support_persons')),
    sa.UniqueConstraint('alias', name=op.f('uq_support_persons_alias')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_support_persons_token_hash'))
    )
    with op.batch_alter_table('support_persons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_support_persons_participant_id'), ['participant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_support_persons_telegram_user_id'), ['telegram_user_id'], unique=False)

    op.create_table('support_alerts',
    sa.Column('escalation_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('support_person_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id'], name=op.f('fk_support_alerts_escalation_id_escalations')),
    sa.ForeignKeyConstraint(['support_person_id'], ['support_persons.id'], name=op.f('fk_support_alerts_support_person_id_support_persons')),
    sa.PrimaryKeyConstraint('escalation_id', name=op.f('pk_support_alerts'))
    )
    with op.batch_alter_table('support_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_support_alerts_support_person_id'), ['support_person_id'], unique=False)

    op.create_table('support_checkins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('support_person_id', sa.Integer(), nullable=False),
    sa.Column('local_date', sa.Date(), nullable=False),
    sa.Column('asked_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('note', bot.db.types.EncryptedText(), nullable=True),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('answered_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['support_person_id'], ['support_persons.id'], name=op.f('fk_support_checkins_support_person_id_support_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_support_checkins')),
    sa.UniqueConstraint('support_person_id', 'local_date', name='uq_support_checkins_week')
    )
    op.create_table('support_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('support_person_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('telegram_message_id', sa.BigInteger(), nullable=True),
    sa.Column('received_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('text', bot.db.types.EncryptedText(), nullable=True),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('categories', sa.String(length=200), nullable=False),
    sa.Column('reasons', sa.Text(), nullable=False),
    sa.Column('escalation_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id'], name=op.f('fk_support_messages_escalation_id_escalations')),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_support_messages_participant_id_participants')),
    sa.ForeignKeyConstraint(['support_person_id'], ['support_persons.id'], name=op.f('fk_support_messages_support_person_id_support_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_support_messages'))
    )
    with op.batch_alter_table('support_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_support_messages_support_person_id'), ['support_person_id'], unique=False)

    op.create_table('support_shares',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('support_person_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('shares', sa.String(length=80), nullable=False),
    sa.Column('consent_version', sa.String(length=40), nullable=False),
    sa.Column('decided_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=40), nullable=False),
    sa.Column('ended_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_support_shares_participant_id_participants')),
    sa.ForeignKeyConstraint(['support_person_id'], ['support_persons.id'], name=op.f('fk_support_shares_support_person_id_support_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_support_shares'))
    )
    with op.batch_alter_table('support_shares', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_support_shares_support_person_id'), ['support_person_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('support_shares', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_support_shares_support_person_id'))

    op.drop_table('support_shares')
    with op.batch_alter_table('support_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_support_messages_support_person_id'))

    op.drop_table('support_messages')
    op.drop_table('support_checkins')
    with op.batch_alter_table('support_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_support_alerts_support_person_id'))

    op.drop_table('support_alerts')
    with op.batch_alter_table('support_persons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_support_persons_telegram_user_id'))
        batch_op.drop_index(batch_op.f('ix_support_persons_participant_id'))

    op.drop_table('support_persons')
