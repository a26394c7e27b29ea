"""Missed doses and the clinician's notice, on SQLite and PostgreSQL: three unanswered in a row tell
the assigned clinician once, with the alias and the count, only when the participant agreed; no
consent, a revoked one, a paused participant, or the setting at 0 tell nobody."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.context import AppContext
from bot.db.medication_models import DoseStatus, MedicationDose, MedicationReminder
from bot.db.models import ParticipantStatus, ScheduledAction
from bot.services.medications.service import close_missed, set_consent
from tests.support.inproc import add_participant, add_staff

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


async def _reminder_with_missed_doses(ctx: AppContext, consent: bool | None, missed: int,
                                      status: str = ParticipantStatus.ACTIVE) -> int:
    async with ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-lee", 900_001, NOW)
        p = await add_participant(s, "P-101", dr, 5_001, NOW)
        p.status = status
        if consent is not None:
            await set_consent(ctx, s, p, consent)
        reminder = MedicationReminder(participant_id=p.id, name="morning pill", times="08:00", days="",
                                      created_at=NOW)
        s.add(reminder)
        await s.flush()
        for n in range(missed):
            due = NOW - timedelta(days=missed - n)
            s.add(MedicationDose(reminder_id=reminder.id, participant_id=p.id, local_date=date(2026, 2, 20 + n),
                                 local_time="08:00", due_at=due, sent_at=due, status=DoseStatus.PENDING,
                                 deadline_at=due + timedelta(hours=2), snoozes=0))
        await s.commit()
        return p.id


async def _notices(ctx: AppContext) -> list[ScheduledAction]:
    async with ctx.sessionmaker() as s:
        return list((await s.scalars(select(ScheduledAction).where(ScheduledAction.kind == "staff_notice"))).all())


async def test_three_in_a_row_with_consent_tell_the_clinician_once(ctx: AppContext) -> None:
    await _reminder_with_missed_doses(ctx, consent=True, missed=3)
    assert await close_missed(ctx, NOW) == 1
    assert await close_missed(ctx, NOW + timedelta(minutes=5)) == 0
    [notice] = await _notices(ctx)
    assert notice.payload == {"notice": "missed_doses", "count": 3} and notice.staff_id is not None
    text = ctx.t("notice.missed_doses", "en", alias="P-101", count=3)
    assert text == "<b>P-101</b> has missed 3 doses in a row of a reminder they set."


async def test_two_in_a_row_tell_nobody_yet(ctx: AppContext) -> None:
    await _reminder_with_missed_doses(ctx, consent=True, missed=2)
    assert await close_missed(ctx, NOW) == 0
    async with ctx.sessionmaker() as s:
        assert {d.status for d in (await s.scalars(select(MedicationDose))).all()} == {DoseStatus.MISSED}


@pytest.mark.parametrize("consent", [False, None], ids=["said-no", "never-asked"])
async def test_without_consent_no_notice(ctx: AppContext, consent: bool | None) -> None:
    await _reminder_with_missed_doses(ctx, consent=consent, missed=4)
    assert await close_missed(ctx, NOW) == 0
    assert await _notices(ctx) == []


async def test_revoked_consent_no_notice(ctx: AppContext) -> None:
    pid = await _reminder_with_missed_doses(ctx, consent=True, missed=3)
    async with ctx.sessionmaker() as s:
        from bot.db.models import Participant

        participant = await s.get(Participant, pid)
        assert participant is not None
        await set_consent(ctx, s, participant, False)
        await s.commit()
    assert await close_missed(ctx, NOW) == 0
    assert await _notices(ctx) == []


async def test_paused_participant_or_setting_off_no_notice(ctx: AppContext) -> None:
    await _reminder_with_missed_doses(ctx, consent=True, missed=3, status=ParticipantStatus.PAUSED)
    assert await close_missed(ctx, NOW) == 0
    ctx.settings = ctx.settings.replace(
        medications=dataclasses.replace(ctx.settings.medications, notify_after_missed=0))
    assert await close_missed(ctx, NOW) == 0
    assert await _notices(ctx) == []
