"""The sandbox demo's participants arrive with weeks of history a clinician can look at: daily
check-ins and weekly PHQ-9 and GAD-7 whose totals ease over the weeks (what /trend and the brief
show in the demo)."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.db.instrument_models import InstrumentAnswer, InstrumentScore
from bot.db.models import Participant
from bot.sandbox.demo import seed_records
from bot.services.caseload import questionnaire_trends
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
