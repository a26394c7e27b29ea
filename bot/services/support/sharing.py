"""The weekly line a participant chose to share with a support person, worked out when it is sent
(so a revocation or a change a minute before is what counts).

Only two facts exist to share, each only when the participant chose it:
- attendance: of the sessions that ended in the last 7 days and that a facilitator marked, how
  many they were at ("attended 3 of 4 sessions"); never which sessions or what kind;
- check-ins: whether they answered a check-in in the last 7 days ("checked in this week"); never
  the answers.
Nothing else about the participant reaches a support person: no answers, messages, scores, alerts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.checkin_models import CheckinAnswer
from bot.db.support_models import SHARE_ATTENDANCE, SHARE_CHECKINS, SupportPerson
from bot.services.caseload import _sessions_between as sessions_in_period  # the count /trends shows
from bot.services.support.service import shares_of

WEEK = timedelta(days=7)


async def checked_in_since(session: AsyncSession, participant_id: int, since: datetime) -> bool:
    return await session.scalar(
        select(CheckinAnswer.id).where(CheckinAnswer.participant_id == participant_id,
                                       CheckinAnswer.answered_at >= since).limit(1)) is not None


async def weekly_update(session: AsyncSession, ctx: AppContext, person: SupportPerson, now: datetime) -> str | None:
    """The update for this week in the support person's language, or None when the participant
    shares nothing (then no update is sent at all)."""
    items = await shares_of(session, person.id)
    if not items:
        return None
    locale, since = person.locale, now - WEEK
    lines = []
    if SHARE_ATTENDANCE in items:
        _held, _cant, present, absent = await sessions_in_period(session, person.participant_id, since, now)
        marked = present + absent
        lines.append(ctx.t("support.update_attended", locale, present=present, marked=marked) if marked
                     else ctx.t("support.update_attended_none", locale))
    if SHARE_CHECKINS in items:
        checked = await checked_in_since(session, person.participant_id, since)
        lines.append(ctx.t("support.update_checked_in" if checked else "support.update_not_checked_in", locale))
    return ctx.t("support.update", locale, lines="\n".join(f"• {line}" for line in lines))
