"""The sandbox's demo program: the people a visitor can be, and the records behind them.

Seeding is idempotent: run it against a fresh database or one kept from an earlier run
(`iopbot sandbox --data DIR`) and it only adds what is missing. Staff accept their invites through
the running bot, and the open safety alert is raised by a crisis message injected as that
participant, so what a visitor sees was made by the same code a real program runs.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import WEEKDAYS, Settings
from bot.context import AppContext
from bot.db.checkin_models import CHECKIN, CheckinAnswer, FlowRun, FlowStatus
from bot.db.goal_models import GOAL_PROGRESS, Goal, GoalRating
from bot.db.instrument_models import INSTRUMENT, InstrumentAnswer, InstrumentScore
from bot.db.medication_models import MED_REMINDER, DoseStatus, MedicationConsent, MedicationDose, MedicationReminder
from bot.db.models import ActionStatus, Participant, ParticipantEvent, ParticipantStatus, ScheduledAction
from bot.services import enrollment
from bot.services.checkins.service import checkin_key
from bot.services.escalation.record import open_escalation
from bot.services.goals import progress as goal_prompt
from bot.services.goals.planner import goal_progress_key
from bot.services.goals.service import Change, add_goal
from bot.services.local_time import jitter_seconds, local_date, parse_hhmm, plan_daily, wall_time_to_utc
from bot.services.medications.schedule import reminder_key
from bot.services.medications.service import add_reminder, set_consent
from bot.services.scheduling.hooks import participant_schedule_changed
from bot.services.scheduling.rows import time_after

if TYPE_CHECKING:
    from bot.sandbox.botapi import FakeBotAPI

PersonaKind = Literal["staff", "participant", "new", "support"]

THERAPIST_ALIAS = "dr-rivera"
# The demo program's name, on the consent screen (a real program sets [program] name).
PROGRAM_NAME = "Riverside Evening IOP (demo)"
MID_PROGRAM_DAYS = 21  # "mid-program": three weeks into a typical 6–8 week IOP
# What the participant with the open alert wrote; the shipped rules rate it urgent.
ALERT_MESSAGE = "I can't keep doing this. I want to kill myself."
# New users get Telegram ids and aliases from these bases: new user n is 3000+n and P-(200+n).
NEW_USER_ID_BASE = 3000
NEW_USER_ALIAS_BASE = 200


@dataclass(frozen=True)
class Persona:
    """Someone the visitor can be: a Telegram account in the sandbox, and who it is in the program."""

    key: str  # in the page's address: ?as=<key>
    user_id: int  # the Telegram user id (= the private chat id)
    first_name: str  # the Telegram display name
    label: str  # who this is, for the person picker
    kind: PersonaKind
    alias: str  # the program's alias (staff alias or participant alias)
    about: str  # one line on what to try as this person
    role: str = ""  # staff role
    on_call: bool = False
    timezone: str = ""  # participants: where they live (the demo's choice)


STAFF: tuple[Persona, ...] = (
    Persona("therapist", 1001, "Dana Rivera", "Dr. Rivera – therapist", "staff", THERAPIST_ALIAS,
            "Receives safety alerts for her caseload. Try /caseload, /trend P-101, /goal P-101, /digest, /alerts.",
            role="therapist"),
    Persona("backup", 1002, "Kemi Okafor", "Dr. Okafor – on-call backup", "staff", "dr-okafor",
            "Paged when an alert is not acknowledged in time. Move the clock forward to see it.",
            role="therapist", on_call=True),
    Persona("lead", 1003, "Lin Chen", "Lin Chen – program lead", "staff", "lead-chen",
            "Paged last, and sees every participant. Try /alerts and /caseload.", role="lead"),
)

PARTICIPANTS: tuple[Persona, ...] = (
    Persona("alex", 2001, "Alex", "Alex (P-101) – three weeks into the program", "participant", "P-101",
            "Enrolled three weeks ago. Try /goals, /meds, /mydata, or write how your day went.",
            timezone="America/Chicago"),
    Persona("sam", 2002, "Sam", "Sam (P-102) – has an open safety alert", "participant", "P-102",
            "Wrote something worrying; the care team was paged. Write again and see it passed on.",
            timezone="America/New_York"),
)


# Sam's mother, his support person (#17): joined with her own consent; Sam shares "checked in this week".
SUPPORT_PERSONS: tuple[Persona, ...] = (
    Persona("rosa", 2101, "Rosa", "Rosa – Sam's mother, his support person", "support", "P-102-S1",
            "Gets Sam's family-session reminders and a weekly check-in; sees only whether he checked in. "
            "Try /family, or write how you are doing.", timezone="America/New_York"),
)
SUPPORT_NAMES = {"rosa": "mom"}  # how Sam named her when he invited her


def new_user_persona(n: int) -> Persona:
    """The n-th "new user with an invite link" (n = 1, 2, ...)."""
    return Persona(
        "new" if n == 1 else f"new-{n}", NEW_USER_ID_BASE + n, "Jordan" if n == 1 else f"Newcomer {n}",
        f"A new user with an invite link (P-{NEW_USER_ALIAS_BASE + n})", "new", f"P-{NEW_USER_ALIAS_BASE + n}",
        "Has just been given an invite link. Open it to enroll: consent, time zone, check-in time.",
    )


@dataclass
class DemoProgram:
    """Who is in the demo, and the invite links not used yet (kept in memory only)."""

    personas: dict[str, Persona] = field(default_factory=dict)
    invite_tokens: dict[str, str] = field(default_factory=dict)  # persona key -> token
    staff_tokens: dict[str, str] = field(default_factory=dict)  # staff persona key -> token, until bound

    def add(self, persona: Persona) -> None:
        self.personas[persona.key] = persona

    def new_users(self) -> list[Persona]:
        return [p for p in self.personas.values() if p.kind == "new"]

    def by_user_id(self, user_id: int) -> Persona | None:
        return next((p for p in self.personas.values() if p.user_id == user_id), None)


async def _ensure_staff(session: AsyncSession, now: datetime, settings: Settings, persona: Persona,
                        demo: DemoProgram) -> None:
    staff = await enrollment.staff_by_alias(session, persona.alias)
    if staff is not None and staff.telegram_user_id is not None:
        return
    issued = await enrollment.invite_staff(session, now, settings, persona.alias, persona.role,
                                           on_call=persona.on_call)
    demo.staff_tokens[persona.key] = issued.token


async def _ensure_enrolled_participant(session: AsyncSession, ctx: AppContext, now: datetime,
                                       persona: Persona) -> Participant:
    """An active participant who consented MID_PROGRAM_DAYS ago, bound to the persona's account."""
    existing = await session.scalar(select(Participant).where(Participant.alias == persona.alias))
    if existing is not None and existing.status not in (ParticipantStatus.INVITED, ParticipantStatus.DECLINED):
        return existing
    joined = now - timedelta(days=MID_PROGRAM_DAYS)
    issued = await enrollment.invite_participant(session, joined, ctx.settings, persona.alias, THERAPIST_ALIAS,
                                                 timezone=persona.timezone)
    result, who = await enrollment.redeem_invite(session, joined, issued.token, persona.user_id,
                                                 persona.user_id, "en")
    if result is not enrollment.Redeemed.PARTICIPANT or not isinstance(who, Participant):
        raise RuntimeError(f"could not enroll demo participant {persona.alias}: {result}")
    enrollment.record_consent(who, joined, ctx.settings)
    enrollment.finish_onboarding(who)
    await session.flush()
    await participant_schedule_changed(session, ctx, who)
    await seed_history(session, who, start=joined, end=now)
    await seed_questionnaires(session, ctx, who, start=joined, end=now)
    await seed_goals(session, ctx, who, start=joined, end=now)
    await seed_medications(session, ctx, who, start=joined, end=now)
    return who


async def _ensure_support_person(session: AsyncSession, ctx: AppContext, now: datetime, persona: Persona) -> None:
    """Sam's support person: invited by him a week ago (sharing "checked in this week"), joined with
    her own consent. Idempotent."""
    from bot.db.support_models import SHARE_CHECKINS, SupportPerson, SupportStatus
    from bot.services.support import checkins, service

    if await session.scalar(select(SupportPerson).where(SupportPerson.alias == persona.alias)) is not None:
        return
    sam = await session.scalar(select(Participant).where(Participant.alias == "P-102"))
    if sam is None:
        raise RuntimeError("the demo's support person needs P-102")
    invited = now - timedelta(days=7)
    _, issued = await service.invite(session, invited, ctx.settings, sam, SUPPORT_NAMES[persona.key],
                                     frozenset({SHARE_CHECKINS}), by=f"participant:{sam.id}")
    opened = await service.redeem(session, invited, ctx.settings, issued.token, persona.user_id, persona.user_id,
                                  "en")
    person = opened.person
    if person is None:
        raise RuntimeError(f"could not enroll the demo's support person {persona.alias}: {opened.result}")
    # Her consent, as `service.agree` records it (without telling Sam again: that was a week ago).
    person.status, person.consent_version, person.consented_at = SupportStatus.ACTIVE, service.CONSENT_VERSION, invited
    await checkins.plan_week(session, person, now, ctx.settings.support)


async def _ensure_new_user(session: AsyncSession, now: datetime, settings: Settings, persona: Persona,
                           demo: DemoProgram) -> None:
    participant = await session.scalar(select(Participant).where(Participant.alias == persona.alias))
    demo.add(persona)
    if participant is None or participant.status == ParticipantStatus.INVITED:
        # A kept database holds only the hash of an earlier link: issue a fresh one to show.
        issued = await enrollment.invite_participant(session, now, settings, persona.alias, THERAPIST_ALIAS)
        demo.invite_tokens[persona.key] = issued.token


# Lines a participant might leave for their care team on some days (demo text, not real people).
_NOTES = (
    "Group helped today.",
    "Hard evening, but I used my coping card.",
    "Slept badly, worried about work.",
    "Went to a meeting with my sponsor.",
    "Felt proud that I said no to a drink.",
)


async def seed_history(session: AsyncSession, participant: Participant, *, start: datetime, end: datetime) -> int:
    """Give a participant the check-in history of their days in the program, from `start` to `end`.

    One daily check-in per local date before the date of `end`, as the scheduler and the check-in
    flow would have left it: the scheduled row (answered, or sent and missed), the flow run, and
    one answer per question. Most days are answered; about one in seven is missed. Mood and sleep
    improve and cravings ease over the weeks, with day-to-day noise, so the clinician's caseload
    and trends have something to show. The same participant always gets the same history.
    Idempotent: a date that already has its check-in row is left alone. Returns the check-ins written.
    """
    zone = ZoneInfo(participant.timezone)
    first, today = local_date(start, zone) + timedelta(days=1), local_date(end, zone)
    days = (today - first).days
    if days <= 0:
        return 0
    keys = [checkin_key(participant.id, first + timedelta(days=n)) for n in range(days)]
    existing = set((await session.scalars(select(ScheduledAction.key).where(ScheduledAction.key.in_(keys)))).all())
    rng = random.Random(f"iopbot-sandbox-history:{participant.alias}")  # noqa: S311 - demo data, not secrets
    hour, minute = (int(part) for part in participant.checkin_time.split(":"))
    written = 0
    for n, key in enumerate(keys):
        if key in existing:
            continue
        day = first + timedelta(days=n)
        sent = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(end.tzinfo)
        progress = n / max(days - 1, 1)
        missed = rng.random() < 0.14
        row = ScheduledAction(
            kind=CHECKIN, key=key, due_at=sent, intended_at=sent, attempts=1, participant_id=participant.id,
            payload={"date": day.isoformat()}, chat_id=participant.chat_id, sent_at=sent, created_at=sent,
            status=ActionStatus.SENT if missed else ActionStatus.ANSWERED,
            answered_at=None if missed else sent + timedelta(minutes=rng.randint(2, 90)),
        )
        session.add(row)
        await session.flush()
        run = FlowRun(participant_id=participant.id, kind=CHECKIN, flow_id="daily", locale=participant.locale,
                      local_date=day, action_id=row.id, started_at=sent, expires_at=sent + timedelta(hours=12))
        if missed:
            run.status, run.step = FlowStatus.EXPIRED, "mood"
            run.finished_at = run.expires_at
            session.add(run)
            session.add(ParticipantEvent(participant_id=participant.id, kind="missed_checkin",
                                         at=sent + timedelta(hours=12), detail=f"date={day}"))
            written += 1
            continue
        answered_at = row.answered_at or sent
        answers: dict[str, float | str | None] = {
            "mood": float(max(0, min(10, round(3.5 + 3 * progress + rng.gauss(0, 1.2))))),
            "craving": float(max(0, min(10, round(6.5 - 3.5 * progress + rng.gauss(0, 1.3))))),
            "sleep_hours": float(max(3, min(10, round(5.5 + 1.5 * progress + rng.gauss(0, 0.8), 1)))),
            "medication": "yes" if rng.random() < 0.85 else "no",
            "safety": "no",
            "note": rng.choice(_NOTES) if rng.random() < 0.3 else None,
        }
        run.status, run.step, run.finished_at = FlowStatus.FINISHED, None, answered_at
        run.answers = json.dumps(answers)
        session.add(run)
        await session.flush()
        for question, value in answers.items():
            session.add(CheckinAnswer(
                participant_id=participant.id, run_id=run.id, local_date=day, question_id=question,
                value_number=value if isinstance(value, float) else None,
                value_choice=value if isinstance(value, str) and question != "note" else None,
                value_text=value if question == "note" else None, answered_at=answered_at))
        written += 1
    return written


# Weekly totals at the start and at the latest of the demo's weeks: symptoms ease in treatment.
_QUESTIONNAIRE_TREND = {"phq9": (16, 8), "gad7": (13, 6)}


async def seed_questionnaires(session: AsyncSession, ctx: AppContext, participant: Participant, *,
                              start: datetime, end: datetime) -> int:
    """Weekly PHQ-9 and GAD-7 from the week after `start` to `end`, as the questionnaire flow
    leaves them (the run, an answer per item, the score and band), totals easing over the weeks
    with some noise; the safety item (PHQ-9 item 9) is always 0 here, so the demo opens no alert
    of its own. The same participant always gets the same history. Idempotent: a participant with
    any score is left alone. Returns the questionnaires written."""
    from bot.content.instruments import load_instruments
    from bot.services.instruments.scoring import score

    if await session.scalar(select(InstrumentScore.id).where(InstrumentScore.participant_id == participant.id)
                            .limit(1)) is not None:
        return 0
    content = load_instruments(ctx.settings.content_dir, tuple(_QUESTIONNAIRE_TREND))
    zone = ZoneInfo(participant.timezone)
    rng = random.Random(f"iopbot-sandbox-questionnaires:{participant.alias}")  # noqa: S311 - demo data
    weeks = max((end - start).days // 7, 0)
    written = 0
    for week in range(1, weeks + 1):
        at = start + timedelta(days=7 * week, hours=1)
        if at >= end:
            break
        for instrument_id, (first, last) in _QUESTIONNAIRE_TREND.items():
            instrument = content.get(instrument_id, participant.locale)
            target = round(first + (last - first) * (week - 1) / max(weeks - 1, 1) + rng.gauss(0, 1.5))
            values = {item.id: 0 for item in instrument.scored_items}
            fillable = [i.id for i in instrument.scored_items if i.id not in instrument.safety_items]
            for _ in range(max(0, min(target, 3 * len(fillable)))):  # add points one by one, at most 3 an item
                item_id = rng.choice([i for i in fillable if values[i] < 3])
                values[item_id] += 1
            result = score(instrument, values)
            assert result is not None
            run = FlowRun(participant_id=participant.id, kind=INSTRUMENT, flow_id=instrument_id,
                          locale=participant.locale, status=FlowStatus.FINISHED, local_date=local_date(at, zone),
                          started_at=at, finished_at=at + timedelta(minutes=4))
            session.add(run)
            await session.flush()
            for item_id, value in values.items():
                session.add(InstrumentAnswer(participant_id=participant.id, run_id=run.id,
                                             instrument_id=instrument_id, item_id=item_id, value=value,
                                             answered_at=at + timedelta(minutes=3)))
            session.add(InstrumentScore(participant_id=participant.id, run_id=run.id, instrument_id=instrument_id,
                                        version=instrument.version, local_date=local_date(at, zone),
                                        total=result.total, band=result.band.id, level=0, reasons="",
                                        completed_at=at + timedelta(minutes=4)))
            written += 1
    return written


# Each demo participant's two goals, in their own words, and lines they might add to a weekly
# rating (demo text, not real people).
_GOALS = {
    "P-101": ("Walk 20 minutes after dinner", "In bed by 11 on weeknights"),
    "P-102": ("Eat breakfast before work", "Text my sponsor when a craving hits"),
}
_DEFAULT_GOALS = ("Walk 20 minutes a day", "Call a friend once a week")
_GOAL_NOTES = (
    "Managed it most days.",
    "Work got in the way this week.",
    "Easier now that it's a habit.",
    "Missed a couple of days, then got back to it.",
    "Proud of this one.",
)
# Each goal's weekly rating (0-10) at the first and at the latest of the demo's weeks: within reach.
_GOAL_TRENDS = ((3, 7), (2, 6))


async def seed_goals(session: AsyncSession, ctx: AppContext, participant: Participant, *,
                     start: datetime, end: datetime) -> int:
    """Two goals set on the participant's first day (through the goals service, so their words are
    encrypted and the weekly prompt is planned from now on), and each week's prompt from then to
    `end` as the prompt flow leaves it: the answered row, the finished run, a 0-10 rating per goal
    rising over the weeks with some noise (never falling from the first week to the latest), and a
    line of the participant's on some weeks (at least one). No ratings when the program has the prompt off. The
    same participant always gets the same goals and ratings. Idempotent: a participant with any
    goal is left alone. Returns the ratings written."""
    if await session.scalar(select(Goal.id).where(Goal.participant_id == participant.id).limit(1)) is not None:
        return 0
    set_at = start + timedelta(days=1)
    goals: list[Goal] = []
    for text in _GOALS.get(participant.alias, _DEFAULT_GOALS):
        change, goal = await add_goal(session, ctx, participant, text, f"participant:{participant.id}")
        if change is not Change.DONE or goal is None:
            raise RuntimeError(f"could not add a demo goal for participant {participant.id}: {change}")
        goal.created_at = set_at
        goals.append(goal)
    g, sched = ctx.settings.goals, ctx.settings.schedule
    if not g.enabled:
        return 0
    zone = ZoneInfo(participant.timezone)
    at = time_after(participant.checkin_time, g.minutes_after_checkin)
    jitter = jitter_seconds(participant.id, sched.jitter_minutes)
    prompts = []
    day = local_date(set_at, zone)
    while day <= local_date(end, zone):
        if day.weekday() == WEEKDAYS.index(g.day):
            planned = plan_daily(day, at, zone.key, participant.quiet_start, participant.quiet_end,
                                 sched.quiet_hours_policy, jitter)
            if planned.due is not None and set_at < planned.due and planned.due + timedelta(hours=1) < end:
                prompts.append((day, planned))
        day += timedelta(days=1)
    rng = random.Random(f"iopbot-sandbox-goals:{participant.alias}")  # noqa: S311 - demo data, not secrets
    written, notes = 0, 0
    for week, (day, planned) in enumerate(prompts):
        sent = planned.due or planned.intended
        answered = sent + timedelta(minutes=rng.randint(3, 50))
        row = ScheduledAction(
            kind=GOAL_PROGRESS, key=goal_progress_key(participant.id, day), due_at=sent, intended_at=planned.intended,
            attempts=1, participant_id=participant.id, payload={"date": day.isoformat()},
            chat_id=participant.chat_id, sent_at=sent, created_at=sent, status=ActionStatus.ANSWERED,
            answered_at=answered)
        session.add(row)
        await session.flush()
        answers: dict[str, object] = {goal_prompt.SNAPSHOT: {str(goal.id): goal.text for goal in goals}}
        run = FlowRun(participant_id=participant.id, kind=GOAL_PROGRESS,
                      flow_id=goal_prompt.FLOW_PREFIX + ".".join(str(goal.id) for goal in goals),
                      locale=participant.locale, status=FlowStatus.FINISHED, step=None, local_date=day,
                      action_id=row.id, started_at=sent,
                      expires_at=sent + timedelta(hours=goal_prompt.EXPIRE_HOURS), finished_at=answered)
        session.add(run)
        await session.flush()
        for goal, (first, last) in zip(goals, _GOAL_TRENDS, strict=False):
            # Rises by the trend, noise of at most one point either way: the latest week stays
            # above the first however many weeks fall in the demo's three.
            trend = first + (last - first) * week / max(len(prompts) - 1, 1)
            value = max(0, min(10, round(trend) + rng.choice((-1, 0, 0, 1))))
            latest = week == len(prompts) - 1 and goal is goals[-1]
            note = rng.choice(_GOAL_NOTES) if rng.random() < 0.35 or (latest and not notes) else None
            notes += note is not None
            answers[f"{goal_prompt.RATE}{goal.id}"] = float(value)
            if note is not None:
                answers[f"{goal_prompt.NOTE}{goal.id}"] = note
            session.add(GoalRating(goal_id=goal.id, participant_id=participant.id, run_id=run.id, local_date=day,
                                   value=value, note=note, rated_at=answered))
            written += 1
        run.answers = json.dumps(answers)
    return written


# The demo's medication reminder: named by the participant ("morning meds"), or left without a
# name (P-102), as /meds allows; and whether they agreed that their care team is told of misses.
_MEDICATION_NAMES = {"P-102": None}
_MEDICATION_NAME = "morning meds"
_MEDICATION_TIME = "08:00"
_MEDICATION_CONSENT = {"P-101": True}
_MEDICATION_NOT_TAKEN = 3  # of about three weeks of doses


async def seed_medications(session: AsyncSession, ctx: AppContext, participant: Participant, *,
                           start: datetime, end: datetime) -> int:
    """A daily 08:00 medication reminder set up when the participant joined (through the service,
    so its name is encrypted and the coming doses are planned), their answer about telling the care
    team, and a dose for every day since, as the reminder and its buttons leave them: the sent row
    and the dose, all taken but three (one missed, two skipped: no run of misses, so no notice to
    the clinician was due). The same participant always gets the same doses. Idempotent: a
    participant with any reminder is left alone. Returns the doses written."""
    if await session.scalar(select(MedicationReminder.id).where(
            MedicationReminder.participant_id == participant.id).limit(1)) is not None:
        return 0
    name = _MEDICATION_NAMES.get(participant.alias, _MEDICATION_NAME)
    reminder = await add_reminder(ctx, session, participant, name, [_MEDICATION_TIME], set(range(7)))
    reminder.created_at = start
    await set_consent(ctx, session, participant, _MEDICATION_CONSENT.get(participant.alias, False))
    consent = await session.scalar(select(MedicationConsent).where(MedicationConsent.participant_id == participant.id))
    if consent is not None:
        consent.decided_at = start
    zone = ZoneInfo(participant.timezone)
    window = timedelta(minutes=ctx.settings.medications.missed_after_minutes)
    rng = random.Random(f"iopbot-sandbox-medications:{participant.alias}")  # noqa: S311 - demo data
    first = local_date(start, zone)
    days = [(day, wall_time_to_utc(day, parse_hhmm(_MEDICATION_TIME), zone))
            for day in (first + timedelta(days=n) for n in range((local_date(end, zone) - first).days + 1))]
    days = [(day, due) for day, due in days if start < due < end]
    # A few days not taken, spread by chance: one missed (no answer), the others skipped.
    off = rng.sample(range(len(days)), k=min(_MEDICATION_NOT_TAKEN, len(days)))
    missed = {n for n in off[:1] if days[n][1] + window < end}
    written = 0
    for n, (day, due) in enumerate(days):
        status = DoseStatus.MISSED if n in missed else DoseStatus.SKIPPED if n in off else DoseStatus.TAKEN
        answered = None if status == DoseStatus.MISSED else min(due + timedelta(minutes=rng.randint(1, 45)), end)
        session.add(ScheduledAction(
            kind=MED_REMINDER, key=reminder_key(reminder.id, day, _MEDICATION_TIME), due_at=due,
            intended_at=due, attempts=1, participant_id=participant.id, chat_id=participant.chat_id,
            payload={"reminder_id": reminder.id, "date": day.isoformat(), "time": _MEDICATION_TIME},
            sent_at=due, created_at=start, status=ActionStatus.SENT))
        session.add(MedicationDose(
            reminder_id=reminder.id, participant_id=participant.id, local_date=day,
            local_time=_MEDICATION_TIME, due_at=due, sent_at=due, status=status, deadline_at=due + window,
            snoozes=0, answered_at=answered))
        written += 1
    await session.flush()
    return written


async def seed_records(session: AsyncSession, ctx: AppContext, now: datetime) -> DemoProgram:
    """The database part of the demo, before the bot polls: staff invited, participants enrolled,
    the first new user invited. Idempotent. Staff still have to accept their invites
    (`accept_staff_invites`) once the bot is running."""
    demo = DemoProgram()
    for persona in STAFF:
        demo.add(persona)
        await _ensure_staff(session, now, ctx.settings, persona, demo)
    await session.flush()
    for persona in PARTICIPANTS:
        demo.add(persona)
        await _ensure_enrolled_participant(session, ctx, now, persona)
    for persona in SUPPORT_PERSONS:
        demo.add(persona)
        await _ensure_support_person(session, ctx, now, persona)
    # New users from an earlier run of a kept database stay available; there is always at least one.
    count = 0
    aliases = set((await session.scalars(select(Participant.alias))).all())
    while f"P-{NEW_USER_ALIAS_BASE + count + 1}" in aliases:
        count += 1
    for n in range(1, max(count, 1) + 1):
        await _ensure_new_user(session, now, ctx.settings, new_user_persona(n), demo)
    await seed_sessions(session, ctx, now)
    await seed_group_agreements(session, ctx, now)
    return demo


DEMO_GROUP = "evening-iop"


def _demo_calendar_csv(now: datetime) -> str:
    """A week of the program's sessions (group, individual, family), starting from this week."""
    local = now.astimezone(ZoneInfo("America/New_York"))
    monday = (local - timedelta(days=local.weekday())).date()
    rows = [
        ("title", "kind", "start", "duration_minutes", "timezone", "video_link", "facilitator", "group", "rrule",
         "participants", "uid"),
        ("Evening IOP group", "group", f"{monday}T18:00", "180", "America/New_York",
         "https://meet.example.org/iop-evening", THERAPIST_ALIAS, DEMO_GROUP, "FREQ=WEEKLY;BYDAY=MO,WE,TH",
         "", "demo-group"),
        ("Individual session", "individual", f"{monday + timedelta(days=1)}T15:00", "50", "America/New_York",
         "https://meet.example.org/rivera", THERAPIST_ALIAS, "", "FREQ=WEEKLY;BYDAY=TU", "P-101", "demo-ind"),
        ("Family session", "family", f"{monday + timedelta(days=4)}T17:00", "60", "America/New_York",
         "https://meet.example.org/family", THERAPIST_ALIAS, "", "FREQ=WEEKLY;BYDAY=FR", "P-102", "demo-fam"),
    ]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


async def seed_sessions(session: AsyncSession, ctx: AppContext, now: datetime) -> None:
    """The demo program's week of sessions with video links, and the group's members. Idempotent:
    the import matches sessions by uid."""
    from bot.services.calendar import occurrences as calendar
    from bot.services.calendar.apply import import_calendar
    from bot.services.calendar.csv_reader import parse_csv

    parsed = parse_csv(_demo_calendar_csv(now))
    report = await import_calendar(session, ctx.settings, parsed, now)
    if report is None:
        raise RuntimeError("demo calendar did not import: " + "; ".join(str(p) for p in parsed.problems))
    group = await calendar.get_or_create_group(session, DEMO_GROUP, now)
    members = (await session.scalars(select(Participant).where(Participant.alias.in_(["P-101", "P-102"])))).all()
    await calendar.set_membership(session, ctx.settings, group, members, now, member=True)


# The cohort's group chat (#17): a supergroup Dr. Rivera made for the evening-iop cohort, with the
# bot as an admin, linked with /linkgroup. Its Telegram id, and what it is called.
GROUP_CHAT_ID = -1001000000101
GROUP_TITLE = "Evening IOP peer chat"
# The participants who accepted the group's confidentiality agreement (and so are let in), and when.
GROUP_AGREED = ("P-101", "P-102")
GROUP_AGREED_DAYS_AGO = MID_PROGRAM_DAYS - 2
# What peers wrote after the week's discussion prompt (the first of content/<locale>/group_prompts/,
# "one small thing that went well"): persona key and words. Demo text, not real people; nothing in it
# names anyone, and none of it is a worry for the safety layer.
GROUP_MESSAGES = (
    ("alex", "Small win: I cooked dinner at home three nights this week instead of grabbing takeout."),
    ("sam", "That's a good one. Mine: I went to the Tuesday meeting even though I almost talked myself out of it."),
    ("alex", "Showing up when you don't feel like it counts double. Glad you went."),
)
GROUP_SEED_WAIT_SECONDS = 20.0
DEMO_PROMPT = "prompt:sandbox-demo"  # the outbox key of the prompt the demo posts at start


async def seed_group_agreements(session: AsyncSession, ctx: AppContext, now: datetime) -> None:
    """GROUP_AGREED accepted the group agreement (the current version) two days into the program, as
    the agreement's button stores it. Idempotent."""
    from bot.db.group_models import GroupAgreement
    from bot.services.groups import membership

    version = ctx.settings.groups.agreement_version
    for alias in GROUP_AGREED:
        participant = await session.scalar(select(Participant).where(Participant.alias == alias))
        if participant is None or await membership.agreement_accepted(session, participant.id, version):
            continue
        await membership.accept_agreement(session, ctx.settings, participant, now)
        agreement = await session.scalar(select(GroupAgreement).where(
            GroupAgreement.participant_id == participant.id, GroupAgreement.version == version))
        if agreement is not None:
            agreement.accepted_at = now - timedelta(days=GROUP_AGREED_DAYS_AGO)


@dataclass(frozen=True)
class DemoGroup:
    """The cohort's group chat as the sandbox left it: for the start-up message."""

    chat_id: int
    title: str
    members: list[str]  # participant aliases inside (staff views only)
    prompt_waits: bool  # the discussion prompt waits for the end of the group's quiet hours


async def open_cohort_group(api: FakeBotAPI, ctx: AppContext, demo: DemoProgram) -> DemoGroup:
    """The cohort's group chat, made through the running bot as a program makes one: the therapist
    creates the supergroup and adds the bot as an admin, sends `/linkgroup evening-iop` in it, adds
    the participants who accepted the agreement (the bot checks each and welcomes them), the week's
    discussion prompt is queued, and peers answer it. Run once the bot polls and the therapist is
    enrolled. On a kept database the group is linked already; the local Bot API forgets it between
    runs, so it is made again with its members on record, quietly (no second welcome or messages)."""
    from bot.db.group_models import GroupChat, GroupMember, MemberStatus
    from bot.services.groups import posting

    therapist = demo.personas["therapist"]

    async def linked_chat() -> GroupChat | None:
        async with ctx.sessionmaker() as session:
            return await session.scalar(select(GroupChat).where(GroupChat.telegram_chat_id == GROUP_CHAT_ID,
                                                                GroupChat.cohort_id.is_not(None)))

    async def member_ids() -> list[int]:
        async with ctx.sessionmaker() as session:
            rows = await session.scalars(select(GroupMember.participant_id).join(
                GroupChat, GroupChat.id == GroupMember.group_chat_id).where(
                GroupChat.telegram_chat_id == GROUP_CHAT_ID, GroupMember.status == MemberStatus.MEMBER,
                GroupMember.participant_id.is_not(None)))
            ids = [i for i in rows.all() if i is not None]
            users = await session.scalars(select(Participant.telegram_user_id).where(Participant.id.in_(ids)))
            return [u for u in users.all() if u is not None]

    async def aliases() -> list[str]:
        users = set(await member_ids())
        return sorted(p.alias for p in demo.personas.values() if p.kind == "participant" and p.user_id in users)

    if await linked_chat() is not None:  # a kept database: the group again, with whoever is in it
        if GROUP_CHAT_ID not in _groups_in(api):
            api.create_group(GROUP_CHAT_ID, therapist.user_id, title=GROUP_TITLE, members=await member_ids())
        return DemoGroup(GROUP_CHAT_ID, GROUP_TITLE, await aliases(), prompt_waits=False)

    api.create_group(GROUP_CHAT_ID, therapist.user_id, title=GROUP_TITLE)
    await _until(lambda: _bot_knows_group(ctx), "the bot did not record being added to the demo group")
    api.group_message(GROUP_CHAT_ID, therapist.user_id, f"/linkgroup {DEMO_GROUP}", first_name=therapist.first_name)
    await _until(lambda: _truthy(linked_chat()), "the bot did not link the demo group (/linkgroup)")
    async with ctx.sessionmaker() as session:
        agreed = (await session.scalars(select(Participant.telegram_user_id).where(
            Participant.alias.in_(GROUP_AGREED)))).all()
    for user_id in agreed:
        if user_id is not None:
            api.add_to_group(GROUP_CHAT_ID, user_id, by=therapist.user_id)
    await _until(lambda: _has_all(member_ids(), {u for u in agreed if u is not None}),
                 "the bot did not take the demo participants into the group")
    now = ctx.clock.now()
    chat = await linked_chat()
    assert chat is not None
    async with ctx.sessionmaker() as session:
        await posting.post(session, ctx.settings, chat, posting.PROMPT, now, unique=DEMO_PROMPT)
        await session.commit()
    ctx.wake_outbox()
    waits = posting.quiet_until(ctx.settings, now) is not None
    if not waits:  # the prompt first, then the answers (the linked notice and welcomes come before it)
        key = f"{posting.POST}:{chat.id}:{DEMO_PROMPT}"
        await _until(lambda: _row_sent(ctx, key), "the demo group's discussion prompt was not posted")
    for key, text in GROUP_MESSAGES:
        persona = demo.personas[key]
        api.group_message(GROUP_CHAT_ID, persona.user_id, text, first_name=persona.first_name)
    return DemoGroup(GROUP_CHAT_ID, GROUP_TITLE, await aliases(), prompt_waits=waits)


def _groups_in(api: FakeBotAPI) -> set[int]:
    from bot.sandbox.botapi import ControlError

    try:
        api.group(GROUP_CHAT_ID)
    except ControlError:  # no such group (yet)
        return set()
    return {GROUP_CHAT_ID}


async def _bot_knows_group(ctx: AppContext) -> bool:
    from bot.db.group_models import GroupChat

    async with ctx.sessionmaker() as session:
        status = await session.scalar(select(GroupChat.bot_status).where(GroupChat.telegram_chat_id == GROUP_CHAT_ID))
    return status == "administrator"


async def _truthy(value: Awaitable[object]) -> bool:
    return bool(await value)


async def _has_all(found: Awaitable[list[int]], wanted: set[int]) -> bool:
    return wanted <= set(await found)


async def _row_sent(ctx: AppContext, key: str) -> bool:
    async with ctx.sessionmaker() as session:
        status = await session.scalar(select(ScheduledAction.status).where(ScheduledAction.key == key))
    return status == ActionStatus.SENT


async def _until(check: Callable[[], Awaitable[bool]], failure: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GROUP_SEED_WAIT_SECONDS
    while not await check():
        if loop.time() > deadline:
            raise RuntimeError(f"{failure} within {GROUP_SEED_WAIT_SECONDS:.0f} s; see the log (--verbose)")
        await asyncio.sleep(0.05)


async def add_new_user(session: AsyncSession, ctx: AppContext, now: datetime, demo: DemoProgram) -> Persona:
    """Another "new user with an invite link", for a visitor who used the first one."""
    persona = new_user_persona(len(demo.new_users()) + 1)
    await _ensure_new_user(session, now, ctx.settings, persona, demo)
    return persona


async def has_open_alert(session: AsyncSession, alias: str) -> bool:
    participant = await session.scalar(select(Participant).where(Participant.alias == alias))
    return participant is not None and await open_escalation(session, participant.id) is not None

