"""A participant's /stop ends their support persons' access at once (#17): in the same update as
the /stop, not at the support planner's next look. On SQLite and PostgreSQL, in process."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.db.models import AuditEntry
from bot.db.support_models import SupportPerson, SupportShare, SupportStatus
from tests.services.test_support_persons import ENDED, MOM, PARTICIPANT, START, invite_mom, scalar
from tests.services.test_support_persons import bot as bot  # the fixture, on both databases
from tests.support.inproc import InProcessBot


async def test_stop_ends_support_persons_access_at_once(bot: InProcessBot) -> None:
    token = await invite_mom(bot, "Checked in this week")
    await bot.say(MOM, f"/start {token}")
    await bot.press(MOM, "I agree")
    await bot.tick()  # the planner has looked: its next look is a plan interval away
    seen = len(bot.texts(MOM))

    await bot.say(PARTICIPANT, "/stop")
    await bot.press(PARTICIPANT, "Yes, stop")
    # Ended in the /stop's own transaction: nothing shared from this moment.
    mom = await scalar(bot, select(SupportPerson).where(SupportPerson.telegram_user_id == MOM))
    assert isinstance(mom, SupportPerson) and mom.status == SupportStatus.REVOKED
    assert await scalar(bot, select(SupportShare.ended_at).where(SupportShare.support_person_id == mom.id))
    assert await scalar(bot, select(AuditEntry.actor).where(AuditEntry.action == f"support_revoked:{mom.id}")) == \
        f"participant:{mom.participant_id}"
    # She is told a second later, long before the planner would have looked again.
    await bot.tick(START + timedelta(seconds=1))
    told = bot.texts(MOM)[seen:]
    assert len(told) == 1 and ENDED in told[0] and "P-SP" not in told[0] and "stop" not in told[0].lower()
    await bot.say(MOM, "/family")
    assert "no longer connected" in bot.last_text(MOM)
