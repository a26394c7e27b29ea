"""Tables of content delivery: what each participant read, found helpful or saved, and what they
wrote in skill exercises.

A `ContentReceipt` is one participant and one content item (a snippet or an exercise, by its id,
the same in every language): when it was first delivered and how (the daily drip or /learn),
their answer to "Was this helpful?", and whether they saved it to /favorites. It is how the drip
skips what someone already read, and what `iopbot content stats` counts.

An `ExerciseAnswer` is one answer of one exercise run, stored under the step's `key` (a
relapse-prevention plan's "triggers", a safety plan's "reasons_for_living"), so that /plan and
/safetyplan can show the participant their own words. Free text is encrypted at rest.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base
from bot.db.types import EncryptedText

# The kind of a FlowRun running a skill exercise.
EXERCISE = "exercise"
# Scheduled rows: the next step after an exercise's pause, and the daily psychoeducation drip.
EXERCISE_STEP = "exercise_step"
CONTENT_DRIP = "content_drip"


class DeliveredVia:
    DRIP = "drip"  # the daily snippet
    LEARN = "learn"  # opened from /learn or /favorites
    EXERCISE = "exercise"  # an exercise run to its end


class ContentReceipt(Base):
    __tablename__ = "content_receipts"
    __table_args__ = (
        UniqueConstraint("participant_id", "item_id"),
        Index("ix_content_receipts_item_id", "item_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    item_id: Mapped[str] = mapped_column(String(80))
    first_delivered_at: Mapped[datetime | None]
    delivered_via: Mapped[str | None] = mapped_column(String(20))  # how it first reached them
    deliveries: Mapped[int] = mapped_column(Integer, default=0)  # opened or sent this many times
    # The participant's local date of the drip that sent it (None: never by the drip).
    drip_date: Mapped[date | None] = mapped_column(Date)
    helpful: Mapped[bool | None] = mapped_column(Boolean)  # their latest answer; None: not answered
    answered_at: Mapped[datetime | None]
    saved_at: Mapped[datetime | None]  # in /favorites since then; None: not saved


class ExerciseAnswer(Base):
    __tablename__ = "exercise_answers"
    __table_args__ = (
        UniqueConstraint("run_id", "key"),
        Index("ix_exercise_answers_participant_exercise", "participant_id", "exercise_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    run_id: Mapped[int] = mapped_column(ForeignKey("flow_runs.id"))
    exercise_id: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(40))
    # One of them is set: a question's chosen value, or typed text (encrypted at rest).
    value_choice: Mapped[str | None] = mapped_column(String(40))
    value_text: Mapped[str | None] = mapped_column(EncryptedText)
    answered_at: Mapped[datetime]
