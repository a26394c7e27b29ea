"""Planning the weekly questionnaires on SQLite and PostgreSQL: the participant's questionnaire
day at their check-in time plus the offset, in their zone across both DST changes (New York, March
and November), quiet hours, every other week, a pause and a resume, and nothing when turned off."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.context import AppContext
from bot.db.models import ActionStatus, Participant, ParticipantStatus, ScheduledAction
from bot.services import enrollment
from bot.services.instruments.planner import InstrumentPlanner
from bot.services.scheduling.hooks import participant_schedule_changed
from tests.support.inproc import add_participant, add_staff


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _with(ctx: AppContext, **instruments: object) -> None:
    s = ctx.settings
    ctx.settings = s.replace(schedule=dataclasses.replace(s.schedule, jitter_minutes=0.0),
                             instruments=dataclasses.replace(s.instruments, **instruments))


@pytest.fixture
def planner(ctx: AppContext) -> InstrumentPlanner:
    _with(ctx)
    planner = InstrumentPlanner(ctx)
    ctx.replanners.append(planner)
    return planner


async def _participant(ctx: AppContext, **kwargs: object) -> int:
    async with ctx.sessionmaker() as s:
        dr = await s.scalar(select(enrollment.Staff).limit(1)) or await add_staff(s, "dr-lee", 900_001, ctx.clock.now())
        count = await s.scalar(select(func.count()).select_from(Participant)) or 0
        p = await add_participant(s, f"P-{count + 1}", dr, 5_000 + count, ctx.clock.now(), **kwargs)  # type: ignore[arg-type]
        await s.commit()
        return p.id


async def _due(ctx: AppContext, pid: int) -> dict[str, datetime]:
    async with ctx.sessionmaker() as s:
        rows = (await s.scalars(select(ScheduledAction).where(ScheduledAction.participant_id == pid,
                                                              ScheduledAction.kind == "instrument"))).all()
    return {r.key.rsplit(":", 1)[1]: r.due_at for r in rows if r.status == ActionStatus.PENDING}


async def test_weekly_at_local_time_across_spring_forward(ctx: AppContext, clock: ManualClock,
                                                          planner: InstrumentPlanner) -> None:
    clock.set(utc(2026, 3, 2, 10))  # Monday 05:00 in New York, EST
    pid = await _participant(ctx)  # check-in 09:00: questionnaires at 09:30
    await planner.plan(clock.now())
    assert await _due(ctx, pid) == {"2026-03-02": utc(2026, 3, 2, 14, 30),  # 09:30 EST
                                    "2026-03-09": utc(2026, 3, 9, 13, 30)}  # 09:30 EDT, the day after the change
    clock.set(utc(2026, 3, 10, 12))
    await planner.plan(clock.now())
    due = await _due(ctx, pid)
    assert due["2026-03-16"] == utc(2026, 3, 16, 13, 30)
    assert all(datetime.fromisoformat(day).weekday() == 0 for day in due)  # Mondays only, never twice a week


async def test_weekly_at_local_time_across_fall_back(ctx: AppContext, clock: ManualClock,
                                                     planner: InstrumentPlanner) -> None:
    clock.set(utc(2026, 10, 26, 4))  # Monday 00:00 in New York, EDT; clocks go back on Sunday 1 November
    pid = await _participant(ctx)
    await planner.plan(clock.now())
    assert await _due(ctx, pid) == {"2026-10-26": utc(2026, 10, 26, 13, 30),  # 09:30 EDT
                                    "2026-11-02": utc(2026, 11, 2, 14, 30)}  # 09:30 EST


async def test_quiet_hours_every_other_week_and_off(ctx: AppContext, clock: ManualClock,
                                                    planner: InstrumentPlanner) -> None:
    clock.set(utc(2026, 3, 2, 10))
    late = await _participant(ctx, checkin_time="21:45")  # 22:15: in quiet hours 22:00-07:00, deferred
    await planner.plan(clock.now())
    assert (await _due(ctx, late))["2026-03-02"] == utc(2026, 3, 3, 12)  # 07:00 EST on Tuesday

    _with(ctx, every_weeks=2, day="wednesday")
    fortnight = await _participant(ctx)  # consented today, Monday 2 March
    await planner.plan(clock.now())
    assert list(await _due(ctx, fortnight)) == ["2026-03-04"]
    clock.set(utc(2026, 3, 5, 12))
    await planner.plan(clock.now())
    assert "2026-03-11" not in await _due(ctx, fortnight)  # the week in between has none
    clock.set(utc(2026, 3, 12, 12))
    await planner.plan(clock.now())
    assert "2026-03-18" in await _due(ctx, fortnight)

    _with(ctx, enabled=False)
    off = await _participant(ctx)
    await planner.plan(clock.now())
    assert await _due(ctx, off) == {}


async def test_pause_cancels_and_resume_restores(ctx: AppContext, clock: ManualClock,
                                                 planner: InstrumentPlanner) -> None:
    clock.set(utc(2026, 3, 2, 10))
    pid = await _participant(ctx)
    await planner.plan(clock.now())

    async def set_status(status: str, **changes: str) -> None:
        async with ctx.sessionmaker() as s:
            p = await s.get(Participant, pid)
            assert p is not None
            p.status = status
            for key, value in changes.items():
                setattr(p, key, value)
            await participant_schedule_changed(s, ctx, p)
            await s.commit()

    await set_status(ParticipantStatus.PAUSED)
    assert await _due(ctx, pid) == {}
    await set_status(ParticipantStatus.ACTIVE, timezone="America/Los_Angeles")
    assert await _due(ctx, pid) == {"2026-03-02": utc(2026, 3, 2, 17, 30),  # 09:30 PST
                                    "2026-03-09": utc(2026, 3, 9, 16, 30)}  # 09:30 PDT
