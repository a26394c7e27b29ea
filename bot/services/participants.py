"""Looking people up, and a participant's own data export (/mydata)."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    Escalation,
    InboundMessage,
    Participant,
    ParticipantEvent,
    ScheduledAction,
    Staff,
)
from bot.services.audit import disclose
from bot.services.calendar.attendance import attendance_export
from bot.services.checkins.service import answers_for_export
from bot.services.escalation.kinds import SUPPORT_SOURCE
from bot.services.goals.service import goals_for_export
from bot.services.instruments.service import scores_for_export
from bot.services.learning.shelf import content_export
from bot.services.medications.summary import export_rows as medications_for_export
from bot.services.outreach.export import outreach_for_export


async def find_actor(session: AsyncSession, telegram_user_id: int) -> Staff | Participant | None:
    """Who is writing: a staff member, a participant, or nobody we know."""
    staff = await session.scalar(
        select(Staff).where(Staff.telegram_user_id == telegram_user_id, Staff.active.is_(True))
    )
    if staff is not None:
        return staff
    return await session.scalar(select(Participant).where(Participant.telegram_user_id == telegram_user_id))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def export_own_data(session: AsyncSession, participant: Participant, now: datetime) -> bytes:
    """Everything stored about this participant, as JSON. Recorded as a disclosure to themselves.

    Not in it: what their support persons wrote and the alerts it opened (those are the support
    person's, paged to the care team under the participant's record; never shown to the participant)."""
    theirs = Escalation.source.not_like(f"{SUPPORT_SOURCE}%")
    supporters_alerts = select(Escalation.id).where(Escalation.participant_id == participant.id, ~theirs)
    messages = (
        await session.scalars(
            select(InboundMessage).where(InboundMessage.participant_id == participant.id).order_by(InboundMessage.id)
        )
    ).all()
    escalations = (
        await session.scalars(select(Escalation).where(Escalation.participant_id == participant.id, theirs))
    ).all()
    events = (
        await session.scalars(select(ParticipantEvent).where(ParticipantEvent.participant_id == participant.id))
    ).all()
    actions = (
        await session.scalars(
            select(ScheduledAction).where(
                ScheduledAction.participant_id == participant.id, ScheduledAction.staff_id.is_(None),
                or_(ScheduledAction.escalation_id.is_(None), ScheduledAction.escalation_id.not_in(supporters_alerts)),
            )
        )
    ).all()
    data = {
        "exported_at": now.isoformat(),
        "alias": participant.alias,
        "status": participant.status,
        "settings": {
            "language": participant.locale,
            "time_zone": participant.timezone,
            "checkin_time": participant.checkin_time,
            "quiet_hours": [participant.quiet_start, participant.quiet_end],
        },
        "consent": {
            "version": participant.consent_version,
            "scope": participant.consent_scope,
            "given_at": _iso(participant.consented_at),
        },
        "messages": [{"received_at": _iso(m.received_at), "text": m.text} for m in messages],
        "safety_flags": [
            {"at": _iso(e.message_received_at), "level": e.level, "status": e.status} for e in escalations
        ],
        "events": [{"kind": e.kind, "at": _iso(e.at)} for e in events],
        "attendance": await attendance_export(session, participant.id),
        "checkins": await answers_for_export(session, participant.id),
        "questionnaires": await scores_for_export(session, participant.id),  # PHQ-9, GAD-7: totals and bands
        "content": await content_export(session, participant.id),  # reads, exercise answers
        "goals": await goals_for_export(session, participant.id),  # with their weekly ratings
        "medications": await medications_for_export(session, participant.id),  # reminders and doses
        "care_team_messages": await outreach_for_export(session, participant.id),  # and their replies
        "scheduled": [
            {"kind": a.kind, "intended_at": _iso(a.intended_at), "status": a.status, "sent_at": _iso(a.sent_at),
             "answered_at": _iso(a.answered_at)}
            for a in actions
        ],
    }
    disclose(session, now, participant.id, f"participant:{participant.id}", "export")
    return json.dumps(data, indent=2, ensure_ascii=False).encode()
