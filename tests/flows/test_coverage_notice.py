"""The daily coverage notice: while a participant has no reachable clinician, backup or on-call,
every reachable lead and admin is told once a day, from the scheduler tick (in process)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.db.models import ScheduledAction, Staff, StaffRole
from bot.sandbox.botapi import FakeBotAPI
from bot.services.escalation.coverage import COVERAGE_NOTICE, plan_coverage_notices
from tests.support.inproc import InProcessBot, add_participant, add_staff

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 09:00 in New York, the program's time zone


async def test_leads_get_one_notice_a_day_while_a_gap_lasts(inbot: InProcessBot, api: FakeBotAPI) -> None:
    ctx, clock = inbot.ctx, inbot.clock
    clock.set(NOW - timedelta(hours=2))  # 07:00 in New York: before [coverage] notice_time (08:00)
    now = clock.now()
    async with ctx.sessionmaker() as s:
        late = Staff(alias="dr-late", role="therapist", created_at=now)  # never opened the invite
        s.add(late)
        await s.flush()
        await add_participant(s, "P-9", late, 9, now)
        fine = await add_staff(s, "dr-fine", 940, now)
        await add_participant(s, "P-8", fine, 8, now)
        s.add(Staff(alias="lin", role=StaffRole.LEAD, telegram_user_id=950, chat_id=950, created_at=now))
        s.add(Staff(alias="ada", role=StaffRole.ADMIN, telegram_user_id=951, chat_id=951, created_at=now))
        s.add(Staff(alias="old", role=StaffRole.LEAD, telegram_user_id=952, chat_id=952, created_at=now,
                    active=False))
        await s.commit()
    await inbot.tick()
    assert inbot.texts(950) == []  # not before the notice time

    clock.set(NOW)
    await inbot.tick()
    for lead in (950, 951):  # a crisis of P-9's would reach only the leads: they are told
        texts = inbot.texts(lead)
        assert len(texts) == 1 and "Coverage gap" in texts[0] and "P-9" in texts[0], texts
        assert "P-8" not in texts[0]
    assert inbot.texts(952) == []  # deactivated
    clock.set(NOW + timedelta(hours=3))
    await inbot.tick()
    assert len(inbot.texts(950)) == 1  # once a day

    clock.set(NOW + timedelta(days=1))
    await inbot.tick()
    assert len(inbot.texts(950)) == 2  # the next day: still a gap
    async with ctx.sessionmaker() as s:  # fixed: dr-late opened the link
        late = await s.scalar(select(Staff).where(Staff.alias == "dr-late"))
        late.chat_id = late.telegram_user_id = 941
        await s.commit()
        assert await plan_coverage_notices(s, ctx.settings, NOW + timedelta(days=2)) == 0
    clock.set(NOW + timedelta(days=2))
    await inbot.tick()
    assert len(inbot.texts(950)) == 2
    async with ctx.sessionmaker() as s:
        rows = (await s.scalars(select(ScheduledAction).where(ScheduledAction.kind == COVERAGE_NOTICE))).all()
        assert sorted(r.key for r in rows) == [f"{COVERAGE_NOTICE}:2026-03-02:{i}" for i in (3, 4)] + [
            f"{COVERAGE_NOTICE}:2026-03-03:{i}" for i in (3, 4)]
