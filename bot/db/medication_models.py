"""Tables of a participant's medication reminders and each dose's outcome (migration 0009).

A `MedicationReminder` is one reminder the participant set up in /meds: an optional name of their
own ("morning pill"; free text, encrypted at rest like any), one or more local times, and the
weekdays. A `MedicationDose` is one reminder that went out, with what became of it: taken,
skipped, missed (no answer within `[medications] missed_after_minutes`), or still pending. A
`MedicationConsent` is the participant's answer to "may we tell your care team after N missed in a
row?", with its time; revoking it keeps the row and sets `revoked_at`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base
from bot.db.types import EncryptedText

# The kind of a reminder row (ScheduledAction): the planned time of a dose, or a snooze.
MED_REMINDER = "med_reminder"


class DoseStatus(StrEnum):
    PENDING = "pending"  # sent, no answer yet (within the window)
    TAKEN = "taken"
    SKIPPED = "skipped"
    MISSED = "missed"  # no answer within the window


class MedicationReminder(Base):
    __tablename__ = "medication_reminders"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    # What the participant calls it, if anything. Never logged, never in a notice to staff.
    name: Mapped[str | None] = mapped_column(EncryptedText)
    times: Mapped[str] = mapped_column(String(60))  # local "HH:MM" times, comma-separated, sorted
    days: Mapped[str] = mapped_column(String(20), default="")  # weekday numbers "0,2,4" (Monday 0); "" = every day
    paused_at: Mapped[datetime | None]
    removed_at: Mapped[datetime | None]  # removed in /meds; its doses stay for the adherence figures
    created_at: Mapped[datetime]


class MedicationDose(Base):
    __tablename__ = "medication_doses"
    __table_args__ = (
        UniqueConstraint("reminder_id", "local_date", "local_time"),
        Index("ix_medication_doses_participant_due", "participant_id", "due_at"),
        Index("ix_medication_doses_status_deadline", "status", "deadline_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reminder_id: Mapped[int] = mapped_column(ForeignKey("medication_reminders.id"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    local_date: Mapped[date] = mapped_column(Date)
    local_time: Mapped[str] = mapped_column(String(5))
    due_at: Mapped[datetime]  # the participant's chosen time, in UTC
    sent_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default=DoseStatus.PENDING)
    deadline_at: Mapped[datetime]  # unanswered by then: missed (a snooze moves it)
    snoozes: Mapped[int] = mapped_column(Integer, default=0)
    answered_at: Mapped[datetime | None]


class MedicationConsent(Base):
    __tablename__ = "medication_consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), unique=True)
    agreed: Mapped[bool] = mapped_column(Boolean, default=False)
    # The number of missed doses in a row they were asked about (the setting may change later).
    after_missed: Mapped[int] = mapped_column(Integer)
    decided_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
