"""Cohort group chats (#17): a Telegram group linked to a cohort, its members, the agreement (migration 0015).

A cohort is a `ParticipantGroup` (bot/db/calendar_models.py: the set of participants a group
session is for). Staff link one Telegram supergroup to it with `/linkgroup COHORT` in the group;
only the cohort's active participants (and its staff) get in, each with a link of their own and
after accepting the group's confidentiality agreement. No message text is stored here: a flagged
group message is kept like any other flagged message (`InboundMessage`, encrypted at rest), and
`GroupFlag` points at it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db.calendar_models import ParticipantGroup
from bot.db.models import Base


class MemberStatus(StrEnum):
    REQUESTED = "requested"  # asked to join; waiting for the agreement (or for a decision)
    MEMBER = "member"  # in the group
    LEFT = "left"  # left, or was removed because they are no longer in the cohort or the program
    REMOVED = "removed"  # a facilitator removed them (/remove): no way back in until /readmit


class GroupChat(Base):
    """A Telegram group the bot is in; linked when `cohort_id` is set."""

    __tablename__ = "group_chats"

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_chat_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("participant_groups.id"), index=True)
    # The language of what the bot posts in the group (prompts, notices).
    locale: Mapped[str] = mapped_column(String(10), default="en")
    linked_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    linked_at: Mapped[datetime | None]
    # What Telegram last said the bot is there: administrator | member | left | kicked.
    bot_status: Mapped[str] = mapped_column(String(20), default="member")
    # Discussion prompts posted so far: the next one is the next file in order.
    prompts_posted: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]

    cohort: Mapped[ParticipantGroup | None] = relationship(lazy="joined")


class GroupMember(Base):
    """A person's place in a group chat: a participant of the cohort or one of its staff."""

    __tablename__ = "group_members"
    __table_args__ = (UniqueConstraint("group_chat_id", "telegram_user_id", name="uq_group_members_person"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_chat_id: Mapped[int] = mapped_column(ForeignKey("group_chats.id", ondelete="CASCADE"), index=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"), index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    status: Mapped[str] = mapped_column(String(20), default=MemberStatus.REQUESTED)
    # A join request waiting for the agreement: when it came (Telegram keeps it until decided).
    requested_at: Mapped[datetime | None]
    joined_at: Mapped[datetime | None]
    left_at: Mapped[datetime | None]
    removed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    muted_until: Mapped[datetime | None]


class GroupInvite(Base):
    """A join link made for one person: it asks for approval, and only that person is approved."""

    __tablename__ = "group_invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    group_chat_id: Mapped[int] = mapped_column(ForeignKey("group_chats.id", ondelete="CASCADE"), index=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    invite_link: Mapped[str | None] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class GroupAgreement(Base):
    """A participant accepted the group's confidentiality agreement: which version, when."""

    __tablename__ = "group_agreements"
    __table_args__ = (UniqueConstraint("participant_id", "version", name="uq_group_agreements_accepted"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    version: Mapped[str] = mapped_column(String(40))
    accepted_at: Mapped[datetime]


class GroupFlag(Base):
    """A group message the safety layer flagged: what the facilitators were told, and whether the
    message was hidden from the group (by whom, or by the bot at imminent level when allowed)."""

    __tablename__ = "group_flags"

    id: Mapped[int] = mapped_column(primary_key=True)
    group_chat_id: Mapped[int] = mapped_column(ForeignKey("group_chats.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    telegram_message_id: Mapped[int] = mapped_column(BigInteger)
    inbound_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id"))
    level: Mapped[int] = mapped_column(Integer)
    # Worry about someone else (a peer): nothing happens to the writer; the facilitators are told.
    about_other: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime]
    hidden_at: Mapped[datetime | None]
    hidden_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))


class GroupPost(Base):
    """A message the bot sent to a group: Telegram allows about 20 a minute per group, so each
    send first counts the ones of the last minute here (shared by every worker)."""

    __tablename__ = "group_posts"
    __table_args__ = (Index("ix_group_posts_chat_sent", "group_chat_id", "sent_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_chat_id: Mapped[int] = mapped_column(ForeignKey("group_chats.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    sent_at: Mapped[datetime]
