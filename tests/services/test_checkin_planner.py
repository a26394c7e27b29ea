"""Planning daily check-ins on SQLite and PostgreSQL: rows at the participant's local time across
DST and odd offsets, quiet hours, edits after today's row exists, pause and resume, many workers
planning at once, and rows overdue past the grace period becoming visible as expired."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.context import AppContext
from bot.db.models import ActionStatus, Participant, ScheduledAction
from bot.services import enrollment
from bot.services.checkins.planner import CheckinPlanner
from bot.services.scheduling.hooks import participant_schedule_changed
from bot.services.scheduling.outbox import OutboxWorker
from bot.services.scheduling.status import render, schedule_status
from tests.support.inproc import add_participant, add_staff


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def planner(ctx: AppContext) -> CheckinPlanner:
    ctx.settings = ctx.settings.replace(schedule=dataclasses.replace(ctx.settings.schedule, jitter_minutes=0.0))
    planner = CheckinPlanner(ctx)
    ctx.replanners.append(planner)
    return planner


async def _participant(ctx: AppContext, **kwargs: object) -> int:
    async with ctx.sessionmaker() as s:
        dr = await s.scalar(select(enrollment.Staff).limit(1)) or await add_staff(s, "dr-lee", 900_001, ctx.clock.now())
        count = await s.scalar(select(func.count()).select_from(Participant)) or 0
        p = await add_participant(s, f"P-{count + 1}", dr, 5_000 + count, ctx.clock.now(), **kwargs)  # type: ignore[arg-type]
        await s.commit()
        return p.id


async def _rows(ctx: AppContext, pid: int) -> dict[str, ScheduledAction]:
    async with ctx.sessionmaker() as s:
        rows = (await s.scalars(select(ScheduledAction).where(ScheduledAction.participant_id == pid,
                                                              ScheduledAction.kind == "checkin"))).all()
    return {r.key.rsplit(":", 1)[1]: r for r in rows}


def _due(rows: dict[str, ScheduledAction]) -> dict[str, datetime]:
    return {day: r.due_at for day, r in rows.items() if r.status == ActionStatus.PENDING}


async def test_new_york_spring_forward_and_fall_back(ctx: AppContext, clock: ManualClock,
                                                      planner: CheckinPlanner) -> None:
    clock.set(utc(2026, 3, 7, 3))  # Friday 22:00 in New York, before the spring-forward night
    gap = await _participant(ctx, checkin_time="02:30", quiet=("00:00", "00:00"))
    nine = await _participant(ctx, checkin_time="09:00", quiet=("00:00", "00:00"))
    await planner.plan(clock.now())
    assert _due(await _rows(ctx, gap)) == {"2026-03-07": utc(2026, 3, 7, 7, 30),  # 02:30 EST
                                           "2026-03-08": utc(2026, 3, 8, 7, 30)}  # 02:30 missing: 03:30 EDT
    assert _due(await _rows(ctx, nine)) == {"2026-03-07": utc(2026, 3, 7, 14), "2026-03-08": utc(2026, 3, 8, 13)}

    clock.set(utc(2026, 10, 31, 3))
    twice = await _participant(ctx, checkin_time="01:30", quiet=("00:00", "00:00"))
    for hour in range(0, 36, 1):  # planning every hour through the night of the change
        await planner.plan(clock.now() + timedelta(hours=hour))
    rows = await _rows(ctx, twice)
    # 01:30 happens twice on 2026-11-01: one row, at the first one (EDT).
    assert rows["2026-11-01"].due_at == utc(2026, 11, 1, 5, 30)
    assert [d for d in rows if d == "2026-11-01"] == ["2026-11-01"]
    assert rows["2026-11-02"].due_at == utc(2026, 11, 2, 6, 30)  # 01:30 EST


async def test_kolkata_and_chatham_get_their_local_morning(ctx: AppContext, clock: ManualClock,
                                                           planner: CheckinPlanner) -> None:
    clock.set(utc(2026, 1, 14, 12))  # already 01:45 on 15 January in Chatham
    kolkata = await _participant(ctx, timezone="Asia/Kolkata")
    chatham = await _participant(ctx, timezone="Pacific/Chatham")
    await planner.plan(clock.now())
    assert _due(await _rows(ctx, kolkata)) == {"2026-01-15": utc(2026, 1, 15, 3, 30),
                                               "2026-01-16": utc(2026, 1, 16, 3, 30)}
    assert _due(await _rows(ctx, chatham)) == {"2026-01-15": utc(2026, 1, 14, 19, 15),
                                               "2026-01-16": utc(2026, 1, 15, 19, 15)}


async def test_quiet_hours_across_midnight_defer_or_skip(ctx: AppContext, clock: ManualClock,
                                                         planner: CheckinPlanner) -> None:
    late = await _participant(ctx, checkin_time="23:30", quiet=("22:00", "07:00"))
    await planner.plan(clock.now())  # Monday 09:00 in New York
    rows = await _rows(ctx, late)
    assert rows["2026-03-02"].due_at == utc(2026, 3, 3, 12)  # Tuesday 07:00, when quiet hours end
    assert rows["2026-03-02"].intended_at == utc(2026, 3, 3, 4, 30)  # what they chose, kept on record

    ctx.settings = ctx.settings.replace(schedule=dataclasses.replace(ctx.settings.schedule, quiet_hours_policy="skip"))
    skipper = await _participant(ctx, checkin_time="23:30", quiet=("22:00", "07:00"))
    await planner.plan(clock.now())
    rows = await _rows(ctx, skipper)
    assert rows and all(r.status == ActionStatus.CANCELLED and "quiet hours" in (r.last_error or "")
                        for r in rows.values())
    # Quiet hours changed so that 23:30 is allowed again: the skipped days come back.
    async with ctx.sessionmaker() as s:
        p = await s.get(Participant, skipper)
        assert p is not None
        p.quiet_start, p.quiet_end = "23:45", "07:00"
        await participant_schedule_changed(s, ctx, p)
        await s.commit()
    assert _due(await _rows(ctx, skipper))["2026-03-02"] == utc(2026, 3, 3, 4, 30)


async def test_editing_the_time_after_todays_row_exists_never_duplicates(
        ctx: AppContext, clock: ManualClock, planner: CheckinPlanner) -> None:
    pid = await _participant(ctx, checkin_time="10:00")
    await planner.plan(clock.now())  # 09:00 in New York: today's 10:00 row exists
    before = await _rows(ctx, pid)

    async def change(checkin_time: str) -> None:
        async with ctx.sessionmaker() as s:
            p = await s.get(Participant, pid)
            assert p is not None
            p.checkin_time = checkin_time
            await participant_schedule_changed(s, ctx, p)
            await s.commit()

    await change("11:30")
    after = await _rows(ctx, pid)
    assert after.keys() == before.keys() and after["2026-03-02"].id == before["2026-03-02"].id
    assert _due(after) == {"2026-03-02": utc(2026, 3, 2, 16, 30), "2026-03-03": utc(2026, 3, 3, 16, 30)}
    await change("08:00")  # already past today: no check-in at an odd moment; tomorrow at 08:00
    after = await _rows(ctx, pid)
    assert after["2026-03-02"].status == ActionStatus.CANCELLED
    assert _due(after) == {"2026-03-03": utc(2026, 3, 3, 13), "2026-03-04": utc(2026, 3, 4, 13)}
    await planner.plan(clock.now())
    assert len(await _rows(ctx, pid)) == 3

    # Once today's check-in was sent, a new time changes only the days to come.
    async with ctx.sessionmaker() as s:
        row = await s.get(ScheduledAction, after["2026-03-03"].id)
        assert row is not None
        row.status, row.sent_at = ActionStatus.SENT, utc(2026, 3, 3, 13)
        await s.commit()
    clock.set(utc(2026, 3, 3, 14))
    await change("20:00")
    rows = await _rows(ctx, pid)
    assert rows["2026-03-03"].status == ActionStatus.SENT
    assert _due(rows) == {"2026-03-04": utc(2026, 3, 5, 1)}


async def test_pause_cancels_and_resume_brings_them_back(ctx: AppContext, clock: ManualClock,
                                                         planner: CheckinPlanner) -> None:
    pid = await _participant(ctx, checkin_time="10:00")
    await planner.plan(clock.now())
    async with ctx.sessionmaker() as s:
        p = await s.get(Participant, pid)
        assert p is not None
        await enrollment.pause(s, p, clock.now())
        await participant_schedule_changed(s, ctx, p)
        await s.commit()
    assert _due(await _rows(ctx, pid)) == {}
    await planner.plan(clock.now() + timedelta(days=1))  # paused: nothing new is planned
    assert _due(await _rows(ctx, pid)) == {}
    async with ctx.sessionmaker() as s:
        p = await s.get(Participant, pid)
        assert p is not None
        await enrollment.resume(s, p, clock.now())
        await participant_schedule_changed(s, ctx, p)
        await s.commit()
    assert _due(await _rows(ctx, pid)) == {"2026-03-02": utc(2026, 3, 2, 15), "2026-03-03": utc(2026, 3, 3, 15)}


async def test_a_zone_change_leaves_no_orphans_and_workers_planning_at_once_make_no_duplicates(
        ctx: AppContext, clock: ManualClock, planner: CheckinPlanner) -> None:
    pids = [await _participant(ctx, timezone="Asia/Kolkata") for _ in range(30)]
    others = [CheckinPlanner(ctx) for _ in range(3)]
    await asyncio.gather(*(p.plan(clock.now()) for p in [planner, *others]))
    async with ctx.sessionmaker() as s:
        total = await s.scalar(select(func.count()).select_from(ScheduledAction))
    assert total == 30 * 2  # 2026-03-03 and 2026-03-04 in Kolkata (today's 09:00 IST is past)
    async with ctx.sessionmaker() as s:
        p = await s.get(Participant, pids[0])
        assert p is not None
        p.timezone = "America/New_York"
        await participant_schedule_changed(s, ctx, p)
        await s.commit()
    rows = await _rows(ctx, pids[0])
    # The same two local dates, now at 09:00 in New York; nothing left at the Kolkata times.
    assert len(rows) == 2
    assert _due(rows) == {"2026-03-03": utc(2026, 3, 3, 14), "2026-03-04": utc(2026, 3, 4, 14)}


async def test_rows_overdue_past_the_grace_period_become_visible_as_expired(
        ctx: AppContext, clock: ManualClock, planner: CheckinPlanner) -> None:
    pid = await _participant(ctx, checkin_time="10:00")
    await planner.plan(clock.now())
    clock.set(utc(2026, 3, 2, 16, 1))  # the bot was down from before 10:00 until 11:01 in New York
    worker = OutboxWorker(ctx, None)  # type: ignore[arg-type]  # nothing is sent: it is too late
    await worker.tick()
    rows = await _rows(ctx, pid)
    assert rows["2026-03-02"].status == ActionStatus.EXPIRED
    assert rows["2026-03-02"].last_error == "missed its grace period"
    async with ctx.sessionmaker() as s:
        status = await schedule_status(s, clock.now(), "America/New_York", 12.0)
    assert status.counts["checkin"]["expired"] == 1 and status.checkins_expired == 1
    table = render(status)
    assert "checkin" in table and "expired" in table and "1 expired unsent" in table
