"""Peer-led threads in a cohort's group chat (#17 item 3), in process: the assembled bot talking
HTTP to the local Bot API in group mode, on SQLite and PostgreSQL.

A member opens a thread with `/thread TITLE` in a group with Topics: a forum topic with that title,
the answer in their private chat, the facilitator told in private with a "Close the thread" button;
a title the safety layer flags opens nothing (the crisis reply in private, the facilitators'
notice, the clinician paged); too long a title, a fourth thread in a day, a non-member, a group
without Topics are each answered in private with what to do; the facilitator closes a thread with
the button or /closethread inside it (a participant cannot); opening and closing are audited, and
nothing the bot writes in the group names anyone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.config import load_settings
from bot.db.calendar_models import GroupMembership, ParticipantGroup, ProgramSession
from bot.db.group_models import GroupAgreement, GroupChat, GroupFlag, GroupMember, MemberStatus
from bot.db.models import AuditEntry, Escalation
from bot.sandbox.botapi import FakeBotAPI, RateLimits
from bot.sandbox.botapi.errors import ControlError
from tests.support.databases import create_postgres_database, create_sqlite_database
from tests.support.inproc import InProcessBot, add_participant, add_staff, inproc_settings

REPO = Path(__file__).resolve().parents[2]
CLINICIAN, FACILITATOR, ANA, BEN = 8101, 8102, 8201, 8202
FORUM, PLAIN = -100880000001, -100880000002
START = datetime(2026, 3, 3, 16, 0, tzinfo=UTC)  # a Tuesday, 11:00 in New York (no group quiet hours)


@pytest.fixture(params=["sqlite", "postgres"])
async def bot(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[InProcessBot]:
    from bot.db.engine import make_engine, make_sessionmaker

    url = create_postgres_database() if request.param == "postgres" else create_sqlite_database(tmp_path)
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        clinician = await add_staff(session, "dr-clin", CLINICIAN, START)
        facilitator = await add_staff(session, "dr-fac", FACILITATOR, START)
        ana = await add_participant(session, "P-T1", clinician, ANA, START)
        await add_participant(session, "P-T2", clinician, BEN, START)
        for name, chat_id in (("Tue-Thu", FORUM), ("Weekend", PLAIN)):
            cohort = ParticipantGroup(name=name, created_at=START)
            session.add(cohort)
            await session.flush()
            session.add(ProgramSession(uid=f"threads-{name}", title="Group", kind="group",
                                       first_start=START + timedelta(days=1), duration_minutes=90,
                                       timezone="America/New_York", rrule=None, exdates=[],
                                       video_link="https://example.org/v", facilitator_id=facilitator.id,
                                       group_id=cohort.id, created_at=START, updated_at=START))
            session.add(GroupMembership(group_id=cohort.id, participant_id=ana.id, joined_at=START))
            chat = GroupChat(telegram_chat_id=chat_id, cohort_id=cohort.id, locale="en", linked_by_id=facilitator.id,
                             linked_at=START, bot_status="administrator", prompts_posted=0, created_at=START)
            session.add(chat)
            await session.flush()
            # Ana accepted the agreement and is in both chats; the facilitator is in them too.
            session.add_all([
                GroupMember(group_chat_id=chat.id, telegram_user_id=ANA, participant_id=ana.id,
                            status=MemberStatus.MEMBER, joined_at=START),
                GroupMember(group_chat_id=chat.id, telegram_user_id=FACILITATOR, staff_id=facilitator.id,
                            status=MemberStatus.MEMBER, joined_at=START)])
        session.add(GroupAgreement(participant_id=ana.id, version="2026-12-01", accepted_at=START))
        await session.commit()
    await engine.dispose()
    api = FakeBotAPI(rate_limits=RateLimits(enabled=False))
    await api.start()
    api.create_group(FORUM, FACILITATOR, title="Tue-Thu chat", members=[ANA, BEN], is_forum=True)
    api.create_group(PLAIN, FACILITATOR, title="Weekend chat", members=[ANA])
    settings = inproc_settings(load_settings(REPO / "config.toml", env={"BOT_TOKEN": "42:TEST"}), api, url)
    settings = settings.replace(groups=settings.groups.__class__(prompt_every="off", quiet_start="00:00",
                                                                 quiet_end="00:00"))
    running = await InProcessBot.start(settings, api, ManualClock(START))
    yield running
    await running.close()
    await api.stop()


async def write(bot: InProcessBot, group: int, user: int, text: str, topic: int | None = None) -> None:
    written = bot.api.group_message(group, user, text, message_thread_id=topic)
    await bot.feed({"update_id": written["update_id"], "message": written["message"]})


def topics(bot: InProcessBot) -> list[dict[str, Any]]:
    return list(bot.api.group(FORUM)["topics"])


async def count(bot: InProcessBot, statement: Any) -> int:
    async with bot.ctx.sessionmaker() as session:
        return int(await session.scalar(statement) or 0)


async def test_peer_led_threads(bot: InProcessBot) -> None:
    # Ana opens a thread: the topic, her answer in private, the facilitator told with a button.
    await write(bot, FORUM, ANA, "/thread Sleep after stopping")
    assert [(t["name"], t["closed"]) for t in topics(bot)] == [("Sleep after stopping", False)]
    first = topics(bot)[0]["message_thread_id"]
    assert "Your thread “Sleep after stopping” is open" in bot.last_text(ANA)
    notice = bot.messages(FACILITATOR)[-1]
    assert "P-T1" in notice["visible_text"] and "Sleep after stopping" in notice["visible_text"]
    assert [b["text"] for row in notice["reply_markup"]["inline_keyboard"] for b in row] == ["Close the thread"]
    await write(bot, FORUM, ANA, "Anyone else up at 3am?", topic=first)  # members write in it

    # A title the safety layer flags opens nothing: the crisis reply and a word in private, the
    # facilitators' notice, the clinician paged.
    seen = len(bot.texts(ANA))
    await write(bot, FORUM, ANA, "/thread I want to kill myself tonight")
    ana = bot.texts(ANA)[seen:]
    assert len(topics(bot)) == 1
    assert len(ana) == 2 and "You wrote something in the group chat that worried me" in ana[0]
    assert "I didn't open a thread with that title" in ana[1]
    await bot.tick()
    assert await count(bot, select(func.count()).select_from(Escalation)) == 1
    assert await count(bot, select(func.count()).select_from(GroupFlag)) == 1
    assert any("P-T1" in t for t in bot.texts(CLINICIAN))
    assert any("Group chat of Tue-Thu" in t and "flagged" in t for t in bot.texts(FACILITATOR))

    # Too long; someone who is not a member; a group without Topics: each told in private what to do.
    await write(bot, FORUM, ANA, "/thread " + "x" * 70)
    assert "That title is 70 characters. Please keep it to 64" in bot.last_text(ANA)
    await write(bot, FORUM, ANA, "/thread")
    assert "To open a thread in your group chat, write /thread and a short title" in bot.last_text(ANA)
    await write(bot, FORUM, BEN, "/thread Hello all")
    assert "Only members of the group chat can open a thread" in bot.last_text(BEN)
    await write(bot, PLAIN, ANA, "/thread Weekend plans")
    assert "doesn't have Topics turned on" in bot.last_text(ANA) and "manage topics" in bot.last_text(ANA)
    assert bot.api.group(PLAIN)["topics"] == []

    # At most three a day.
    await write(bot, FORUM, ANA, "/thread Cravings")
    await write(bot, FORUM, ANA, "/thread Good news")
    await write(bot, FORUM, ANA, "/thread One more")
    assert "You've opened 3 threads today" in bot.last_text(ANA)
    assert [t["name"] for t in topics(bot)] == ["Sleep after stopping", "Cravings", "Good news"]
    second, third = topics(bot)[1]["message_thread_id"], topics(bot)[2]["message_thread_id"]

    # The facilitator closes the first with the button, the second with /closethread inside it;
    # Ana cannot close the third.
    await bot.press_data(FACILITATOR, notice["message_id"], notice["reply_markup"]["inline_keyboard"][0][0]
                         ["callback_data"])
    assert "Thread closed by dr-fac" in bot.last_text(FACILITATOR)
    await write(bot, FORUM, FACILITATOR, "/closethread", topic=second)
    await write(bot, FORUM, ANA, "/closethread", topic=third)
    assert "Only the group's leaders can close a thread" in bot.last_text(ANA)
    await bot.tick()
    assert [t["closed"] for t in topics(bot)] == [True, True, False]
    with pytest.raises(ControlError, match="closed"):
        bot.api.group_message(FORUM, ANA, "still here?", message_thread_id=first)

    # Audited; and nothing the bot wrote in either group names anyone.
    actions = await count(bot, select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action.like("group_thread_%"), AuditEntry.allowed.is_(True)))
    refused = await count(bot, select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action.like("refused:%thread%")))
    assert (actions, refused) == (5, 5)  # 3 opened + 2 closed; flagged, no member, no topics, 4th, Ana's close
    for group in (FORUM, PLAIN):
        for message in bot.api.chat(group)["messages"]:
            for word in ("P-T1", "P-T2", "dr-fac", "dr-clin"):
                assert word not in (message.get("visible_text") or "")
