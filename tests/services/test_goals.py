"""Goals in the core, on SQLite and PostgreSQL: at most three open, words cleaned and checked; the
weekly prompt planned on the goal day after the check-in time in the participant's zone across a
DST change, only while a goal is open and the participant active; the trajectory for clinicians
(`goal_progress`, `goal_lines`) in English and Spanish; goal words and lines encrypted at rest
when a data key is set; the participant's export."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from bot.clock import ManualClock
from bot.context import AppContext
from bot.db.goal_models import Goal, GoalRating
from bot.db.models import ActionStatus, Participant, ScheduledAction
from bot.db.types import configure_encryption
from bot.services import enrollment
from bot.services.goals import service as goals
from bot.services.goals.planner import GoalPlanner
from bot.services.goals.service import Change
from bot.services.goals.summary import GoalProgress, RatingPoint, goal_lines, goal_progress
from bot.services.scheduling.hooks import participant_schedule_changed
from tests.support.inproc import add_participant, add_staff


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def plain_text_afterwards() -> Iterator[None]:
    yield
    configure_encryption("")  # process-wide: leave it as the other tests expect


@pytest.fixture
def planner(ctx: AppContext) -> GoalPlanner:
    s = ctx.settings
    ctx.settings = s.replace(schedule=dataclasses.replace(s.schedule, jitter_minutes=0.0))
    planner = ctx.parts.add(GoalPlanner(ctx))
    ctx.replanners.append(planner)
    return planner


async def _participant(ctx: AppContext, **kwargs: object) -> int:
    async with ctx.sessionmaker() as s:
        dr = await s.scalar(select(enrollment.Staff).limit(1)) or await add_staff(s, "dr-lee", 900_001, ctx.clock.now())
        count = await s.scalar(select(func.count()).select_from(Participant)) or 0
        p = await add_participant(s, f"P-{count + 1}", dr, 5_000 + count, ctx.clock.now(), **kwargs)  # type: ignore[arg-type]
        await s.commit()
        return p.id


async def _add(ctx: AppContext, pid: int, words: str) -> tuple[Change, int | None]:
    async with ctx.sessionmaker() as s:
        participant = await s.get(Participant, pid)
        assert participant is not None
        outcome, goal = await goals.add_goal(s, ctx, participant, words, f"participant:{pid}")
        await s.commit()
        return outcome, goal.id if goal else None


async def _pending(ctx: AppContext, pid: int) -> dict[str, datetime]:
    async with ctx.sessionmaker() as s:
        rows = (await s.scalars(select(ScheduledAction).where(ScheduledAction.participant_id == pid,
                                                              ScheduledAction.kind == "goal_progress"))).all()
    return {r.key.rsplit(":", 1)[1]: r.due_at for r in rows if r.status == ActionStatus.PENDING}


async def test_at_most_three_open_goals_in_clean_words(ctx: AppContext, planner: GoalPlanner) -> None:
    pid = await _participant(ctx)
    assert await _add(ctx, pid, "  ") == (Change.EMPTY, None)
    assert (await _add(ctx, pid, "x" * (goals.MAX_CHARS + 1)))[0] is Change.TOO_LONG
    first = await _add(ctx, pid, "Walk\n10   minutes")
    assert first[0] is Change.DONE
    assert (await _add(ctx, pid, "Two"))[0] is Change.DONE
    assert (await _add(ctx, pid, "Three"))[0] is Change.DONE
    assert await _add(ctx, pid, "Four") == (Change.FULL, None)
    other = await _participant(ctx)
    async with ctx.sessionmaker() as s:
        p, q = await s.get(Participant, pid), await s.get(Participant, other)
        assert p is not None and q is not None
        assert first[1] is not None
        # Another participant's goal id (an old or forged button) changes nothing.
        assert (await goals.mark_done(s, ctx, q, first[1], "participant:2"))[0] is Change.GONE
        assert (await goals.edit_goal(s, ctx, q, first[1], "Mine now", "participant:2"))[0] is Change.GONE
        assert (await goals.mark_done(s, ctx, p, first[1], f"participant:{pid}"))[0] is Change.DONE
        assert (await goals.mark_done(s, ctx, p, first[1], f"participant:{pid}"))[0] is Change.GONE
        await s.commit()
        assert [g.text for g in await goals.open_goals(s, pid)] == ["Two", "Three"]
    assert (await _add(ctx, pid, "Four"))[0] is Change.DONE  # room again once one is done


async def test_prompt_planned_on_the_goal_day_across_spring_forward(ctx: AppContext, clock: ManualClock,
                                                                    planner: GoalPlanner) -> None:
    clock.set(utc(2026, 3, 2, 10))  # Monday 05:00 in New York, EST
    pid = await _participant(ctx)  # check-in 09:00: the prompt at 09:45 on Friday
    await planner.plan(clock.now())
    assert await _pending(ctx, pid) == {}  # no goal, no prompt
    await _add(ctx, pid, "Walk daily")  # planned in that transaction
    assert await _pending(ctx, pid) == {"2026-03-06": utc(2026, 3, 6, 14, 45)}  # 09:45 EST
    clock.set(utc(2026, 3, 7, 12))  # Saturday; clocks spring forward on Sunday March 8
    await planner.plan(clock.now())
    assert (await _pending(ctx, pid))["2026-03-13"] == utc(2026, 3, 13, 13, 45)  # 09:45 EDT
    assert await planner.plan(clock.now()) == 0  # idempotent on the row key

    ctx.settings = ctx.settings.replace(goals=dataclasses.replace(ctx.settings.goals, day="sunday",
                                                                  minutes_after_checkin=0))
    async with ctx.sessionmaker() as s:
        participant = await s.get(Participant, pid)
        assert participant is not None
        await participant_schedule_changed(s, ctx, participant)  # the program's day changed: moved
        await s.commit()
    moved = await _pending(ctx, pid)
    assert moved["2026-03-08"] == utc(2026, 3, 8, 13, 0)  # 09:00 EDT, on the DST day itself
    assert "2026-03-13" not in moved  # no longer a prompt day: cancelled


async def test_prompt_only_while_a_goal_is_open_and_the_participant_active(
        ctx: AppContext, clock: ManualClock, planner: GoalPlanner) -> None:
    pid = await _participant(ctx)
    _, goal_id = await _add(ctx, pid, "Walk daily")
    assert goal_id is not None and list(await _pending(ctx, pid)) == ["2026-03-06"]
    async with ctx.sessionmaker() as s:
        participant = await s.get(Participant, pid)
        assert participant is not None
        await enrollment.pause(s, participant, clock.now())
        await participant_schedule_changed(s, ctx, participant)
        await s.commit()
    assert await _pending(ctx, pid) == {}
    await planner.plan(clock.now())
    assert await _pending(ctx, pid) == {}  # paused: nothing planned
    async with ctx.sessionmaker() as s:
        participant = await s.get(Participant, pid)
        assert participant is not None
        await enrollment.resume(s, participant, clock.now())
        await participant_schedule_changed(s, ctx, participant)
        await s.commit()
    assert list(await _pending(ctx, pid)) == ["2026-03-06"]  # the cancelled day comes back
    async with ctx.sessionmaker() as s:
        participant = await s.get(Participant, pid)
        assert participant is not None
        await goals.mark_done(s, ctx, participant, goal_id, f"participant:{pid}")
        await s.commit()
    assert await _pending(ctx, pid) == {}  # the last goal done: no prompt
    ctx.settings = ctx.settings.replace(goals=dataclasses.replace(ctx.settings.goals, enabled=False))
    await _add(ctx, pid, "Sleep by 11")
    await planner.plan(clock.now())
    assert await _pending(ctx, pid) == {}  # [goals] enabled = false: goals, but no prompt


async def _rate(ctx: AppContext, pid: int, goal_id: int, value: int, at: datetime, note: str | None = None) -> None:
    async with ctx.sessionmaker() as s:
        s.add(GoalRating(goal_id=goal_id, participant_id=pid, value=value, note=note, rated_at=at))
        await s.commit()


async def test_trajectory_for_clinicians(ctx: AppContext, clock: ManualClock, planner: GoalPlanner) -> None:
    start = clock.now()
    pid = await _participant(ctx)
    _, walk = await _add(ctx, pid, "Walk daily")
    _, sleep = await _add(ctx, pid, "Sleep by 11")
    _, call = await _add(ctx, pid, "Call my sister")
    assert walk and sleep and call
    for week, value in enumerate((3, 5, 6)):
        await _rate(ctx, pid, walk, value, start + timedelta(days=7 * week), note="ok" if week == 1 else None)
    await _rate(ctx, pid, call, 8, start + timedelta(days=1))
    clock.set(start + timedelta(days=16))
    async with ctx.sessionmaker() as s:
        participant = await s.get(Participant, pid)
        assert participant is not None
        await goals.mark_done(s, ctx, participant, call, "staff:1")
        await s.commit()
        progress = await goal_progress(s, pid)
        later = await goal_progress(s, pid, since=clock.now() + timedelta(minutes=1))
    assert [(g.text, g.done) for g in progress] == [("Walk daily", False), ("Sleep by 11", False),
                                                   ("Call my sister", True)]
    assert progress[0].ratings == (RatingPoint(start, 3, False), RatingPoint(start + timedelta(days=7), 5, True),
                                   RatingPoint(start + timedelta(days=14), 6, False))
    assert progress[0].ratings[-1].at == start + timedelta(days=14)
    with pytest.raises(dataclasses.FrozenInstanceError):
        progress[0].text = "changed"  # type: ignore[misc]
    assert [g.text for g in later] == ["Walk daily", "Sleep by 11"]  # done before `since`: left out
    assert isinstance(later[0], GoalProgress)

    lines = goal_lines(ctx, progress, "en")
    assert lines == ["Goal: Walk daily · 3 → 5 → 6 (last: 2 days ago)", "Goal: Sleep by 11 · no ratings yet",
                     "Goal done: Call my sister · 8"]
    assert goal_lines(ctx, progress, "es")[0] == "Meta: Walk daily · 3 → 5 → 6 (última: hace 2 días)"
    assert goal_lines(ctx, [], "en") == []


async def test_goal_words_and_lines_are_encrypted_at_rest_and_exported(ctx: AppContext,
                                                                       planner: GoalPlanner) -> None:
    configure_encryption("a-data-key-for-this-test-0123456789")
    pid = await _participant(ctx)
    _, goal_id = await _add(ctx, pid, "Stay away from the bar on Fridays")
    assert goal_id is not None
    await _rate(ctx, pid, goal_id, 4, ctx.clock.now(), note="Went once, left early")
    async with ctx.sessionmaker() as s:
        raw_goal = (await s.execute(text("SELECT text FROM goals"))).scalar_one()
        raw_note = (await s.execute(text("SELECT note FROM goal_ratings"))).scalar_one()
        exported = await goals.goals_for_export(s, pid)
        stored = await s.scalar(select(Goal))
    assert raw_goal.startswith("enc:") and "bar" not in raw_goal
    assert raw_note.startswith("enc:") and "early" not in raw_note
    assert stored is not None and stored.text == "Stay away from the bar on Fridays"
    assert exported == [{"goal": "Stay away from the bar on Fridays", "status": "open",
                         "added_at": ctx.clock.now().isoformat(), "done_at": None,
                         "ratings": [{"rated_at": ctx.clock.now().isoformat(), "value": 4,
                                      "note": "Went once, left early"}]}]
