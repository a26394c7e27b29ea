"""Tables of a participant's goals and their weekly progress ratings (migration 0008).

A `Goal` is one of a participant's goals (up to three open at a time), in their own words or set
with their clinician: the words are free text, encrypted at rest like every note. Editing keeps
the goal (and its ratings); "done" closes it without deleting anything.

A `GoalRating` is one weekly answer for one goal: 0-10 and an optional line, stored as soon as it
is given (a prompt left half-way keeps what was rated), so a clinician's trajectory
("3 → 5 → 6") is one simple query.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base
from bot.db.types import EncryptedText

# The weekly progress prompt, both as a FlowRun kind and as a ScheduledAction kind.
GOAL_PROGRESS = "goal_progress"


class GoalStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class Goal(Base):
    __tablename__ = "goals"
    __table_args__ = (Index("ix_goals_participant_status", "participant_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    text: Mapped[str] = mapped_column(EncryptedText)  # the goal in the participant's (or clinician's) words
    status: Mapped[str] = mapped_column(String(10), default=GoalStatus.OPEN)
    # Who did what, as "participant:7" or "staff:3" (ids, never names).
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime | None]
    done_by: Mapped[str | None] = mapped_column(String(40))
    done_at: Mapped[datetime | None]


class GoalRating(Base):
    __tablename__ = "goal_ratings"
    __table_args__ = (
        UniqueConstraint("run_id", "goal_id"),
        Index("ix_goal_ratings_goal_rated", "goal_id", "rated_at"),
        Index("ix_goal_ratings_participant_rated", "participant_id", "rated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    goal_id: Mapped[int] = mapped_column(ForeignKey("goals.id"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("flow_runs.id"))  # the weekly prompt it answered
    local_date: Mapped[date | None] = mapped_column(Date)  # the participant's date of that prompt
    value: Mapped[int] = mapped_column(Integer)  # 0-10
    note: Mapped[str | None] = mapped_column(EncryptedText)  # their optional line, encrypted at rest
    rated_at: Mapped[datetime]
