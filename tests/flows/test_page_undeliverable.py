"""A clinician who cannot be reached (they blocked the bot) does not stop the paging chain."""

from __future__ import annotations

from sqlalchemy import select

from bot.db.models import ActionStatus, ScheduledAction
from bot.sandbox.botapi import FakeBotAPI
from tests.support.inproc import InProcessBot, add_participant, add_staff


async def test_an_undeliverable_page_moves_on_to_the_backup_at_once(inbot: InProcessBot, api: FakeBotAPI) -> None:
    now = inbot.clock.now()
    async with inbot.ctx.sessionmaker() as session:
        therapist = await add_staff(session, "dr-a", 900, now)
        backup = await add_staff(session, "dr-b", 901, now)
        participant = await add_participant(session, "P-1", therapist, 77, now)
        participant.backup_id = backup.id
        await session.commit()
    api.block(900, notify=False)  # the assigned clinician blocked the bot

    await inbot.say(77, "I want to kill myself")
    assert "988" in inbot.texts(77)[0]
    await inbot.tick()  # the first page: 403 from Telegram
    await inbot.tick()  # the next page, due at once, not after the 30 minutes for an acknowledgement

    backup_texts = inbot.texts(901)
    assert len([t for t in backup_texts if "Safety alert" in t]) == 1, backup_texts
    assert "P-1" in backup_texts[-1]
    async with inbot.ctx.sessionmaker() as session:
        first = await session.scalar(select(ScheduledAction).where(ScheduledAction.key.like("esc:%:step:0")))
    assert first is not None and first.status == ActionStatus.FAILED  # visible, not silently dropped
