"""Session reminders and calendar messages: what participants and staff are sent, and the planner.

- `session_reminder` rows (planned by occurrences.py) become "Your group session starts
  at 3:00 PM." in the participant's zone and language, with a Join URL button and a Can't attend
  button. Minimum necessary: the kind of session (group, individual, family), never its title.
- `session_update` rows tell participants that an occurrence was cancelled or moved.
- `attendance_notice` rows tell the facilitator and the assigned clinician that a participant
  can't attend (or can after all). They are rendered when sent, from the attendance record, so
  the typed reason never sits unencrypted in the outbox; it is quoted only when
  `[privacy] quote_in_alerts` is on.

`install_calendar(ctx, worker)` wires the senders and the planning step into the scheduler.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.calendar_models import AttendanceStatus, SessionOccurrence
from bot.db.models import Participant, ScheduledAction, Staff
from bot.messaging import Keyboard, Messenger, keyboard, link_row, say
from bot.services.audit import disclose
from bot.services.calendar import occurrences as cal
from bot.services.calendar.attendance import answer_of
from bot.services.scheduling.outbox import ActionSender, Delivered, OutboxWorker, Skip
from bot.services.scheduling.rows import OneTransactionPlanner

log = logging.getLogger(__name__)


# --- words for times, in the reader's language -------------------------------------------------------

def time_text(ctx: AppContext, when: datetime, tz: str, locale: str) -> str:
    """'3:00 PM' (English) or '15:00' (Spanish), in zone `tz`; the clock style comes from ui.toml."""
    local = when.astimezone(ZoneInfo(tz))
    if ctx.t("calendar.clock", locale).strip() == "24h":
        return f"{local:%H:%M}"
    ampm = ctx.t("calendar.am" if local.hour < 12 else "calendar.pm", locale)
    return f"{(local.hour % 12) or 12}:{local:%M} {ampm}"


def day_text(ctx: AppContext, when: datetime, tz: str, locale: str) -> str:
    return date_text(ctx, when.astimezone(ZoneInfo(tz)).date(), locale)


def date_text(ctx: AppContext, day: date, locale: str) -> str:
    """'Mon, Mar 2' (English) or 'lun 2 mar' (Spanish): the day style comes from ui.toml."""
    weekday = ctx.t("calendar.weekdays", locale).split()[day.weekday()]
    month = ctx.t("calendar.months", locale).split()[day.month - 1]
    return ctx.t("calendar.day", locale, weekday=weekday, month=month, day=day.day)


def kind_text(ctx: AppContext, kind: str, locale: str) -> str:
    key = f"sessions.kind_{kind}"
    return ctx.t(key, locale) if ctx.texts.has(key) else ctx.t("sessions.kind_group", locale)


def staff_when(ctx: AppContext, occ: SessionOccurrence, locale: str, start: datetime | None = None) -> str:
    """For staff (who have no zone of their own): the host's time with its abbreviation."""
    start = start or occ.start_at
    tz = occ.session.timezone
    return (f"{day_text(ctx, start, tz, locale)}, {time_text(ctx, start, tz, locale)} "
            f"{start.astimezone(ZoneInfo(tz)).tzname()}")


class Reader(Protocol):
    """Whoever a reminder is for: a participant, or a participant's support person (family
    sessions, bot/services/support/reminders.py)."""

    timezone: str
    locale: str


def reminder_text(ctx: AppContext, participant: Reader, occ: SessionOccurrence, now: datetime) -> str:
    tz, locale = participant.timezone, participant.locale
    values = dict(kind=kind_text(ctx, occ.session.kind, locale), time=time_text(ctx, occ.start_at, tz, locale))
    start_day = occ.start_at.astimezone(ZoneInfo(tz)).date()
    today = now.astimezone(ZoneInfo(tz)).date()
    if start_day == today:
        return ctx.t("sessions.reminder_today", locale, **values)
    if start_day == today + timedelta(days=1):
        return ctx.t("sessions.reminder_tomorrow", locale, **values)
    return ctx.t("sessions.reminder_later", locale, day=day_text(ctx, occ.start_at, tz, locale), **values)


def session_keyboard(ctx: AppContext, occ: SessionOccurrence, locale: str, *,
                     cant_attend: bool = True) -> Keyboard:
    join = link_row(ctx.t("sessions.join", locale), occ.session.video_link)
    if not cant_attend:
        return join
    return join + keyboard([[(ctx.t("sessions.cant_attend", locale), f"att:no:{occ.id}")]])


# --- senders ---------------------------------------------------------------------------------------

async def _participant_and_occurrence(session: AsyncSession,
                                      row: ScheduledAction) -> tuple[Participant, SessionOccurrence]:
    participant = await session.get(Participant, row.participant_id) if row.participant_id else None
    if participant is None or not participant.receives_messages or participant.chat_id is None:
        raise Skip("participant paused, stopped or unreachable")
    occ = await session.get(SessionOccurrence, int(row.payload.get("occurrence_id", 0)))
    if occ is None:
        raise Skip("occurrence no longer exists")
    return participant, occ


async def send_session_reminder(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                                row: ScheduledAction) -> Delivered:
    """ActionSender for `session_reminder` rows."""
    participant, occ = await _participant_and_occurrence(session, row)
    now = ctx.clock.now()
    if occ.is_cancelled:
        raise Skip("session cancelled")
    if occ.start_at <= now:
        raise Skip("session already started")
    if not await cal.is_for(session, occ, participant.id):
        raise Skip("participant no longer expected at this session")
    answer = await answer_of(session, participant.id, occ.id)
    if answer is not None and answer.status == AttendanceStatus.CANT_ATTEND:
        raise Skip("participant said they can't attend")
    message = await say(messenger, participant.chat_id or 0, reminder_text(ctx, participant, occ, now),
                        session_keyboard(ctx, occ, participant.locale))
    return Delivered(participant.chat_id, message.message_id)


async def send_session_update(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                              row: ScheduledAction) -> Delivered:
    """ActionSender for `session_update` rows: an occurrence was cancelled or moved."""
    participant, occ = await _participant_and_occurrence(session, row)
    tz, locale = participant.timezone, participant.locale
    kind = kind_text(ctx, occ.session.kind, locale)
    change = row.payload.get("change")
    if change == "cancelled":
        if not occ.is_cancelled:
            raise Skip("the session is no longer cancelled")
        text = ctx.t("sessions.cancelled", locale, kind=kind, day=day_text(ctx, occ.start_at, tz, locale),
                     time=time_text(ctx, occ.start_at, tz, locale))
        buttons = None
    elif change == "moved":
        old = datetime.fromisoformat(str(row.payload["from_start"]))
        if occ.is_cancelled or occ.start_at == old:
            raise Skip("moved again or cancelled since")
        text = ctx.t("sessions.moved", locale, kind=kind, old_day=day_text(ctx, old, tz, locale),
                     old_time=time_text(ctx, old, tz, locale), day=day_text(ctx, occ.start_at, tz, locale),
                     time=time_text(ctx, occ.start_at, tz, locale))
        buttons = session_keyboard(ctx, occ, locale)
    else:
        raise Skip(f"unknown change {change!r}")
    message = await say(messenger, participant.chat_id or 0, text, buttons)
    return Delivered(participant.chat_id, message.message_id)


async def send_attendance_notice(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                                 row: ScheduledAction) -> Delivered:
    """ActionSender for `attendance_notice` rows, to the facilitator or the assigned clinician."""
    staff = await session.get(Staff, row.staff_id) if row.staff_id else None
    participant = await session.get(Participant, row.participant_id) if row.participant_id else None
    occ = await session.get(SessionOccurrence, int(row.payload.get("occurrence_id", 0)))
    if staff is None or staff.chat_id is None or not staff.active or participant is None or occ is None:
        raise Skip("no staff chat to notify, or the session is gone")
    answer = await answer_of(session, participant.id, occ.id)
    event = row.payload.get("event")
    locale = staff.locale
    values: dict[str, Any] = dict(alias=participant.alias, kind=kind_text(ctx, occ.session.kind, locale),
                                  when=staff_when(ctx, occ, locale), session_id=occ.session_id)
    if event == "cant_attend":
        if answer is None or answer.status != AttendanceStatus.CANT_ATTEND:
            raise Skip("the participant can attend after all")
        if occ.is_cancelled:
            raise Skip("session cancelled")
        reason = (ctx.t(f"sessions.reason_{answer.reason}", locale) if answer.reason
                  else ctx.t("notice.cant_attend_no_reason", locale))
        text = ctx.t("notice.cant_attend", locale, reason=reason, **values)
        if answer.note:
            text += "\n" + (ctx.t("notice.cant_attend_quote", locale, note=answer.note)
                            if ctx.settings.privacy.quote_in_alerts else ctx.t("notice.cant_attend_has_note", locale))
    elif event == "attending":
        if answer is None or answer.status != AttendanceStatus.ATTENDING:
            raise Skip("the participant said again they can't attend")
        text = ctx.t("notice.attending_again", locale, **values)
    else:
        raise Skip(f"unknown event {event!r}")
    message = await say(messenger, staff.chat_id, text)
    disclose(session, ctx.clock.now(), participant.id, f"staff:{staff.id}", "notice", f"attendance:{occ.id}")
    return Delivered(staff.chat_id, message.message_id)


CALENDAR_SENDERS: dict[str, ActionSender] = {
    cal.REMINDER_KIND: send_session_reminder,
    cal.UPDATE_KIND: send_session_update,
    cal.ATTENDANCE_NOTICE_KIND: send_attendance_notice,
}


# --- planning from the scheduler tick ---------------------------------------------------------------

class CalendarPlanner(OneTransactionPlanner):
    """Materializes occurrences and reconciles reminder rows, every `[schedule] plan_interval_minutes`
    from the tick (changes made through the bot or the CLI are planned in their own transaction)."""

    what = "session reminder changes"

    async def plan_in(self, session: AsyncSession, now: datetime) -> int:
        result = await cal.plan_reminders(session, self.ctx.settings, now)
        if result.added or result.cancelled or result.retimed or result.revived:
            log.info("session reminders: %s added, %s re-timed, %s cancelled, %s revived",
                     result.added, result.retimed, result.cancelled, result.revived)
        return 0  # logged above, in detail

    async def replan_participant(self, session: AsyncSession, participant: Participant, now: datetime) -> None:
        """In the transaction that changed a participant's zone, quiet hours or status."""
        await session.flush()
        await cal.plan_reminders(session, self.ctx.settings, now, participant_ids=[participant.id])


def install_calendar(ctx: AppContext, worker: OutboxWorker | None = None) -> CalendarPlanner:
    """Wire the session calendar into a running bot (called once from bot.runtime.assemble)."""
    planner = ctx.parts.add(CalendarPlanner(ctx))
    ctx.replanners.append(planner)
    if worker is not None:
        for kind, sender in CALENDAR_SENDERS.items():
            # A late "can't attend" notice is still worth sending, like any staff notice.
            worker.register(kind, sender, never_expire=kind == cal.ATTENDANCE_NOTICE_KIND)
        worker.add_planner("session reminders", planner.tick)
    return planner
