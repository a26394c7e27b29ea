"""Daily check-ins: sending them, taking the answers, nudging, and noticing silence.

- The `checkin` row of a local date (key `checkin:<participant>:<YYYY-MM-DD>`, planned by
  bot/services/checkins/planner.py) is sent by `send_checkin`: it opens a FlowRun and sends the
  first question. The row records intended, sent and answered times; it becomes `answered`
  when the check-in is completed (also when it was done early with /checkin).
- Every answer is stored per question id (`CheckinAnswer`) and the answers so far are assessed
  for structured triggers (the safety question, mood and craving thresholds, a run of low
  moods); urgent or higher sends the crisis reply and pages the clinician at once.
- Unanswered after `[checkin] nudge_after_hours`: one gentle nudge (its own row, cancelled when
  the check-in is answered). Unfinished after `expire_hours`: the run expires and counts as
  missed; after `notify_after_misses` misses in a row the assigned clinician gets a notice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.content.checkins import CheckinContent, Questionnaire
from bot.context import AppContext
from bot.db.checkin_models import CheckinAnswer, FlowRun, FlowStatus
from bot.db.models import ActionStatus, Participant, ParticipantEvent, ScheduledAction
from bot.flows.checkin import CHECKIN, QuestionnaireFlow
from bot.flows.engine import FlowEngine, FlowStep, StepKind, Turn
from bot.messaging import Messenger, Replies, say
from bot.safety.levels import Assessment, Level
from bot.safety.triggers import TriggerThresholds, assess_answers
from bot.services.escalation.crisis import crisis_reply_text
from bot.services.local_time import local_date, now_in_quiet_hours
from bot.services.scheduling.outbox import Delivered, Skip, enqueue

log = logging.getLogger(__name__)

NUDGE = "checkin_nudge"
MISSED_NOTICE = "missed_checkins"
RECENT_MOODS = 7  # how many earlier mood answers the "run of low moods" trigger sees
STREAK_LOOKBACK_DAYS = 90


def checkin_key(participant_id: int, day: date) -> str:
    return f"{CHECKIN}:{participant_id}:{day.isoformat()}"


def nudge_key(participant_id: int, day: date) -> str:
    return f"{NUDGE}:{participant_id}:{day.isoformat()}"


def _engine(ctx: AppContext) -> FlowEngine:
    return ctx.parts.get(FlowEngine)


def _flow(ctx: AppContext) -> CheckinFlow:
    flow = _engine(ctx).kinds[CHECKIN]
    assert isinstance(flow, CheckinFlow)
    return flow


# --- starting ---------------------------------------------------------------------------------

async def _run_for_date(session: AsyncSession, participant_id: int, day: date) -> FlowRun | None:
    return await session.scalar(
        select(FlowRun).where(FlowRun.participant_id == participant_id, FlowRun.kind == CHECKIN,
                              FlowRun.local_date == day).order_by(FlowRun.id.desc()).limit(1))


async def _start(session: AsyncSession, ctx: AppContext, participant: Participant, day: date, now: datetime,
                 action_id: int | None) -> FlowRun:
    await _close_earlier_runs(session, ctx, participant.id, now)
    flow = _flow(ctx)
    return await _engine(ctx).start(
        session, participant, CHECKIN, flow.questionnaire(participant.locale).id, now=now,
        expires_at=now + timedelta(hours=ctx.settings.checkin.expire_hours), local_date=day, action_id=action_id)


async def _close_earlier_runs(session: AsyncSession, ctx: AppContext, participant_id: int, now: datetime) -> None:
    """A new check-in replaces an earlier one still open: that one counts as missed."""
    open_runs = (await session.scalars(
        select(FlowRun).where(FlowRun.participant_id == participant_id, FlowRun.kind == CHECKIN,
                              FlowRun.status == FlowStatus.ACTIVE))).all()
    if open_runs:
        await _engine(ctx).close(session, [r.id for r in open_runs], FlowStatus.EXPIRED, now)
        await checkins_expired(session, ctx, list(open_runs), now)


async def start_or_resume(session: AsyncSession, ctx: AppContext, participant: Participant,
                          replies: Replies) -> None:
    """/checkin: continue the open check-in, or start today's (also before its scheduled time)."""
    engine, flow = _engine(ctx), _flow(ctx)
    chat_id = participant.chat_id or 0
    now = ctx.clock.now()
    open_runs = await engine.active_runs(session, participant.id, CHECKIN)
    if open_runs:
        engine.show(open_runs[0], replies, chat_id, lead=ctx.t("checkin.resume", participant.locale))
        return
    today = local_date(now, ZoneInfo(participant.timezone))
    done = await _run_for_date(session, participant.id, today)
    if done is not None and done.status == FlowStatus.FINISHED:
        replies.text(chat_id, ctx.t("checkin.already_done", participant.locale))
        return
    row = await session.scalar(select(ScheduledAction).where(ScheduledAction.key == checkin_key(participant.id, today)))
    run = await _start(session, ctx, participant, today, now, row.id if row is not None else None)
    engine.show(run, replies, chat_id, lead=flow.questionnaire(run.locale).intro)


# --- the scheduled rows ------------------------------------------------------------------------

async def send_checkin(ctx: AppContext, messenger: Messenger, session: AsyncSession, row: ScheduledAction) -> Delivered:
    """ActionSender for `checkin` rows: open the day's run and send its first question."""
    participant = await session.get(Participant, row.participant_id) if row.participant_id else None
    if participant is None or not participant.gets_checkins or participant.chat_id is None:
        raise Skip("participant paused, stopped or unreachable")
    day = date.fromisoformat(str(row.payload["date"]))
    now = ctx.clock.now()
    existing = await _run_for_date(session, participant.id, day)
    if existing is not None and existing.status == FlowStatus.FINISHED:
        raise Skip("already answered with /checkin")
    if existing is not None and _engine(ctx).is_open(existing):
        raise Skip("already in progress (started with /checkin)")
    run = await _start(session, ctx, participant, day, now, row.id)
    text, kb = _engine(ctx).render(run, lead=_flow(ctx).questionnaire(run.locale).intro)
    nudge_hours = ctx.settings.checkin.nudge_after_hours
    if nudge_hours > 0:
        # Written before the send (rolled back with it if the send fails): after Telegram's 200,
        # only the "sent" commit remains, so a crash there duplicates as little as possible.
        await enqueue(session, kind=NUDGE, key=nudge_key(participant.id, day),
                      due_at=now + timedelta(hours=nudge_hours), participant_id=participant.id,
                      payload={"date": day.isoformat(), "run": run.id}, now=now)
    message = await say(messenger, participant.chat_id, text, kb)
    return Delivered(participant.chat_id, message.message_id)


async def send_nudge(ctx: AppContext, messenger: Messenger, session: AsyncSession, row: ScheduledAction) -> Delivered:
    """ActionSender for `checkin_nudge` rows: one gentle reminder with the open question."""
    participant = await session.get(Participant, row.participant_id) if row.participant_id else None
    if participant is None or not participant.gets_checkins or participant.chat_id is None:
        raise Skip("participant paused, stopped or unreachable")
    run = await session.get(FlowRun, int(row.payload.get("run", 0)))
    engine = _engine(ctx)
    if run is None or not engine.is_open(run):
        raise Skip("check-in answered or closed")
    now = ctx.clock.now()
    if now_in_quiet_hours(now, participant.timezone, participant.quiet_start, participant.quiet_end):
        raise Skip("in quiet hours")
    text, kb = engine.render(run, lead=ctx.t("checkin.nudge", participant.locale))
    message = await say(messenger, participant.chat_id, text, kb)
    return Delivered(participant.chat_id, message.message_id)


# --- answers ---------------------------------------------------------------------------------------

def assess_checkin(answers: dict[str, Any], recent_moods: Sequence[float],
                   thresholds: TriggerThresholds) -> Assessment:
    """Structured triggers over the answers so far; the rules live in bot/safety/triggers.py and
    the thresholds come from `[triggers]` in config.toml."""
    return assess_answers(answers, thresholds, [round(m) for m in recent_moods])


async def _recent_moods(session: AsyncSession, participant_id: int, run_id: int, run_days: int) -> list[float]:
    # The run of low moods needs run_days - 1 earlier days; never fewer than RECENT_MOODS are read.
    values = (await session.scalars(
        select(CheckinAnswer.value_number)
        .where(CheckinAnswer.participant_id == participant_id, CheckinAnswer.question_id == "mood",
               CheckinAnswer.run_id != run_id, CheckinAnswer.value_number.is_not(None))
        .order_by(CheckinAnswer.local_date.desc(), CheckinAnswer.id.desc())
        .limit(max(RECENT_MOODS, run_days - 1)))).all()
    return [float(v) for v in reversed(values) if v is not None]  # oldest first


async def record_answer(turn: Turn, step: FlowStep, value: Any) -> None:
    """Store one answer by question id, then assess the answers so far."""
    run, participant = turn.run, turn.participant
    number = choice = text = None
    if value is not None:
        if isinstance(value, int | float):
            number = float(value)
        elif step.kind is StepKind.FREE_TEXT:
            text = str(value)
        else:
            choice = str(value)[:40]
    turn.session.add(CheckinAnswer(
        participant_id=participant.id, run_id=run.id,
        local_date=run.local_date or local_date(turn.ctx.clock.now(), ZoneInfo(participant.timezone)),
        question_id=step.id, value_number=number, value_choice=choice, value_text=text,
        answered_at=turn.ctx.clock.now()))
    thresholds = turn.ctx.settings.triggers
    recent = await _recent_moods(turn.session, participant.id, run.id, thresholds.low_mood_run_days)
    assessment = assess_checkin(turn.answers, recent, thresholds)
    run.reasons = ",".join(dict.fromkeys([r for r in run.reasons.split(",") if r] + list(assessment.reasons)))[:300]
    if assessment.level <= run.level:
        return  # nothing new to act on: each level alerts once per check-in
    run.level = int(assessment.level)
    if assessment.level >= Level.URGENT:
        from bot.services.escalation.record import flag_from_answers

        await flag_from_answers(turn.session, turn.ctx, participant, assessment, source="checkin",
                                replies=turn.replies)


async def finish_checkin(turn: Turn, questionnaire: Questionnaire) -> None:
    """The last answer is in: the day's row becomes `answered`, its nudge is cancelled."""
    run, participant, now = turn.run, turn.participant, turn.ctx.clock.now()
    day = run.local_date
    if day is not None:
        await turn.session.execute(
            update(ScheduledAction)
            .where(ScheduledAction.key == checkin_key(participant.id, day),
                   ScheduledAction.status != ActionStatus.ANSWERED)
            .values(status=ActionStatus.ANSWERED, answered_at=now, lease_until=None)
            .execution_options(synchronize_session=False))
        await turn.session.execute(
            update(ScheduledAction)
            .where(ScheduledAction.key == nudge_key(participant.id, day),
                   ScheduledAction.status == ActionStatus.PENDING)
            .values(status=ActionStatus.CANCELLED, last_error="check-in answered")
            .execution_options(synchronize_session=False))
    if participant.chat_id is not None:
        turn.replies.text(participant.chat_id, questionnaire.done)
        if run.level == Level.CONCERN:
            # A low mood, strong cravings, a run of hard days: where help is, and who will see it.

            turn.replies.text(participant.chat_id, crisis_reply_text(turn.ctx, Level.CONCERN, participant.locale))


# --- silence -----------------------------------------------------------------------------------------

async def missed_in_a_row(session: AsyncSession, participant_ids: Sequence[int], now: datetime, *,
                          open_after: datetime | None = None) -> dict[int, tuple[int, str]]:
    """Missed check-ins in a row, counting back from `now`: participant id → (count, local date
    of the latest miss). Only participants with at least one miss are in the result.

    A miss is a check-in that was sent and not answered; one that never went out (the bot was
    down, quiet hours, a pause) neither counts nor breaks the run. A check-in sent after
    `open_after` may still be answered: it is left out (the caseload passes now - expire_hours).
    """
    if not participant_ids:
        return {}
    ids, since = list(participant_ids), now - timedelta(days=STREAK_LOOKBACK_DAYS)
    in_window = (ScheduledAction.kind == CHECKIN, ScheduledAction.participant_id.in_(ids),
                 ScheduledAction.intended_at >= since, ScheduledAction.intended_at <= now)
    # Only the misses after each participant's last answered check-in can be in the run: read the
    # last answered time (an aggregate) and the misses, not every row of 90 days (~18,000 for a
    # caseload of 200; joining the two made PostgreSQL's plan slower than reading them apart).
    last_answered = dict((await session.execute(
        select(ScheduledAction.participant_id, func.max(ScheduledAction.intended_at))
        .where(*in_window, ScheduledAction.status == ActionStatus.ANSWERED)
        .group_by(ScheduledAction.participant_id))).all())
    rows = (await session.execute(
        select(ScheduledAction.participant_id, ScheduledAction.payload, ScheduledAction.sent_at,
               ScheduledAction.intended_at)
        .where(*in_window, ScheduledAction.status == ActionStatus.SENT)
        .order_by(ScheduledAction.participant_id, ScheduledAction.intended_at.desc()))).all()
    streaks: dict[int, tuple[int, str]] = {}
    for participant_id, payload, sent_at, intended_at in rows:
        answered = last_answered.get(participant_id)
        if answered is not None and intended_at <= answered:
            continue  # before their last answer: not in the run
        if open_after is not None and sent_at is not None and sent_at > open_after:
            continue  # still open: not missed yet
        count, latest = streaks.get(participant_id, (0, str(payload.get("date", ""))))
        streaks[participant_id] = (count + 1, latest)
    return streaks


async def checkins_expired(session: AsyncSession, ctx: AppContext, runs: Sequence[FlowRun], now: datetime) -> int:
    """Check-ins that ran out unanswered: record each miss, tell the clinician after K in a row.

    Only scheduled check-ins count (a /checkin started on a whim and left is no miss). Batched:
    one query for every participant in `runs`. Returns how many notices were queued.
    """
    missed = [r for r in runs if r.kind == CHECKIN and r.action_id is not None]
    if not missed:
        return 0
    for run in missed:
        session.add(ParticipantEvent(participant_id=run.participant_id, kind="missed_checkin", at=now,
                                     detail=f"date={run.local_date}"))
    await session.execute(
        update(ScheduledAction)
        .where(ScheduledAction.key.in_([nudge_key(r.participant_id, r.local_date) for r in missed if r.local_date]),
               ScheduledAction.status == ActionStatus.PENDING)
        .values(status=ActionStatus.CANCELLED, last_error="check-in expired")
        .execution_options(synchronize_session=False))
    every = ctx.settings.checkin.notify_after_misses
    if every <= 0:
        return 0
    streaks = await missed_in_a_row(session, sorted({r.participant_id for r in missed}), now)
    queued = 0
    therapists = dict((await session.execute(
        select(Participant.id, Participant.therapist_id).where(Participant.id.in_(list(streaks))))).all())
    for participant_id, (count, latest) in streaks.items():
        if count < every or count % every:
            continue
        session.add(ParticipantEvent(participant_id=participant_id, kind="missed_checkins_notice", at=now,
                                     detail=f"count={count}"))
        await enqueue(session, kind="staff_notice", key=f"{MISSED_NOTICE}:{participant_id}:{latest}",
                      due_at=now, participant_id=participant_id, staff_id=therapists.get(participant_id),
                      payload={"notice": MISSED_NOTICE, "count": count}, now=now)
        queued += 1
    return queued


async def expire_runs(ctx: AppContext, now: datetime, *, batch: int = 1000) -> int:
    """Close every run past its expiry (all kinds); check-ins among them count as missed."""
    total = 0
    while True:
        async with ctx.sessionmaker() as session:
            runs = (await session.scalars(
                select(FlowRun).where(FlowRun.status == FlowStatus.ACTIVE, FlowRun.expires_at <= now)
                .order_by(FlowRun.expires_at).limit(batch).with_for_update(skip_locked=True))).all()
            if not runs:
                return total
            await _engine(ctx).close(session, [r.id for r in runs], FlowStatus.EXPIRED, now)
            queued = await checkins_expired(session, ctx, runs, now)
            await session.commit()
        if queued:
            ctx.wake_outbox()
        total += len(runs)
        if len(runs) < batch:
            return total


async def answers_for_export(session: AsyncSession, participant_id: int) -> list[dict[str, Any]]:
    """A participant's own check-in answers, oldest first, for /mydata."""
    rows = (await session.scalars(
        select(CheckinAnswer).where(CheckinAnswer.participant_id == participant_id)
        .order_by(CheckinAnswer.local_date, CheckinAnswer.id))).all()
    return [{"date": a.local_date.isoformat(), "question": a.question_id,
             "answer": a.value_number if a.value_number is not None else a.value_choice or a.value_text,
             "answered_at": a.answered_at.isoformat()} for a in rows]


class CheckinFlow:
    """The FlowKind of check-ins: the engine calls these hooks."""

    name = CHECKIN

    def __init__(self, ctx: AppContext, content: CheckinContent) -> None:
        self.ctx = ctx
        self.content = content
        self._flows: dict[str, QuestionnaireFlow] = {}

    def questionnaire(self, locale: str) -> Questionnaire:
        return self.content.get(locale)

    def definition(self, run: FlowRun) -> QuestionnaireFlow | None:
        questionnaire = self.content.get(run.locale)
        if questionnaire.id != run.flow_id:
            return None
        flow = self._flows.get(questionnaire.locale)
        if flow is None:
            flow = self._flows[questionnaire.locale] = QuestionnaireFlow(questionnaire, self.ctx)
        return flow

    async def on_answer(self, turn: Turn, step: FlowStep, value: Any) -> None:
        await record_answer(turn, step, value)

    async def on_finish(self, turn: Turn) -> None:
        await finish_checkin(turn, self.questionnaire(turn.run.locale))
