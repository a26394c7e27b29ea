"""The program's session calendar: sessions, their occurrences, groups, and attendance.

A ProgramSession is what the operator imports (title, kind, first start, weekly rule, host time
zone, video link, facilitator). Its occurrences are materialized a few days ahead as
SessionOccurrence rows, keyed by the time the rule gives them (`original_start`, like iCalendar's
RECURRENCE-ID), so a single occurrence can be cancelled or moved and attendance and reminders
have a stable row to point at.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db.models import Base, Participant, Staff
from bot.db.types import EncryptedText


class SessionKind(StrEnum):
    GROUP = "group"
    INDIVIDUAL = "individual"
    FAMILY = "family"


class AttendanceStatus(StrEnum):
    ATTENDING = "attending"
    CANT_ATTEND = "cant_attend"


class ParticipantGroup(Base):
    """A named set of participants a group session is for (e.g. "Tue/Thu evening")."""

    __tablename__ = "participant_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    created_at: Mapped[datetime]


class GroupMembership(Base):
    __tablename__ = "group_memberships"
    __table_args__ = (UniqueConstraint("group_id", "participant_id", name="uq_group_memberships_member"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("participant_groups.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    joined_at: Mapped[datetime]

    participant: Mapped[Participant] = relationship(lazy="joined")


class ProgramSession(Base):
    """A (usually weekly) program session. Times follow the host zone's wall clock across DST."""

    __tablename__ = "program_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Where the session came from: the iCalendar UID, or a key derived from the CSV row. A
    # re-import with the same uid updates the session instead of adding a second one.
    uid: Mapped[str] = mapped_column(String(255), unique=True)
    title: Mapped[str] = mapped_column(String(200))  # for staff; never shown to participants
    kind: Mapped[str] = mapped_column(String(20))
    first_start: Mapped[datetime]  # the first occurrence (DTSTART), aware UTC
    duration_minutes: Mapped[int] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64))  # the host's IANA zone: the rule repeats in it
    rrule: Mapped[str | None] = mapped_column(Text)  # weekly RRULE text, None for a one-off session
    # Local wall times ("YYYY-MM-DDTHH:MM") the rule skips (iCalendar EXDATE).
    exdates: Mapped[list[str]] = mapped_column(JSON, default=list)
    video_link: Mapped[str] = mapped_column(String(500))
    facilitator_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("participant_groups.id"), index=True)
    cancelled_at: Mapped[datetime | None]  # the whole series is cancelled
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    facilitator: Mapped[Staff | None] = relationship(lazy="joined")
    group: Mapped[ParticipantGroup | None] = relationship(lazy="joined")


class SessionAttendee(Base):
    """A participant an individual or family session is for (group sessions use the group)."""

    __tablename__ = "session_attendees"
    __table_args__ = (UniqueConstraint("session_id", "participant_id", name="uq_session_attendees_attendee"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("program_sessions.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)


class SessionOccurrence(Base):
    """One meeting of a session. Cancelled or moved here; reminders and attendance point at it."""

    __tablename__ = "session_occurrences"
    __table_args__ = (
        UniqueConstraint("session_id", "original_start", name="uq_session_occurrences_slot"),
        Index("ix_session_occurrences_start_at", "start_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("program_sessions.id", ondelete="CASCADE"), index=True)
    original_start: Mapped[datetime]  # where the rule puts it (the iCalendar RECURRENCE-ID)
    start_at: Mapped[datetime]  # where it actually is (differs when moved)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    cancelled_at: Mapped[datetime | None]
    moved_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    session: Mapped[ProgramSession] = relationship(lazy="joined")

    @property
    def is_cancelled(self) -> bool:
        return self.cancelled_at is not None or self.session.cancelled_at is not None


class Attendance(Base):
    """A participant's answer about one occurrence. The reason is free text: encrypted at rest."""

    __tablename__ = "attendance"
    __table_args__ = (UniqueConstraint("participant_id", "occurrence_id", name="uq_attendance_answer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("session_occurrences.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(EncryptedText)  # sick | work | family | transport | other
    note: Mapped[str | None] = mapped_column(EncryptedText)  # what they typed, if anything
    responded_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    occurrence: Mapped[SessionOccurrence] = relationship(lazy="joined")



class SessionPresence(Base):
    """Whether a participant was at an occurrence, as the facilitator (or a clinician) marked it.

    Kept apart from `Attendance`, which is what the participant said beforehand: "said they'd come"
    and "was there" are different facts, and "sessions attended" counts only this one.
    """

    __tablename__ = "session_presence"
    __table_args__ = (UniqueConstraint("occurrence_id", "participant_id", name="uq_session_presence_mark"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("session_occurrences.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    present: Mapped[bool] = mapped_column(Boolean)
    marked_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    marked_at: Mapped[datetime]
