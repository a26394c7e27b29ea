"""peer groups: cohort group chats linked by staff, members, the group agreement

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('group_chats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('telegram_chat_id', sa.BigInteger(), nullable=False),
    sa.Column('cohort_id', sa.Integer(), nullable=True),
    sa.Column('locale', sa.String(length=10), nullable=False),
    sa.Column('linked_by_id', sa.Integer(), nullable=True),
    sa.Column('linked_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('bot_status', sa.String(length=20), nullable=False),
    sa.Column('prompts_posted', sa.Integer(), nullable=False),
    sa.Column('created_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cohort_id'], ['participant_groups.id'], name=op.f('fk_group_chats_cohort_id_participant_groups')),
    sa.ForeignKeyConstraint(['linked_by_id'], ['staff.id'], name=op.f('fk_group_chats_linked_by_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_chats')),
    sa.UniqueConstraint('telegram_chat_id', name=op.f('uq_group_chats_telegram_chat_id'))
    )
    with op.batch_alter_table('group_chats', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_chats_cohort_id'), ['cohort_id'], unique=False)

    op.create_table('group_agreements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('accepted_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_group_agreements_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_agreements')),
    sa.UniqueConstraint('participant_id', 'version', name='uq_group_agreements_accepted')
    )
    with op.batch_alter_table('group_agreements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_agreements_participant_id'), ['participant_id'], unique=False)

    op.create_table('group_invites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_chat_id', sa.Integer(), nullable=False),
    sa.Column('telegram_user_id', sa.BigInteger(), nullable=False),
    sa.Column('invite_link', sa.String(length=255), nullable=True),
    sa.Column('created_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['group_chat_id'], ['group_chats.id'], name=op.f('fk_group_invites_group_chat_id_group_chats'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_invites'))
    )
    with op.batch_alter_table('group_invites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_invites_group_chat_id'), ['group_chat_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_group_invites_invite_link'), ['invite_link'], unique=False)
        batch_op.create_index(batch_op.f('ix_group_invites_telegram_user_id'), ['telegram_user_id'], unique=False)

    op.create_table('group_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_chat_id', sa.Integer(), nullable=False),
    sa.Column('telegram_user_id', sa.BigInteger(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=True),
    sa.Column('staff_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('requested_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('joined_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('left_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('removed_by_id', sa.Integer(), nullable=True),
    sa.Column('muted_until', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['group_chat_id'], ['group_chats.id'], name=op.f('fk_group_members_group_chat_id_group_chats'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_group_members_participant_id_participants')),
    sa.ForeignKeyConstraint(['removed_by_id'], ['staff.id'], name=op.f('fk_group_members_removed_by_id_staff')),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_group_members_staff_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_members')),
    sa.UniqueConstraint('group_chat_id', 'telegram_user_id', name='uq_group_members_person')
    )
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_members_group_chat_id'), ['group_chat_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_group_members_participant_id'), ['participant_id'], unique=False)

    op.create_table('group_posts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_chat_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('sent_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['group_chat_id'], ['group_chats.id'], name=op.f('fk_group_posts_group_chat_id_group_chats'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_posts'))
    )
    with op.batch_alter_table('group_posts', schema=None) as batch_op:
        batch_op.create_index('ix_group_posts_chat_sent', ['group_chat_id', 'sent_at'], unique=False)

    op.create_table('group_flags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_chat_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('telegram_message_id', sa.BigInteger(), nullable=False),
    sa.Column('inbound_message_id', sa.Integer(), nullable=True),
    sa.Column('escalation_id', sa.Integer(), nullable=True),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('about_other', sa.Boolean(), nullable=False),
    sa.Column('at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('hidden_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('hidden_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id'], name=op.f('fk_group_flags_escalation_id_escalations')),
    sa.ForeignKeyConstraint(['group_chat_id'], ['group_chats.id'], name=op.f('fk_group_flags_group_chat_id_group_chats'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['hidden_by_id'], ['staff.id'], name=op.f('fk_group_flags_hidden_by_id_staff')),
    sa.ForeignKeyConstraint(['inbound_message_id'], ['inbound_messages.id'], name=op.f('fk_group_flags_inbound_message_id_inbound_messages')),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_group_flags_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_flags'))
    )
    with op.batch_alter_table('group_flags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_flags_group_chat_id'), ['group_chat_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_group_flags_participant_id'), ['participant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('group_flags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_flags_participant_id'))
        batch_op.drop_index(batch_op.f('ix_group_flags_group_chat_id'))

    op.drop_table('group_flags')
    with op.batch_alter_table('group_posts', schema=None) as batch_op:
        batch_op.drop_index('ix_group_posts_chat_sent')

    op.drop_table('group_posts')
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_members_participant_id'))
        batch_op.drop_index(batch_op.f('ix_group_members_group_chat_id'))

    op.drop_table('group_members')
    with op.batch_alter_table('group_invites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_invites_telegram_user_id'))
        batch_op.drop_index(batch_op.f('ix_group_invites_invite_link'))
        batch_op.drop_index(batch_op.f('ix_group_invites_group_chat_id'))

    op.drop_table('group_invites')
    with op.batch_alter_table('group_agreements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_agreements_participant_id'))

    op.drop_table('group_agreements')
    with op.batch_alter_table('group_chats', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_chats_cohort_id'))

    op.drop_table('group_chats')
