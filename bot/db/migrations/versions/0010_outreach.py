"""outreach: messages from a coach or clinician to a participant and the replies

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outreach_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('text', bot.db.types.EncryptedText(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('not_delivered_reason', sa.String(length=40), nullable=True),
    sa.Column('created_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('telegram_message_id', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'],
                            name=op.f('fk_outreach_messages_participant_id_participants')),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_outreach_messages_staff_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outreach_messages'))
    )
    with op.batch_alter_table('outreach_messages', schema=None) as batch_op:
        batch_op.create_index('ix_outreach_messages_participant_sent', ['participant_id', 'sent_at'], unique=False)

    op.create_table('outreach_replies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('inbound_message_id', sa.Integer(), nullable=True),
    sa.Column('received_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('forwarded_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('forwarded_to_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['forwarded_to_id'], ['staff.id'], name=op.f('fk_outreach_replies_forwarded_to_id_staff')),
    sa.ForeignKeyConstraint(['inbound_message_id'], ['inbound_messages.id'],
                            name=op.f('fk_outreach_replies_inbound_message_id_inbound_messages')),
    sa.ForeignKeyConstraint(['message_id'], ['outreach_messages.id'],
                            name=op.f('fk_outreach_replies_message_id_outreach_messages')),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'],
                            name=op.f('fk_outreach_replies_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outreach_replies'))
    )
    with op.batch_alter_table('outreach_replies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outreach_replies_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outreach_replies_participant_id'), ['participant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outreach_replies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outreach_replies_participant_id'))
        batch_op.drop_index(batch_op.f('ix_outreach_replies_message_id'))
    op.drop_table('outreach_replies')
    with op.batch_alter_table('outreach_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outreach_messages_participant_sent')
    op.drop_table('outreach_messages')
