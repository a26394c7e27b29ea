"""Tables of the weekly questionnaires (instruments such as PHQ-9 and GAD-7).

An `InstrumentAnswer` is one answer to one item, stored by item id with the option's value (the
number that is scored), as soon as it is given: a questionnaire left half-way keeps what was
answered. An `InstrumentScore` is written when every item is answered: the total, the band, and
whether a safety item fired, so a clinician's trend of totals is one simple query.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base

# The kind of a questionnaire, both as a FlowRun and as a ScheduledAction row.
INSTRUMENT = "instrument"


class InstrumentAnswer(Base):
    __tablename__ = "instrument_answers"
    __table_args__ = (
        UniqueConstraint("run_id", "item_id"),
        Index("ix_instrument_answers_participant_instrument", "participant_id", "instrument_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    run_id: Mapped[int] = mapped_column(ForeignKey("flow_runs.id"))
    instrument_id: Mapped[str] = mapped_column(String(24))  # "phq9"
    item_id: Mapped[str] = mapped_column(String(40))  # "phq9_9"
    value: Mapped[int] = mapped_column(Integer)  # the chosen option's value, as scored
    answered_at: Mapped[datetime]


class InstrumentScore(Base):
    __tablename__ = "instrument_scores"
    __table_args__ = (
        UniqueConstraint("run_id"),
        Index("ix_instrument_scores_participant_instrument_completed", "participant_id", "instrument_id",
              "completed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    run_id: Mapped[int] = mapped_column(ForeignKey("flow_runs.id"))
    instrument_id: Mapped[str] = mapped_column(String(24))
    version: Mapped[str] = mapped_column(String(20))  # the content file's version that was asked
    local_date: Mapped[date | None]
    total: Mapped[int] = mapped_column(Integer)
    band: Mapped[str] = mapped_column(String(40))  # the band's id ("moderate"), not its words
    # The safety level the answers reached (a safety item above 0: urgent) and the triggers' ids.
    level: Mapped[int] = mapped_column(Integer, default=0)
    reasons: Mapped[str] = mapped_column(String(300), default="")
    completed_at: Mapped[datetime]
