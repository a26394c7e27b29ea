"""Briefs before sessions: planned as rows, sent by the outbox, each a disclosure.

- Planning (`BriefPlanner.tick`, every `[schedule] plan_interval_minutes` on the bot's clock): for
  every occurrence in the coming `[reminders] plan_ahead_hours`, one `session_brief` row per reader
  due `[brief] minutes_before` the start (now, if that has passed and the session has not begun).
  A group session: one row for its facilitator, a brief of the whole group. An individual or family
  session: one row per participant for the facilitator and for the participant's assigned
  clinician (once, if they are the same person). A moved session moves its pending rows; a
  cancelled one is skipped when due. Keys `brief:<occurrence>:<staff>:<participant|group>` let any
  number of workers plan at once.
- Sending (`send_brief`) reads everything when due, so the brief says what is true an hour before,
  not what was true when it was planned. The text goes first; the participant's chart follows as
  a photo (a chart that fails to send is logged and not retried: the text already arrived). Each
  participant named is a disclosure to that reader (42 CFR Part 2).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.calendar_models import SessionKind, SessionOccurrence
from bot.db.models import ENROLLED, ActionStatus, Participant, ScheduledAction, Staff
from bot.messaging import Keyboard, Messenger, NotDelivered, Photo, keyboard, say
from bot.services.audit import disclose
from bot.services.brief.compose import group_brief, participant_brief
from bot.services.brief.facts import ParticipantFacts, participant_facts, period_start
from bot.services.calendar import occurrences as cal
from bot.services.scheduling.outbox import Delivered, Skip
from bot.services.scheduling.rows import OneTransactionPlanner, enqueue
from bot.services.staff_time import staff_zone

log = logging.getLogger(__name__)

BRIEF = "session_brief"
GROUP = "group"

# Lines other features add to a participant's brief (goals, medication reminders), and the chart.
# Plugged in by bot/services/brief/setup.py (sections.py), so this module depends on none of them.
ExtraLines = Callable[[AppContext, AsyncSession, Participant, datetime, datetime, str], Awaitable[list[str]]]
Chart = Callable[[AppContext, AsyncSession, Participant, datetime, str], Awaitable[tuple[bytes, str]]]


def brief_key(occurrence_id: int, staff_id: int, participant_id: int | None) -> str:
    return f"brief:{occurrence_id}:{staff_id}:{participant_id if participant_id is not None else GROUP}"


class BriefPlanner(OneTransactionPlanner):
    what = "session briefs"

    def enabled(self) -> bool:
        return self.ctx.settings.brief.enabled

    async def plan_in(self, session: AsyncSession, now: datetime) -> int:
        return await plan_briefs(session, self.ctx, now)


async def plan_briefs(session: AsyncSession, ctx: AppContext, now: datetime) -> int:
    """Rows for the briefs of the coming sessions; returns how many were added."""
    before = timedelta(minutes=ctx.settings.brief.minutes_before)
    horizon = now + timedelta(hours=ctx.settings.reminders.plan_ahead_hours)
    occurrences = await cal.upcoming(session, now, horizon)
    audiences = await cal.audience(session, {o.session_id for o in occurrences})
    clinicians = dict((await session.execute(
        select(Participant.id, Participant.therapist_id)
        .where(Participant.id.in_({pid for ids in audiences.values() for pid in ids}),
               Participant.status.in_(ENROLLED)))).all())
    added = 0
    for occ in occurrences:
        due = max(occ.start_at - before, now)
        wanted: list[tuple[int, int | None]] = []  # (reader, participant or None for the group)
        facilitator = occ.session.facilitator_id
        members = sorted(m for m in audiences.get(occ.session_id, ()) if m in clinicians)
        if occ.session.kind == SessionKind.GROUP:
            if facilitator is not None:
                wanted.append((facilitator, None))
        else:
            for member in members:
                readers = dict.fromkeys(x for x in (facilitator, clinicians[member]) if x)  # once each
                wanted += [(reader, member) for reader in readers]
        keys = [brief_key(occ.id, reader, pid) for reader, pid in wanted]
        # A facilitator or clinician changed since the rows were planned: the old reader's brief goes.
        await session.execute(update(ScheduledAction).where(
            ScheduledAction.kind == BRIEF, ScheduledAction.status == ActionStatus.PENDING,
            ScheduledAction.key.like(f"brief:{occ.id}:%"), ScheduledAction.key.not_in(keys))
            .values(status=ActionStatus.CANCELLED, last_error="no longer a reader of this brief"))
        for reader, pid in wanted:
            key = brief_key(occ.id, reader, pid)
            if await enqueue(session, kind=BRIEF, key=key, due_at=due, intended_at=occ.start_at - before,
                             participant_id=pid, staff_id=reader, payload={"occurrence_id": occ.id}, now=now):
                added += 1
            else:  # the session moved: the pending row moves with it
                await session.execute(update(ScheduledAction).where(
                    ScheduledAction.key == key, ScheduledAction.status == ActionStatus.PENDING,
                    ScheduledAction.due_at != due).values(due_at=due, intended_at=occ.start_at - before))
    return added


class BriefSender:
    """The outbox sender of `session_brief` rows, with the sections other features add."""

    def __init__(self, *, extra: Sequence[ExtraLines] = (), group_extra: Sequence[ExtraLines] = (),
                 chart: Chart | None = None) -> None:
        self.extra = list(extra)  # in a participant's own brief
        self.group_extra = list(group_extra)  # under their row in a group's brief
        self.chart = chart

    async def __call__(self, ctx: AppContext, messenger: Messenger, session: AsyncSession,
                       row: ScheduledAction) -> Delivered:
        now = ctx.clock.now()
        staff = await session.get(Staff, row.staff_id) if row.staff_id else None
        if staff is None or staff.chat_id is None or not staff.active or staff.deactivated_at is not None:
            raise Skip("no staff chat to send the brief to")
        occ = await session.get(SessionOccurrence, int(row.payload.get("occurrence_id", 0)))
        if occ is None or occ.is_cancelled:
            raise Skip("session cancelled or gone")
        if now >= occ.start_at + timedelta(minutes=occ.duration_minutes):
            raise Skip("the session is over")
        if not await self._still_reader(session, staff, occ, row.participant_id):
            raise Skip("no longer the facilitator or the participant's clinician")
        locale, zone = staff.locale, staff_zone(ctx, staff)
        since = await period_start(session, occ)
        buttons = attendance_keyboard(ctx, occ, locale)
        if row.participant_id is None:
            members = await self._members(session, occ)
            facts = [await participant_facts(session, p, occ, since, now) for p in members]
            extra = {p.id: await self._extra(self.group_extra, ctx, session, p, since, now, locale) for p in members}
            sent = await self._send_texts(messenger, staff.chat_id, group_brief(ctx, facts, occ, locale, zone, extra),
                                          buttons)
            for p in members:
                disclose(session, now, p.id, f"staff:{staff.id}", "brief", f"occurrence:{occ.id}")
            return sent
        participant = await session.get(Participant, row.participant_id)
        if participant is None or participant.status not in ENROLLED:
            raise Skip("participant no longer in the program")
        if not await cal.is_for(session, occ, participant.id):
            raise Skip("participant no longer expected at this session")
        one: ParticipantFacts = await participant_facts(session, participant, occ, since, now)
        lines = await self._extra(self.extra, ctx, session, participant, since, now, locale)
        sent = await self._send_texts(messenger, staff.chat_id,
                                      participant_brief(ctx, one, occ, locale, zone, lines), buttons)
        disclose(session, now, participant.id, f"staff:{staff.id}", "brief", f"occurrence:{occ.id}")
        if self.chart is not None:
            try:
                png, caption = await self.chart(ctx, session, participant, now, locale)
                # No alias in the file name: it shows in the chat's media list.
                await messenger.send(Photo(staff.chat_id, f"brief-{now:%Y%m%d}.png", png, caption))
                disclose(session, now, participant.id, f"staff:{staff.id}", "chart", f"occurrence:{occ.id}")
            except NotDelivered as exc:
                log.warning("brief chart not delivered (row %s): %s", row.id, exc)
        return sent

    @staticmethod
    async def _still_reader(session: AsyncSession, staff: Staff, occ: SessionOccurrence,
                            participant_id: int | None) -> bool:
        """Read when due: the facilitator now (a group's brief), or also the participant's clinician
        now (a participant's brief). A re-import may have changed either since the row was planned."""
        if occ.session.facilitator_id == staff.id:
            return True
        if participant_id is None:
            return False
        participant = await session.get(Participant, participant_id)
        return participant is not None and participant.therapist_id == staff.id

    async def _members(self, session: AsyncSession, occ: SessionOccurrence) -> list[Participant]:
        ids = (await cal.audience(session, [occ.session_id])).get(occ.session_id, set())
        if not ids:
            return []
        return list((await session.scalars(
            select(Participant).where(Participant.id.in_(ids), Participant.status.in_(ENROLLED))
            .order_by(Participant.alias))).unique().all())

    @staticmethod
    async def _extra(sections: Sequence[ExtraLines], ctx: AppContext, session: AsyncSession,
                     participant: Participant, since: datetime, until: datetime, locale: str) -> list[str]:
        lines: list[str] = []
        for section in sections:
            lines += await section(ctx, session, participant, since, until, locale)
        return lines

    @staticmethod
    async def _send_texts(messenger: Messenger, chat_id: int, texts: Sequence[str], buttons: Keyboard) -> Delivered:
        """The brief's messages in order; the attendance button under the last one."""
        for text in texts[:-1]:
            await say(messenger, chat_id, text)
        message = await say(messenger, chat_id, texts[-1], buttons)
        return Delivered(chat_id, message.message_id)


def attendance_keyboard(ctx: AppContext, occ: SessionOccurrence, locale: str) -> Keyboard:
    return keyboard([[(ctx.t("brief.attendance_button", locale), f"pres:{occ.id}")]])
