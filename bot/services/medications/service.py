"""Medication reminders as use cases: /meds, the reminder's sender, its buttons, missed doses.

- A reminder (`MedicationReminder`) belongs to one participant: an optional name (free text,
  encrypted at rest, never logged, never told to staff), local times and weekdays. Its doses are
  `med_reminder` rows planned by planner.py; pausing or removing it cancels the pending ones.
- `send_reminder` (the sender of those rows) writes a `MedicationDose` when the reminder goes out,
  with Taken / Snooze / Skip buttons; its deadline is `[medications] missed_after_minutes` later.
  Snooze adds a row of its own `snooze_minutes` later and moves the deadline after it.
- `close_missed` (each tick) marks doses past their deadline as missed. When a reminder's latest
  doses are `notify_after_missed` missed in a row and the participant agreed, the assigned
  clinician gets one `staff_notice` for that run: the alias and the count, nothing else.
- Only an active participant gets reminders: /pause, /stop and discharge cancel the rows
  (bot/services/enrollment.py cancel_future_actions) and the replanner brings them back on /resume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.medication_models import (
    MED_REMINDER,
    DoseStatus,
    MedicationConsent,
    MedicationDose,
    MedicationReminder,
)
from bot.db.models import ActionStatus, Participant, ScheduledAction
from bot.messaging import Messenger, Replies
from bot.services.medications import views
from bot.services.medications.planner import MedicationPlanner
from bot.services.medications.schedule import (
    days_from_text,
    days_to_text,
    missed_run,
    snooze_key,
    times_from_text,
)
from bot.services.scheduling.outbox import Delivered, Skip
from bot.services.scheduling.rows import enqueue

log = logging.getLogger(__name__)

MAX_REMINDERS = 10
MISSED_NOTICE = "missed_doses"
RUN_LOOKBACK = 200  # doses read to find where a run of misses began
CLOSE_BATCH = 500


# --- reading --------------------------------------------------------------------------------------

async def reminders_of(session: AsyncSession, participant_id: int) -> list[MedicationReminder]:
    """The participant's reminders that are not removed, oldest first (their number in /meds)."""
    return list((await session.scalars(
        select(MedicationReminder).where(MedicationReminder.participant_id == participant_id,
                                         MedicationReminder.removed_at.is_(None))
        .order_by(MedicationReminder.id))).all())


async def consent_of(session: AsyncSession, participant_id: int) -> MedicationConsent | None:
    return await session.scalar(select(MedicationConsent).where(MedicationConsent.participant_id == participant_id))


def notify_after(ctx: AppContext, consent: MedicationConsent | None) -> int:
    """Missed doses in a row before the clinician is told; 0: never (no consent, or the program
    turned it off). Never fewer than the participant was asked about when they agreed."""
    every = ctx.settings.medications.notify_after_missed
    if every <= 0 or consent is None or not consent.agreed or consent.revoked_at is not None:
        return 0
    return max(every, consent.after_missed)


# --- /meds: changing reminders and consent ----------------------------------------------------------

async def add_reminder(ctx: AppContext, session: AsyncSession, participant: Participant, name: str | None,
                       times: list[str], days: set[int]) -> MedicationReminder:
    """A new reminder, planned at once (its first dose may be today)."""
    now = ctx.clock.now()
    reminder = MedicationReminder(participant_id=participant.id, name=name, times=",".join(sorted(times)),
                                  days=days_to_text(days), created_at=now)
    session.add(reminder)
    await session.flush()
    log.info("participant %s added medication reminder %s", participant.id, reminder.id)
    await ctx.parts.get(MedicationPlanner).replan_participant(session, participant, now)
    return reminder


async def _cancel_rows(session: AsyncSession, reminder_id: int, why: str) -> None:
    await session.execute(
        update(ScheduledAction)
        .where(ScheduledAction.kind == MED_REMINDER, ScheduledAction.status == ActionStatus.PENDING,
               ScheduledAction.key.like(f"med:{reminder_id}:%"))
        .values(status=ActionStatus.CANCELLED, last_error=why)
        .execution_options(synchronize_session=False))


async def pause_reminder(ctx: AppContext, session: AsyncSession, reminder: MedicationReminder) -> None:
    reminder.paused_at = ctx.clock.now()
    await _cancel_rows(session, reminder.id, "reminder paused")


async def resume_reminder(ctx: AppContext, session: AsyncSession, participant: Participant,
                          reminder: MedicationReminder) -> None:
    reminder.paused_at = None
    await ctx.parts.get(MedicationPlanner).replan_participant(session, participant, ctx.clock.now())


async def remove_reminder(ctx: AppContext, session: AsyncSession, reminder: MedicationReminder) -> None:
    """Removed from /meds; its doses stay (the adherence of the past does not change)."""
    reminder.removed_at = ctx.clock.now()
    await _cancel_rows(session, reminder.id, "reminder removed")


async def set_consent(ctx: AppContext, session: AsyncSession, participant: Participant, agreed: bool) -> None:
    """The participant's answer about telling their care team, with its time. A "no" after a "yes"
    is a revocation: kept as the time it was revoked."""
    now = ctx.clock.now()
    consent = await consent_of(session, participant.id)
    if consent is None:
        consent = MedicationConsent(participant_id=participant.id, agreed=False, decided_at=now,
                                    after_missed=ctx.settings.medications.notify_after_missed)
        session.add(consent)
    if agreed:
        consent.agreed, consent.decided_at, consent.revoked_at = True, now, None
        consent.after_missed = ctx.settings.medications.notify_after_missed
    elif consent.agreed:
        consent.agreed, consent.revoked_at = False, now
    log.info("participant %s %s medication notices to the care team", participant.id,
             "agreed to" if agreed else "declined")


# --- the reminder and its buttons -------------------------------------------------------------------

def _local_time(moment: datetime, timezone: str) -> str:
    try:
        return moment.astimezone(ZoneInfo(timezone)).strftime("%H:%M")
    except (KeyError, ValueError):
        return moment.strftime("%H:%M")


async def send_reminder(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                        row: ScheduledAction) -> Delivered:
    """ActionSender for `med_reminder` rows: a planned dose (writes its `MedicationDose`) or a snooze."""
    participant = await session.get(Participant, row.participant_id) if row.participant_id else None
    if participant is None or participant.chat_id is None or not participant.receives_messages:
        raise Skip("participant not active")
    if not ctx.settings.medications.enabled:
        raise Skip("medication reminders are turned off")
    now = ctx.clock.now()
    window = timedelta(minutes=ctx.settings.medications.missed_after_minutes)
    dose_id = row.payload.get("dose_id")
    if dose_id is not None:  # a snooze
        dose = await session.get(MedicationDose, int(dose_id))
        if dose is None or dose.status != DoseStatus.PENDING:
            raise Skip("dose answered or missed before the snooze ran out")
        reminder = await session.get(MedicationReminder, dose.reminder_id)
        if reminder is None or reminder.removed_at is not None or reminder.paused_at is not None:
            raise Skip("reminder paused or removed")
        dose.deadline_at = max(dose.deadline_at, now + window)
        text, kb = views.reminder_message(ctx, participant.locale, reminder.name, dose.local_time, dose.id,
                                          again=True)
    else:
        reminder = await session.get(MedicationReminder, int(row.payload["reminder_id"]))
        if reminder is None or reminder.removed_at is not None or reminder.paused_at is not None:
            raise Skip("reminder paused or removed")
        at = str(row.payload["time"])
        if at not in times_from_text(reminder.times):
            raise Skip("time no longer in the reminder")
        day = datetime.fromisoformat(str(row.payload["date"])).date()
        if day.weekday() not in days_from_text(reminder.days):
            raise Skip("day no longer in the reminder")
        exists = await session.scalar(select(MedicationDose.id).where(
            MedicationDose.reminder_id == reminder.id, MedicationDose.local_date == day,
            MedicationDose.local_time == at))
        if exists is not None:
            raise Skip("this dose was sent already")
        dose = MedicationDose(reminder_id=reminder.id, participant_id=participant.id, local_date=day,
                              local_time=at, due_at=row.intended_at, sent_at=now, status=DoseStatus.PENDING,
                              deadline_at=max(row.intended_at, now) + window, snoozes=0)
        session.add(dose)
        await session.flush()
        text, kb = views.reminder_message(ctx, participant.locale, reminder.name, at, dose.id)
    replies = Replies()
    replies.text(participant.chat_id, text, kb)
    sent = await replies.deliver(messenger)
    return Delivered(participant.chat_id, sent.message_id if sent else None)


class Answer:
    TAKEN = "t"
    SNOOZE = "z"
    SKIP = "s"


@dataclass(frozen=True)
class Answered:
    """What became of a button press: the text that replaces the reminder's, or a toast."""

    text: str | None = None
    notice: str | None = None


async def answer_dose(ctx: AppContext, session: AsyncSession, participant: Participant, dose_id: int,
                      answer: str) -> Answered:
    """Taken, Snooze or Skip on a reminder. A dose marked missed can still be answered Taken or
    Skip (the participant's own account counts); it cannot be snoozed any more."""
    locale = participant.locale
    dose = await session.get(MedicationDose, dose_id)
    if dose is None or dose.participant_id != participant.id:
        return Answered(notice=ctx.t("common.button_expired", locale))
    if dose.status in (DoseStatus.TAKEN, DoseStatus.SKIPPED):
        return Answered(notice=ctx.t("meds.remind.already", locale))
    now = ctx.clock.now()
    if answer == Answer.SNOOZE:
        if dose.status != DoseStatus.PENDING:
            return Answered(notice=ctx.t("meds.remind.passed", locale))
        minutes = ctx.settings.medications.snooze_minutes
        again = now + timedelta(minutes=minutes)
        dose.snoozes += 1
        window = timedelta(minutes=ctx.settings.medications.missed_after_minutes)
        dose.deadline_at = max(dose.deadline_at, again + window)
        await enqueue(session, kind=MED_REMINDER, key=snooze_key(dose.id, dose.snoozes), due_at=again,
                      participant_id=participant.id, payload={"dose_id": dose.id, "reminder_id": dose.reminder_id},
                      now=now)
        return Answered(text=ctx.t("meds.remind.was_snoozed", locale, time=_local_time(again, participant.timezone)))
    dose.status = DoseStatus.TAKEN if answer == Answer.TAKEN else DoseStatus.SKIPPED
    dose.answered_at = now
    # A snooze still waiting is no longer wanted.
    await session.execute(
        update(ScheduledAction)
        .where(ScheduledAction.kind == MED_REMINDER, ScheduledAction.status == ActionStatus.PENDING,
               ScheduledAction.key.like(f"med:snooze:{dose.id}:%"))
        .values(status=ActionStatus.CANCELLED, last_error="dose answered")
        .execution_options(synchronize_session=False))
    key = "meds.remind.was_taken" if answer == Answer.TAKEN else "meds.remind.was_skipped"
    return Answered(text=ctx.t(key, locale))


# --- missed doses -----------------------------------------------------------------------------------

async def close_missed(ctx: AppContext, now: datetime) -> int:
    """Mark doses past their deadline as missed; tell clinicians where a run reached the number the
    participant agreed to. Returns how many notices were queued."""
    queued = 0
    while True:
        async with ctx.sessionmaker() as session:
            doses = (await session.scalars(
                select(MedicationDose).where(MedicationDose.status == DoseStatus.PENDING,
                                             MedicationDose.deadline_at <= now)
                .order_by(MedicationDose.deadline_at).limit(CLOSE_BATCH).with_for_update(skip_locked=True))).all()
            if not doses:
                break
            for dose in doses:
                dose.status = DoseStatus.MISSED
            await session.flush()
            for reminder_id, participant_id in sorted({(d.reminder_id, d.participant_id) for d in doses}):
                queued += await notify_if_missed_run(ctx, session, participant_id, reminder_id, now)
            await session.commit()
        if len(doses) < CLOSE_BATCH:
            break
    if queued:
        ctx.wake_outbox()
    return queued


async def notify_if_missed_run(ctx: AppContext, session: AsyncSession, participant_id: int, reminder_id: int,
                               now: datetime) -> int:
    """One `staff_notice` per run of missed doses of one reminder that reached the agreed number,
    only with the participant's consent and while they are active. Returns 1 if one was queued."""
    every = notify_after(ctx, await consent_of(session, participant_id))
    if every <= 0:
        return 0
    participant = await session.get(Participant, participant_id)
    if participant is None or not participant.receives_messages:
        return 0
    latest = (await session.execute(
        select(MedicationDose.id, MedicationDose.status)
        .where(MedicationDose.reminder_id == reminder_id, MedicationDose.status != DoseStatus.PENDING)
        .order_by(MedicationDose.due_at.desc(), MedicationDose.id.desc()).limit(RUN_LOOKBACK))).all()
    run = missed_run([status for _, status in latest])
    if run < every:
        return 0
    first_of_run = latest[run - 1].id  # one notice per run, however many ticks see it
    added = await enqueue(session, kind="staff_notice", key=f"{MISSED_NOTICE}:{reminder_id}:{first_of_run}",
                          due_at=now, participant_id=participant_id, staff_id=participant.therapist_id,
                          payload={"notice": MISSED_NOTICE, "count": every}, now=now)
    if added:
        log.info("participant %s: %s missed medication reminders in a row; clinician notified", participant_id, run)
    return int(added)

