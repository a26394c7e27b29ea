"""Tables of the flow engine and the daily check-in.

A `FlowRun` is one participant going through one flow (a check-in, later an exercise or a
questionnaire): where they are, what they answered so far, and whether it is still open. It
lives in the database so that a participant can continue after a restart, and so that a button
from an old message is recognised as stale.

A `CheckinAnswer` is one answer to one check-in question, stored per question id so that a
clinician's trends (mood over weeks, sleep, cravings) are a simple query.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base
from bot.db.types import EncryptedText

# The kind of a check-in, both as a FlowRun and as a ScheduledAction row.
CHECKIN = "checkin"


class FlowStatus(StrEnum):
    ACTIVE = "active"  # waiting for the participant's next answer
    FINISHED = "finished"  # every step answered (or skipped)
    EXPIRED = "expired"  # left unfinished past expires_at (a missed check-in)
    ABANDONED = "abandoned"  # replaced by a newer run of the same kind, or the participant stopped
    LEFT = "left"  # the participant stepped out of an exercise; /skills continues it where they were


class FlowRun(Base):
    __tablename__ = "flow_runs"
    __table_args__ = (
        Index("ix_flow_runs_participant_status", "participant_id", "status"),
        Index("ix_flow_runs_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    kind: Mapped[str] = mapped_column(String(20))  # checkin | exercise | instrument
    flow_id: Mapped[str] = mapped_column(String(80))  # e.g. "daily", an exercise id
    locale: Mapped[str] = mapped_column(String(10))
    step: Mapped[str | None] = mapped_column(String(40))  # the step waiting for an answer; None when done
    # JSON object {question id: value}. Encrypted at rest: it holds what the participant wrote.
    answers: Mapped[str] = mapped_column(EncryptedText, default="{}")
    status: Mapped[str] = mapped_column(String(20), default=FlowStatus.ACTIVE)
    # The highest safety level the answers reached, and which triggers fired (ids, never text).
    level: Mapped[int] = mapped_column(Integer, default=0)
    reasons: Mapped[str] = mapped_column(String(300), default="")
    # For check-ins: the participant's local date, and the scheduled row that sent it (if any).
    local_date: Mapped[date | None] = mapped_column(Date)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("scheduled_actions.id"))
    started_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class CheckinAnswer(Base):
    __tablename__ = "checkin_answers"
    __table_args__ = (
        UniqueConstraint("run_id", "question_id"),
        Index("ix_checkin_answers_participant_question_date", "participant_id", "question_id", "local_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    run_id: Mapped[int] = mapped_column(ForeignKey("flow_runs.id"))
    local_date: Mapped[date]
    question_id: Mapped[str] = mapped_column(String(40))
    # Exactly one of these is set: a number (mood, craving, sleep hours), a choice's value
    # ("yes", "no", "not_prescribed"), or free text (encrypted at rest). None of them: skipped.
    value_number: Mapped[float | None] = mapped_column(Float)
    value_choice: Mapped[str | None] = mapped_column(String(40))
    value_text: Mapped[str | None] = mapped_column(EncryptedText)
    answered_at: Mapped[datetime]
