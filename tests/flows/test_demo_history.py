"""The sandbox demo's participants arrive with weeks of history a clinician can look at: daily
check-ins and weekly PHQ-9 and GAD-7 whose totals ease over the weeks (what /trend and the brief
show in the demo), goals with weekly ratings that rise, and a medication reminder with its doses."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.goal_models import Goal, GoalRating
from bot.db.instrument_models import InstrumentAnswer, InstrumentScore
from bot.db.medication_models import DoseStatus, MedicationConsent, MedicationDose, MedicationReminder
from bot.db.models import ActionStatus, Participant, ScheduledAction
from bot.sandbox.demo import seed_records
from bot.services.caseload import questionnaire_trends
from bot.services.goals.summary import goal_lines, goal_progress
from bot.services.medications.summary import adherence, adherence_line
from bot.services.participants import export_own_data
from tests.support.inproc import InProcessBot


async def test_demo_participants_have_weekly_questionnaires_that_ease(inbot: InProcessBot) -> None:
    now = inbot.clock.now()
    async with inbot.ctx.sessionmaker() as s:
        await seed_records(s, inbot.ctx, now)
        await s.commit()
    async with inbot.ctx.sessionmaker() as s:
        await seed_records(s, inbot.ctx, now)  # a second start of the sandbox adds nothing
        await s.commit()
    async with inbot.ctx.sessionmaker() as s:
        p101 = await s.scalar(select(Participant).where(Participant.alias == "P-101"))
        assert p101 is not None
        trends = (await questionnaire_trends(s, [p101.id], per_questionnaire=8))[p101.id]
        answers = await s.scalar(select(func.count()).select_from(InstrumentAnswer)
                                 .where(InstrumentAnswer.participant_id == p101.id))
        scores = (await s.scalars(select(InstrumentScore).where(InstrumentScore.participant_id == p101.id))).all()
    assert [t.instrument_id for t in trends] == ["phq9", "gad7"]
    for trend in trends:
        assert len(trend.scores) == 2  # three weeks in: two weekly questionnaires completed
        assert trend.scores[-1].total < trend.scores[0].total  # easing
    assert answers == 9 * 2 + 7 * 2  # an answer per item, as the flow stores them
    assert all(s.level == 0 for s in scores)  # no safety item in the demo's own history


async def _counts(s: AsyncSession) -> dict[str, int]:
    tables: dict[str, Any] = {"goals": Goal, "ratings": GoalRating, "reminders": MedicationReminder,
                              "doses": MedicationDose, "consents": MedicationConsent, "rows": ScheduledAction}
    return {name: int(await s.scalar(select(func.count()).select_from(table)) or 0)
            for name, table in tables.items()}


async def test_demo_participants_have_goals_that_rise_and_a_medication_reminder_mostly_taken(
        inbot: InProcessBot) -> None:
    now = inbot.clock.now()
    async with inbot.ctx.sessionmaker() as s:
        await seed_records(s, inbot.ctx, now)
        await s.commit()
    async with inbot.ctx.sessionmaker() as s:
        before = await _counts(s)
        await seed_records(s, inbot.ctx, now)  # a second start of the sandbox adds nothing
        await s.commit()
    async with inbot.ctx.sessionmaker() as s:
        assert await _counts(s) == before
        ids = dict((await s.execute(select(Participant.alias, Participant.id))).all())
        p101 = await s.get(Participant, ids["P-101"])
        assert p101 is not None

        # Goals: two each, rated weekly over their three weeks, rising; the prompt rows answered.
        for alias in ("P-101", "P-102"):
            progress = await goal_progress(s, ids[alias])
            assert len(progress) == 2 and not any(g.done for g in progress)
            for goal in progress:
                values = [r.value for r in goal.ratings]
                assert 2 <= len(values) <= 3 and values[-1] > values[0], (alias, values)
        ratings = (await s.scalars(select(GoalRating).where(GoalRating.participant_id == p101.id))).all()
        assert all(r.run_id is not None and r.local_date is not None for r in ratings)
        assert any(r.note for r in ratings)  # a line of their own on some weeks
        prompts = (await s.scalars(select(ScheduledAction).where(
            ScheduledAction.participant_id == p101.id, ScheduledAction.kind == "goal_progress",
            ScheduledAction.status == ActionStatus.ANSWERED))).all()
        assert len(prompts) == len(ratings) // 2
        lines = goal_lines(inbot.ctx, await goal_progress(s, p101.id), "en")
        assert lines[0].startswith("Goal: Walk 20 minutes after dinner · ") and " → " in lines[0]
        assert lines[1].startswith("Goal: In bed by 11 on weeknights · ")

        # Medication: "morning meds" at 08:00 every day (P-102's without a name), a dose a day
        # since they joined, mostly taken; P-101 agreed that the care team is told of misses.
        reminders = {r.participant_id: r for r in (await s.scalars(select(MedicationReminder))).all()}
        assert (reminders[p101.id].name, reminders[p101.id].times, reminders[p101.id].days) == (
            "morning meds", "08:00", "")
        assert reminders[ids["P-102"]].name is None
        doses = (await s.scalars(select(MedicationDose).where(MedicationDose.participant_id == p101.id))).all()
        taken = sum(d.status == DoseStatus.TAKEN for d in doses)
        assert 20 <= len(doses) <= 22 and taken == len(doses) - 3  # mostly taken
        assert sum(d.status == DoseStatus.MISSED for d in doses) == 1
        assert len({d.local_date for d in doses}) == len(doses)
        consents = {c.participant_id: c.agreed for c in (await s.scalars(select(MedicationConsent))).all()}
        assert consents == {p101.id: True, ids["P-102"]: False}
        coming = await s.scalar(select(func.count()).select_from(ScheduledAction).where(
            ScheduledAction.participant_id == p101.id, ScheduledAction.kind == "med_reminder",
            ScheduledAction.status == ActionStatus.PENDING))
        assert coming  # the next doses are planned, so the sandbox's clock can bring them
        line = adherence_line(inbot.ctx, await adherence(s, p101.id, now - timedelta(days=30), now), "en")
        assert line is not None and line.startswith(f"Medication reminders: {taken} of {len(doses)} taken")

        # Their own copy has it all, with the words readable.
        mine = json.loads(await export_own_data(s, p101, now))
    assert [g["goal"] for g in mine["goals"]] == ["Walk 20 minutes after dinner", "In bed by 11 on weeknights"]
    assert all(len(g["ratings"]) >= 2 for g in mine["goals"])
    assert mine["medications"]["reminders"][0]["name"] == "morning meds"
    assert len(mine["medications"]["doses"]) == len(doses)
