"""The weekly questionnaires: sending them, taking the answers, scoring, and the safety trigger.

- The `instrument` row of a local date (key `instrument:<participant>:<YYYY-MM-DD>`, planned by
  bot/services/instruments/planner.py) lists the questionnaires of that week in order
  (`[instruments] ask`). `send_instruments` opens a FlowRun for the first one and sends its first
  item; when one is finished the next starts at once, and the row becomes `answered` after the last.
- Every answer is stored by item id with its option's value (`InstrumentAnswer`) and the answers so
  far are assessed: a safety item above 0 (PHQ-9 item 9) is urgent whatever the total, so the
  participant gets the crisis reply and the clinician is paged at once (escalation's
  `flag_from_answers`, as the check-in's safety question does). After a crisis reply no further
  questionnaire is started that week: it is no moment for seven more questions.
- At the end the total and band are stored (`InstrumentScore`) and the participant sees them with
  the band's plain explanation from the content file.
- At most weekly: a questionnaire completed in the last `MIN_DAYS_BETWEEN` days is not asked
  again (both ask about the last two weeks), even if a change of day or time zone brings a row
  early.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.content.instruments import Instrument, InstrumentContent
from bot.context import AppContext
from bot.db.checkin_models import FlowRun, FlowStatus
from bot.db.instrument_models import INSTRUMENT, InstrumentAnswer, InstrumentScore
from bot.db.models import ActionStatus, Participant, ScheduledAction
from bot.flows.engine import FlowEngine, FlowStep, Turn
from bot.flows.instrument import InstrumentSteps
from bot.messaging import Messenger, say
from bot.safety.levels import Level
from bot.services.instruments.scoring import assess, score
from bot.services.local_time import local_date
from bot.services.scheduling.outbox import Delivered, Skip

log = logging.getLogger(__name__)

MIN_DAYS_BETWEEN = 6  # a week, less a day of slack for a moved day or time zone


def instrument_key(participant_id: int, day: date) -> str:
    return f"{INSTRUMENT}:{participant_id}:{day.isoformat()}"


def _engine(ctx: AppContext) -> FlowEngine:
    return ctx.parts.get(FlowEngine)


def _flow(ctx: AppContext) -> InstrumentFlow:
    flow = _engine(ctx).kinds[INSTRUMENT]
    assert isinstance(flow, InstrumentFlow)
    return flow


# --- starting ------------------------------------------------------------------------------------

async def recently_completed(session: AsyncSession, participant_id: int, now: datetime) -> set[str]:
    """The instruments this participant completed in the last MIN_DAYS_BETWEEN days."""
    since = now - timedelta(days=MIN_DAYS_BETWEEN)
    return set((await session.scalars(
        select(InstrumentScore.instrument_id).where(InstrumentScore.participant_id == participant_id,
                                                    InstrumentScore.completed_at > since))).all())


async def _start(session: AsyncSession, ctx: AppContext, participant: Participant, instrument_id: str,
                 day: date | None, action_id: int | None, now: datetime) -> FlowRun:
    """A new run of one questionnaire; an earlier one still open is closed (its answers are kept)."""
    engine = _engine(ctx)
    open_runs = await engine.active_runs(session, participant.id, INSTRUMENT)
    await engine.close(session, [r.id for r in open_runs], FlowStatus.ABANDONED, now)
    return await engine.start(session, participant, INSTRUMENT, instrument_id, now=now,
                              expires_at=now + timedelta(hours=ctx.settings.instruments.expire_hours),
                              local_date=day, action_id=action_id)


def _lead(instrument: Instrument) -> str:
    return f"<b>{instrument.title}</b>\n{instrument.intro}"


async def send_instruments(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                           row: ScheduledAction) -> Delivered:
    """ActionSender for `instrument` rows: open the week's first questionnaire, send its first item."""
    participant = await session.get(Participant, row.participant_id) if row.participant_id else None
    if participant is None or not participant.receives_messages or participant.chat_id is None:
        raise Skip("participant paused, stopped or unreachable")
    if not ctx.settings.instruments.enabled:
        raise Skip("questionnaires are off ([instruments] enabled = false)")
    now = ctx.clock.now()
    done = await recently_completed(session, participant.id, now)
    flow = _flow(ctx)
    wanted = [name for name in row.payload.get("instruments", []) if name not in done and flow.has(name)]
    if not wanted:
        raise Skip(f"answered in the last {MIN_DAYS_BETWEEN} days, or none configured")
    day = date.fromisoformat(str(row.payload["date"]))
    run = await _start(session, ctx, participant, wanted[0], day, row.id, now)
    text, kb = _engine(ctx).render(run, lead=_lead(flow.instrument(run)))
    message = await say(messenger, participant.chat_id, text, kb)
    return Delivered(participant.chat_id, message.message_id)


# --- answers -------------------------------------------------------------------------------------

async def record_answer(turn: Turn, instrument: Instrument, step: FlowStep, value: Any) -> None:
    """Store one answer by item id, then assess the answers so far (a safety item pages at once)."""
    run, participant, now = turn.run, turn.participant, turn.ctx.clock.now()
    if value is not None:
        turn.session.add(InstrumentAnswer(participant_id=participant.id, run_id=run.id, instrument_id=instrument.id,
                                          item_id=step.id, value=int(value), answered_at=now))
    assessment = assess(instrument, turn.answers)
    run.reasons = ",".join(dict.fromkeys([r for r in run.reasons.split(",") if r] + list(assessment.reasons)))[:300]
    if assessment.level <= run.level:
        return  # each level alerts once per questionnaire
    run.level = int(assessment.level)
    if assessment.level >= Level.URGENT:
        from bot.services.escalation.record import flag_from_answers

        await flag_from_answers(turn.session, turn.ctx, participant, assessment, source=INSTRUMENT,
                                replies=turn.replies)
        log.info("questionnaire run %s flagged %s for participant %s", run.id, assessment.level.label,
                 participant.id)


async def finish(turn: Turn, instrument: Instrument) -> None:
    """The last item is answered: store the score, tell the participant, start the next one."""
    run, participant, ctx = turn.run, turn.participant, turn.ctx
    now = ctx.clock.now()
    result = score(instrument, turn.answers)
    if result is None:  # cannot happen with every item required; keep the answers, say nothing wrong
        log.error("questionnaire run %s finished without a score", run.id)
        return
    day = run.local_date or local_date(now, ZoneInfo(participant.timezone))
    turn.session.add(InstrumentScore(participant_id=participant.id, run_id=run.id, instrument_id=instrument.id,
                                     version=instrument.version, local_date=day, total=result.total,
                                     band=result.band.id, level=run.level, reasons=run.reasons, completed_at=now))
    chat_id = participant.chat_id
    if chat_id is not None:
        locale = participant.locale
        turn.replies.text(chat_id, ctx.t("instrument.result", locale, title=instrument.title, total=result.total,
                                         highest=result.highest, band=result.band.label)
                          + "\n\n" + result.band.explanation + "\n\n" + ctx.t("instrument.help_line", locale))
    following = await _next_instrument(turn, instrument)
    if following is not None and chat_id is not None:
        next_run = await _start(turn.session, ctx, participant, following, run.local_date, run.action_id, now)
        _engine(ctx).show(next_run, turn.replies, chat_id, lead=_lead(_flow(ctx).instrument(next_run)))
        return
    if run.action_id is not None:
        await turn.session.execute(
            update(ScheduledAction)
            .where(ScheduledAction.id == run.action_id, ScheduledAction.status != ActionStatus.ANSWERED)
            .values(status=ActionStatus.ANSWERED, answered_at=now, lease_until=None)
            .execution_options(synchronize_session=False))


async def _next_instrument(turn: Turn, instrument: Instrument) -> str | None:
    """The week's next questionnaire after this one, unless this one ended in a crisis reply."""
    run = turn.run
    if run.action_id is None or run.level >= Level.URGENT:
        return None
    row = await turn.session.get(ScheduledAction, run.action_id)
    names: Sequence[str] = row.payload.get("instruments", []) if row is not None else []
    if instrument.id not in names:
        return None
    done = await recently_completed(turn.session, turn.participant.id, turn.ctx.clock.now())
    flow = _flow(turn.ctx)
    later = [n for n in names[list(names).index(instrument.id) + 1:] if n not in done and flow.has(n)]
    return later[0] if later else None


# --- reading -------------------------------------------------------------------------------------

async def scores_for_export(session: AsyncSession, participant_id: int) -> list[dict[str, Any]]:
    """A participant's own questionnaire results, oldest first (for /mydata)."""
    rows = (await session.scalars(
        select(InstrumentScore).where(InstrumentScore.participant_id == participant_id)
        .order_by(InstrumentScore.completed_at, InstrumentScore.id))).all()
    return [{"instrument": s.instrument_id, "date": s.local_date.isoformat() if s.local_date else None,
             "total": s.total, "band": s.band, "completed_at": s.completed_at.isoformat()} for s in rows]


class InstrumentFlow:
    """The FlowKind of questionnaires: the engine calls these hooks."""

    name = INSTRUMENT

    def __init__(self, ctx: AppContext, content: InstrumentContent) -> None:
        self.ctx = ctx
        self.content = content
        self._steps: dict[tuple[str, str], InstrumentSteps] = {}

    def has(self, instrument_id: str) -> bool:
        return instrument_id in self.content.ids

    def instrument(self, run: FlowRun) -> Instrument:
        return self.content.get(run.flow_id, run.locale)

    def definition(self, run: FlowRun) -> InstrumentSteps | None:
        instrument = self.content.find(run.flow_id, run.locale)
        if instrument is None:
            return None
        key = (instrument.locale, instrument.id)
        steps = self._steps.get(key)
        if steps is None:
            steps = self._steps[key] = InstrumentSteps(instrument)
        return steps

    async def on_answer(self, turn: Turn, step: FlowStep, value: Any) -> None:
        await record_answer(turn, self.instrument(turn.run), step, value)

    async def on_finish(self, turn: Turn) -> None:
        await finish(turn, self.instrument(turn.run))

