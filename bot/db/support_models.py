"""Support persons (#17): family or friends a participant invites, with both consents (migration 0016).

- A `SupportPerson` is one person a participant invited (with /support, or staff with `iopbot
  invite support`): who they are to the participant, in the participant's words ("mom"; free text,
  encrypted at rest, never logged), their single-use link (only its SHA-256), their own consent
  (version, time), and where they are: invited → consent_pending → active, or declined, revoked
  (the participant stopped it), left (they stopped it themselves).
- A `SupportShare` is the participant's consent about what this person sees: nothing, or
  attendance and/or "checked in this week"; never answers, messages, scores or alerts. Each change
  is a new row (what, version, time, by whom); the one with `ended_at` unset is in force. Revoking
  ends it. The rows stay: 42 CFR Part 2 asks for the consent's scope and history.
- A `SupportCheckin` is the support person's own weekly "how are you doing" (0-10, an optional
  line, encrypted), with the level the safety layer gave the line.
- A `SupportMessage` is a support person's text the safety layer flagged (concern or above), or one
  written while an alert of theirs is open: their words, encrypted, with the assessment. Kept apart
  from the participant's own messages, so it never shows in the participant's /mydata or notes.
- A `SupportAlert` ties an escalation (paged to the participant's care team like any other) to the
  support person whose words opened it.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db.models import Base, Participant
from bot.db.types import EncryptedText

# What a participant may share with a support person: session attendance, and whether they
# answered a check-in this week. Nothing else exists to share.
SHARE_ATTENDANCE = "attendance"
SHARE_CHECKINS = "checkins"
SHAREABLE = (SHARE_ATTENDANCE, SHARE_CHECKINS)


class SupportStatus(StrEnum):
    INVITED = "invited"  # link issued, not opened yet
    CONSENT_PENDING = "consent_pending"  # opened the link, has not answered their consent screen
    ACTIVE = "active"
    DECLINED = "declined"  # said no at their consent screen: the Telegram account is forgotten
    REVOKED = "revoked"  # the participant (or staff) stopped it: nothing is shared or sent any more
    LEFT = "left"  # the support person stopped it themselves (/stop)


# Someone who may hear from the bot as a support person (their Telegram account is bound).
BOUND = (SupportStatus.CONSENT_PENDING, SupportStatus.ACTIVE)


class SupportPerson(Base):
    __tablename__ = "support_persons"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    # "P-101-S1": what staff and the logs see; the program's pseudonym, like a participant's alias.
    alias: Mapped[str] = mapped_column(String(80), unique=True)
    # Who they are to the participant, in the participant's words ("mom", "Ana"). Encrypted at rest.
    name: Mapped[str | None] = mapped_column(EncryptedText)
    status: Mapped[str] = mapped_column(String(20), default=SupportStatus.INVITED)
    # The single-use link: only the SHA-256 of its token; cleared once it is used.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_expires_at: Mapped[datetime | None]
    invited_by: Mapped[str] = mapped_column(String(40))  # "participant:7" | "operator"
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    locale: Mapped[str] = mapped_column(String(10), default="en")
    timezone: Mapped[str] = mapped_column(String(64))  # the participant's at the invite
    # Their own consent (the support person's consent screen).
    consent_version: Mapped[str | None] = mapped_column(String(40))
    consented_at: Mapped[datetime | None]
    declined_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    left_at: Mapped[datetime | None]
    # Set when Telegram answered 403 (they blocked the bot); cleared when they write again.
    unreachable_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    participant: Mapped[Participant] = relationship(lazy="joined")

    @property
    def label(self) -> str:
        """How the participant and staff see them: the name the participant gave, else the alias."""
        return self.name or self.alias

    @property
    def receives_messages(self) -> bool:
        return self.status == SupportStatus.ACTIVE and self.chat_id is not None and self.unreachable_at is None


class SupportShare(Base):
    """The participant's consent about what one support person sees; one row per decision."""

    __tablename__ = "support_shares"

    id: Mapped[int] = mapped_column(primary_key=True)
    support_person_id: Mapped[int] = mapped_column(ForeignKey("support_persons.id"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    shares: Mapped[str] = mapped_column(String(80), default="")  # "attendance,checkins"; "" = nothing
    consent_version: Mapped[str] = mapped_column(String(40))
    decided_at: Mapped[datetime]
    decided_by: Mapped[str] = mapped_column(String(40))  # "participant:7" | "operator"
    ended_at: Mapped[datetime | None]  # changed again, or revoked

    @property
    def items(self) -> frozenset[str]:
        return frozenset(s for s in self.shares.split(",") if s)


class SupportCheckin(Base):
    __tablename__ = "support_checkins"
    __table_args__ = (UniqueConstraint("support_person_id", "local_date", name="uq_support_checkins_week"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    support_person_id: Mapped[int] = mapped_column(ForeignKey("support_persons.id"))
    local_date: Mapped[date] = mapped_column(Date)
    asked_at: Mapped[datetime]
    score: Mapped[int | None] = mapped_column(Integer)  # 0-10: how they are doing
    note: Mapped[str | None] = mapped_column(EncryptedText)  # their optional line
    level: Mapped[int] = mapped_column(Integer, default=0)  # what the safety layer gave the line
    answered_at: Mapped[datetime | None]


class SupportMessage(Base):
    __tablename__ = "support_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    support_person_id: Mapped[int] = mapped_column(ForeignKey("support_persons.id"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime]
    text: Mapped[str | None] = mapped_column(EncryptedText)
    level: Mapped[int] = mapped_column(Integer, default=0)
    categories: Mapped[str] = mapped_column(String(200), default="")
    reasons: Mapped[str] = mapped_column(Text, default="")
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id"))


class SupportAlert(Base):
    """An escalation opened by a support person's words (paged to the participant's care team)."""

    __tablename__ = "support_alerts"

    escalation_id: Mapped[int] = mapped_column(ForeignKey("escalations.id"), primary_key=True, autoincrement=False)
    support_person_id: Mapped[int] = mapped_column(ForeignKey("support_persons.id"), index=True)
