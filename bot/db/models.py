"""The database schema. Times are aware UTC; free text is encrypted at rest when a key is set.

Naming follows what a clinician or operator would call things. Every future action (a check-in,
a reminder, an alert step) is a ScheduledAction row: the database is the scheduler and the outbox.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.db.types import EncryptedText, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class StaffRole(StrEnum):
    THERAPIST = "therapist"
    COACH = "coach"
    LEAD = "lead"
    ADMIN = "admin"


class ParticipantStatus(StrEnum):
    INVITED = "invited"  # invite printed, Telegram account not bound yet
    CONSENT_PENDING = "consent_pending"  # bound, has not answered the consent screen
    ONBOARDING = "onboarding"  # consented, choosing time zone and times
    ACTIVE = "active"
    PAUSED = "paused"
    DECLINED = "declined"  # declined consent: nothing stored beyond the refusal
    OPTED_OUT = "opted_out"  # /stop confirmed
    DISCHARGED = "discharged"  # finished the program (`iopbot participant discharge`); the record is kept
    ALUMNI = "alumni"  # discharged, with a short check-in every [discharge] alumni_every_days


# Participants who finished enrollment: they may use the participant commands (alumni too: they
# answer their check-ins, and may pause, stop or export like anyone).
ENROLLED = frozenset({ParticipantStatus.ACTIVE, ParticipantStatus.PAUSED, ParticipantStatus.ALUMNI})


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    alias: Mapped[str] = mapped_column(String(80), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    locale: Mapped[str] = mapped_column(String(10), default="en")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Backup on call for the whole program when a participant has no named backup.
    on_call: Mapped[bool] = mapped_column(Boolean, default=False)
    # IANA zone for the times this person is shown; None: the program's default_timezone.
    timezone: Mapped[str | None] = mapped_column(String(64))
    # Set when Telegram answered 403 to a page (they blocked the bot); cleared when they write again.
    unreachable_at: Mapped[datetime | None]
    # `iopbot staff deactivate`: never paged again, sees nothing; the record (and audit trail) stays.
    deactivated_at: Mapped[datetime | None]
    # "HH:MM" in their zone when the daily digest of their caseload is sent; None: only on /digest.
    digest_at: Mapped[str | None] = mapped_column(String(5))
    created_at: Mapped[datetime]

    @property
    def is_lead(self) -> bool:
        return self.role in (StaffRole.LEAD, StaffRole.ADMIN)


class Participant(Base):
    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(primary_key=True)
    alias: Mapped[str] = mapped_column(String(80), unique=True)
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default=ParticipantStatus.INVITED)
    locale: Mapped[str] = mapped_column(String(10), default="en")
    timezone: Mapped[str] = mapped_column(String(64))
    checkin_time: Mapped[str] = mapped_column(String(5))  # local "HH:MM"
    quiet_start: Mapped[str] = mapped_column(String(5))
    quiet_end: Mapped[str] = mapped_column(String(5))
    therapist_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    backup_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    consent_version: Mapped[str | None] = mapped_column(String(40))
    consent_scope: Mapped[str | None] = mapped_column(Text)
    consented_at: Mapped[datetime | None]
    declined_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    opted_out_at: Mapped[datetime | None]
    discharged_at: Mapped[datetime | None]
    # Set when Telegram answered 403 (the participant blocked the bot); cleared when they write again.
    unreachable_at: Mapped[datetime | None]
    # The program track ([content] tracks) that picks their daily read; None: every snippet.
    track: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]

    therapist: Mapped[Staff] = relationship(foreign_keys=[therapist_id], lazy="joined")
    backup: Mapped[Staff | None] = relationship(foreign_keys=[backup_id], lazy="joined")

    @property
    def receives_messages(self) -> bool:
        return self.status == ParticipantStatus.ACTIVE and self.unreachable_at is None

    @property
    def gets_checkins(self) -> bool:
        """Daily check-ins while in the program; alumni get theirs every few days."""
        return self.status in (ParticipantStatus.ACTIVE, ParticipantStatus.ALUMNI) and self.unreachable_at is None


class Invite(Base):
    """A single-use enrollment link. Only the SHA-256 of the token is stored."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"))
    # What the link grants, fixed when it is issued: a staff link never grants more than this role,
    # whatever the staff record says when the link is opened.
    role: Mapped[str | None] = mapped_column(String(20))
    # The participant's language chosen by the program (`--language`); None: from their Telegram.
    locale: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # `iopbot invite revoke`, or a newer invite for the same person: the link no longer works.
    revoked_at: Mapped[datetime | None]


class ProcessedUpdate(Base):
    """Telegram delivers at least once; an update_id seen here is not handled again."""

    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    received_at: Mapped[datetime] = mapped_column(index=True)


class InboundMessage(Base):
    """A free-text message from a participant, with the safety assessment it got."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime]
    text: Mapped[str | None] = mapped_column(EncryptedText)
    level: Mapped[int] = mapped_column(Integer, default=0)
    categories: Mapped[str] = mapped_column(String(200), default="")
    reasons: Mapped[str] = mapped_column(Text, default="")
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id"))


class EscalationStatus(StrEnum):
    OPEN = "open"  # nobody has acknowledged yet: paging continues
    ACKNOWLEDGED = "acknowledged"  # someone took it; no outcome yet: reminders until one is recorded
    RESOLVED = "resolved"  # a clinician recorded how it ended (`outcome`)


# Not resolved yet: shown in /alerts and /caseload, and a participant's new messages attach to it.
UNRESOLVED = (EscalationStatus.OPEN, EscalationStatus.ACKNOWLEDGED)


class AlertOutcome(StrEnum):
    """How an alert ended, chosen by a clinician with a button."""

    REACHED_SAFE = "reached_safe"
    SAFETY_PLAN = "safety_plan_reviewed"
    EMERGENCY_CARE = "emergency_care"
    COULD_NOT_REACH = "could_not_reach"
    FALSE_ALARM = "false_alarm"
    # Alerts closed before outcomes were recorded (migration 0005) keep what was known then.
    CONTACTED = "contacted"
    NOT_RECORDED = "not_recorded"


class Escalation(Base):
    """A flagged moment and the loop that closes it: who was told, when, who acknowledged, how it ended."""

    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    level: Mapped[int] = mapped_column(Integer)
    categories: Mapped[str] = mapped_column(String(200), default="")
    reasons: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=EscalationStatus.OPEN, index=True)
    source: Mapped[str] = mapped_column(String(40), default="message")  # message | checkin | instrument
    message_received_at: Mapped[datetime]
    crisis_reply_sent_at: Mapped[datetime | None]
    first_alert_sent_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    outcome: Mapped[str | None] = mapped_column(String(30))
    outcome_note: Mapped[str | None] = mapped_column(EncryptedText)  # the clinician's words, optional
    # "Your care team has been told" was queued for the participant (after a page was delivered).
    team_told_at: Mapped[datetime | None]
    # Nobody in the paging chain could be reached (coverage failure); leads and admins were paged.
    nobody_reached_at: Mapped[datetime | None]
    # Pages skipped or failed since the last one delivered: a whole chain of them is a coverage failure.
    unreached_in_a_row: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Messages the participant wrote while it was unresolved; how many a notice has told; when.
    follow_up_count: Mapped[int] = mapped_column(Integer, default=0)
    follow_up_notified: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    follow_up_notice_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    participant: Mapped[Participant] = relationship(lazy="joined")


class EscalationEvent(Base):
    """One step of an alert, with its time: paged, skipped (why), acknowledged, resolved, reminded…
    Codes and ids only, never text."""

    __tablename__ = "escalation_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    escalation_id: Mapped[int] = mapped_column(ForeignKey("escalations.id"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(40))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    detail: Mapped[str] = mapped_column(String(200), default="")


class ActionStatus(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"  # a worker holds the lease until lease_until
    SENT = "sent"  # Telegram answered 200
    ANSWERED = "answered"  # the participant responded (check-ins)
    FAILED = "failed"  # gave up: last_error says why
    EXPIRED = "expired"  # due while the bot was down for longer than the grace period
    CANCELLED = "cancelled"  # no longer wanted (acknowledged alert, paused participant, moved session)


class ScheduledAction(Base):
    """One future action: a row with a due time and a unique key. The database is the scheduler."""

    __tablename__ = "scheduled_actions"
    __table_args__ = (Index("ix_scheduled_actions_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    due_at: Mapped[datetime]
    intended_at: Mapped[datetime]  # when it was meant to happen before quiet hours or jitter moved it
    status: Mapped[str] = mapped_column(String(20), default=ActionStatus.PENDING)
    lease_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(40))  # the worker's claim token
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"), index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    sent_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime]


class ParticipantEvent(Base):
    """Something the care team should know that is not a message: blocked bot, missed check-ins…"""

    __tablename__ = "participant_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime]
    detail: Mapped[str] = mapped_column(String(300), default="")  # ids and codes only, never text


class DeliveryFailure(Base):
    """A message Telegram finally refused or we could not deliver: nothing is lost silently."""

    __tablename__ = "delivery_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(60))
    reason: Mapped[str] = mapped_column(String(300))


class AuditEntry(Base):
    """Every staff view and every refused request, for the program's audit."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(80))  # "staff:3", "participant:7", "telegram:123"
    action: Mapped[str] = mapped_column(String(80))
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"))
    allowed: Mapped[bool] = mapped_column(Boolean, default=True)


class Disclosure(Base):
    """42 CFR Part 2: each alert, digest and export is a disclosure with a recipient and a time."""

    __tablename__ = "disclosures"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    recipient: Mapped[str] = mapped_column(String(80))  # "staff:3" or "participant:7"
    kind: Mapped[str] = mapped_column(String(40))  # alert | digest | export
    reference: Mapped[str] = mapped_column(String(80), default="")


class DialogState(Base):
    """aiogram's FSM state and data, so a half-finished dialog survives a restart."""

    __tablename__ = "dialog_states"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(200))
    # JSON text; encrypted at rest like any free text, since half-finished answers live here.
    data: Mapped[str] = mapped_column(EncryptedText, default="{}")


class ProgramState(Base):
    """Facts about this installation that every process must agree on, e.g. the fingerprint of the
    key free text is encrypted with (never the key itself)."""

    __tablename__ = "program_state"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]
