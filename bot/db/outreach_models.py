"""Tables of the care team's messages to a participant and the replies (migration 0010).

An `OutreachMessage` is what a coach or clinician sent with /message: their words (free text,
encrypted at rest like any), who sent it, and whether it reached the participant. An
`OutreachReply` is the participant's answer: typed words are stored once, as the participant's
`InboundMessage` (assessed, encrypted, in their /mydata), and the reply points at it; the quick
answer ("I'm OK, thanks") has no words of its own.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db.models import Base, Participant, Staff
from bot.db.types import EncryptedText


class OutreachStatus(StrEnum):
    QUEUED = "queued"  # written, waiting for the outbox (or for the end of the participant's quiet hours)
    SENT = "sent"  # Telegram answered 200
    NOT_DELIVERED = "not_delivered"  # paused, stopped, discharged or blocked meanwhile: the sender was told


class ReplyKind(StrEnum):
    TEXT = "text"  # typed words (OutreachReply.inbound_message_id)
    OK = "ok"  # the "I'm OK, thanks" button


class OutreachMessage(Base):
    __tablename__ = "outreach_messages"
    __table_args__ = (Index("ix_outreach_messages_participant_sent", "participant_id", "sent_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    text: Mapped[str] = mapped_column(EncryptedText)
    status: Mapped[str] = mapped_column(String(20), default=OutreachStatus.QUEUED)
    # Why it was not delivered (a code: paused, discharged, opted_out, blocked, failed), never text.
    not_delivered_reason: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    due_at: Mapped[datetime]  # later than created_at when the participant was in quiet hours
    sent_at: Mapped[datetime | None]
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)

    participant: Mapped[Participant] = relationship(lazy="joined")
    staff: Mapped[Staff] = relationship(lazy="joined")


class OutreachReply(Base):
    __tablename__ = "outreach_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outreach_messages.id"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    inbound_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    received_at: Mapped[datetime]
    # When the staff member (or, if they left, the participant's clinician) got it; who that was.
    forwarded_at: Mapped[datetime | None]
    forwarded_to_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
