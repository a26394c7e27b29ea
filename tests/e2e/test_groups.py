"""Peer groups end to end: the real `iopbot run` process over HTTP with the local Bot API in group
mode, on SQLite and PostgreSQL, one bot per database for the whole story:

- staff add the bot to a supergroup as an admin (it says it must be linked) and link it with
  /linkgroup; an unenrolled user's join request is declined; an enrolled participant accepts the
  agreement in private, gets their own link, and is let in;
- a crisis written in the group gets the crisis reply in the writer's private chat, their
  clinician is paged, the facilitators are told and one hides the message; a peer's worried reply
  pages nobody about the peer; nothing the bot wrote in the group names anyone;
- a discharged participant is taken out of the group;
- a burst of 25 joins: the welcomes stay within Telegram's 20 a minute in one group, as the local
  Bot API measures it (its clock is the bot's clock, moved by the test), with no 429.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.clock import OffsetFileClock
from bot.db.calendar_models import GroupMembership, ParticipantGroup, ProgramSession
from bot.db.engine import make_engine, make_sessionmaker
from bot.db.group_models import GroupAgreement, GroupFlag
from bot.db.models import Escalation, Participant, ParticipantStatus, ScheduledAction, Staff
from bot.sandbox.botapi import BotAPIControl, FakeBotAPI, RateLimits
from tests.support.e2e import BotProcess, Person, buttons, enroll_participant, enroll_staff, new_user_id, running

pytestmark = pytest.mark.e2e

GROUP = -100777000111
COHORT = "Tue-Thu"
CRISIS = "I want to kill myself tonight"
WORRIED = "you said you want to die, are you ok?"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Path:
    # One per database: a bot, its clock and a local Bot API of its own (the group lives there).
    return tmp_path_factory.mktemp("groups-bot")


@pytest.fixture(scope="module")
async def botapi(workdir: Path) -> AsyncIterator[FakeBotAPI]:
    # The Bot API's sense of elapsed time is the bot's clock (wall time plus the offset the test
    # moves), so "a minute later" for the group's limit needs no sleeping.
    clock = OffsetFileClock(workdir / "clock-offset")
    api = FakeBotAPI(rate_limits=RateLimits(per_chat_per_second=100.0, per_chat_burst=100.0),
                     monotonic=lambda: time.monotonic() + clock.now().timestamp() - time.time())
    await api.start()
    yield api
    await api.stop()


@pytest.fixture(scope="module")
async def bot(workdir: Path, botapi: FakeBotAPI, module_db_url: str,
              control: BotAPIControl) -> AsyncIterator[BotProcess]:
    # No group quiet hours and no prompts: the story must not depend on the hour it runs at.
    proc = BotProcess(workdir, botapi.base_url or "", module_db_url,
                      extra_config='[groups]\nquiet_start = "00:00"\nquiet_end = "00:00"\nprompt_every = "off"')
    async with running(proc, control):
        yield proc


async def _db(db_url: str, work: Any) -> Any:
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


async def _cohort(db_url: str, facilitator: str, members: list[str]) -> None:
    """The cohort (a group of the session calendar) with a session its facilitator leads."""
    async def work(session: Any) -> None:
        now = datetime.now(UTC)
        staff = await session.scalar(select(Staff).where(Staff.alias == facilitator))
        cohort = ParticipantGroup(name=COHORT, created_at=now)
        session.add(cohort)
        await session.flush()
        session.add(ProgramSession(uid="groups-e2e", title="Evening group", kind="group",
                                   first_start=now + timedelta(days=1), duration_minutes=90,
                                   timezone="America/Chicago", rrule=None, exdates=[],
                                   video_link="https://example.org/v", facilitator_id=staff.id, group_id=cohort.id,
                                   created_at=now, updated_at=now))
        for alias in members:
            participant = await session.scalar(select(Participant).where(Participant.alias == alias))
            session.add(GroupMembership(group_id=cohort.id, participant_id=participant.id, joined_at=now))

    await _db(db_url, work)


async def _group_texts(control: BotAPIControl) -> list[str]:
    return [m.get("visible_text") or "" for m in (await control.chat(GROUP))["messages"]]


async def _until(check: Any, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


async def _join_by_agreement(person: Person, control: BotAPIControl) -> str:
    """/group → the agreement → "I agree" → their own link; returns the link."""
    await person.say("/group")
    agreement = await person.wait_for_message("Before you join the group chat")
    assert buttons(agreement) == ["I agree", "Not now"]
    await person.press("I agree")
    await person.wait_for_message("You agreed to the group chat agreement")
    message = await person.wait_for_message("Here is your own link to the group chat")
    return str(message["reply_markup"]["inline_keyboard"][0][0]["url"])


async def test_a_cohort_group_kept_safe_end_to_end(bot: BotProcess, control: BotAPIControl,
                                                   botapi: FakeBotAPI) -> None:
    facilitator = await enroll_staff(bot, control, "dr-fac")
    clinician = await enroll_staff(bot, control, "dr-clin")
    ana = await enroll_participant(bot, control, "P-G1", "dr-clin")
    ben = await enroll_participant(bot, control, "P-G2", "dr-clin")
    await _cohort(bot.db_url, "dr-fac", ["P-G1", "P-G2"])

    # The facilitator makes the group and adds the bot as an admin: it says it must be linked.
    await control.create_group(GROUP, facilitator.user_id, title="Evening group chat")
    await _until(lambda: _contains(control, "not linked to a program group"))
    await control.group_message(GROUP, facilitator.user_id, f"/linkgroup@iopbot_test_bot {COHORT}")
    linked = await facilitator.wait_for_message("Linked")
    assert COHORT in linked["visible_text"] and "2 active participants" in linked["visible_text"]
    await _until(lambda: _contains(control, "I read every message here for safety"))

    # Ana accepts the agreement and gets her own link; before she uses it, a stranger tries it.
    link = await _join_by_agreement(ana, control)
    stranger = new_user_id()
    await control.join_with_link(stranger, link)
    await _until(lambda: _decided(control, stranger))
    decision = (await control.group(GROUP))["decided"][-1]
    assert (decision["user_id"], decision["approved"]) == (stranger, False)
    await control.join_with_link(ana.user_id, link)
    await _until(lambda: _member(control, ana.user_id))
    view = await control.group(GROUP)
    assert str(stranger) not in view["members"] or view["members"][str(stranger)] != "member"
    await _until(lambda: _revoked(control, link))  # used: revoked (just after the approval, not with it)
    agreed = await _db(bot.db_url, lambda s: s.scalar(select(GroupAgreement.version)))
    assert agreed == "2026-12-01"
    await _join_by_agreement(ben, control)
    ben_link = (await ben.wait_for_message("Here is your own link"))["reply_markup"]["inline_keyboard"][0][0]["url"]
    await control.join_with_link(ben.user_id, ben_link)
    await _until(lambda: _member(control, ben.user_id))

    # A crisis in the group: the reply in Ana's private chat, her clinician paged, the facilitator told.
    await _until(lambda: _welcomes(control, 2))
    seen_in_group = len(await _group_texts(control))
    ana_seen = len(await ana.all_messages())
    crisis = await control.group_message(GROUP, ana.user_id, CRISIS)
    reply = await ana.wait_for_message("Please call 911 now")
    assert "You wrote something in the group chat that worried me" in reply["visible_text"]
    page = await clinician.wait_for_message("P-G1")
    assert "IMMINENT" in page["visible_text"]
    notice = await facilitator.wait_for_message("Group chat of Tue-Thu")
    assert "P-G1" in notice["visible_text"] and buttons(notice) == ["Hide it from the group"]
    # A peer answers with worry: nothing about Ben himself.
    ben_seen = len(await ben.all_messages())
    await control.group_message(GROUP, ben.user_id, WORRIED, reply_to_message_id=crisis["message"]["message_id"])
    await facilitator.wait_for_message("worry about someone else")
    await asyncio.sleep(0.5)  # the outbox has had many ticks; anything for Ben would be there
    assert len(await ben.all_messages()) == ben_seen
    escalations = await _db(bot.db_url, lambda s: s.scalars(
        select(Participant.alias).join(Escalation, Escalation.participant_id == Participant.id)))
    assert list(escalations.all()) == ["P-G1"]
    # The facilitator hides Ana's message.
    await facilitator.press("Hide it from the group")
    await facilitator.wait_for_message("Hidden from the group by dr-fac")
    await _until(lambda: _deleted(control, crisis["message"]["message_id"]))
    assert len(await ana.all_messages()) >= ana_seen + 1
    # Nothing was posted in the group about any of it, and nothing the bot wrote there names anyone.
    group_texts = await _group_texts(control)
    assert len(group_texts) == seen_in_group, group_texts[seen_in_group:]
    for text in group_texts:
        for word in ("P-G1", "P-G2", "dr-fac", "dr-clin", "Sam", "Dr"):
            assert word not in text, text
    flags = await _db(bot.db_url, lambda s: s.scalars(select(GroupFlag).order_by(GroupFlag.id)))
    assert [(f.about_other, f.hidden_by_id is not None) for f in flags.all()] == [(False, True), (True, False)]

    # Ben is discharged: out of the group.
    result = bot.cli("participant", "discharge", "P-G2")
    assert result.returncode == 0, result.stderr
    await _until(lambda: _status(control, ben.user_id, "left"))

    # 25 more members of the cohort arrive at once (added by the facilitator): 25 welcomes, paced.
    await _many_members(bot.db_url, 25)
    ids = await _db(bot.db_url, lambda s: s.scalars(select(Participant.telegram_user_id).where(
        Participant.alias.like("P-GX-%"))))
    bot.move_clock(seconds=61)  # a minute after the story above: the group's last minute is empty
    start = len(await _group_texts(control))
    first = len(await control.requests(method="sendMessage", chat_id=GROUP))
    for user_id in ids.all():
        await control.add_to_group(GROUP, user_id, by=facilitator.user_id)
    limit = 18  # [groups] messages_per_minute as shipped
    await _until(lambda: _count_at_least(control, start + limit))
    await asyncio.sleep(1.0)  # more would have come by now if the bot did not hold them
    assert len(await _group_texts(control)) == start + limit
    bot.move_clock(seconds=61)
    await _until(lambda: _count_at_least(control, start + 25))
    sends = (await control.requests(method="sendMessage", chat_id=GROUP))[first:]
    assert all(r["outcome"] == "ok" for r in sends), [r["outcome"] for r in sends]
    times = sorted(r["at"] for r in sends)
    busiest = max(sum(1 for t in times if start_at <= t < start_at + 60) for start_at in times)
    assert busiest <= limit, busiest
    pending = await _db(bot.db_url, lambda s: s.scalars(select(ScheduledAction.status).where(
        ScheduledAction.kind == "group_post", ScheduledAction.status != "sent")))
    assert list(pending.all()) == []


async def _contains(control: BotAPIControl, words: str) -> bool:
    return any(words in t for t in await _group_texts(control))


async def _welcomes(control: BotAPIControl, count: int) -> bool:
    return sum("Welcome to a new member" in t for t in await _group_texts(control)) >= count


async def _decided(control: BotAPIControl, user_id: int) -> bool:
    return any(d["user_id"] == user_id for d in (await control.group(GROUP))["decided"])


async def _revoked(control: BotAPIControl, link: str) -> bool:
    return any(li["invite_link"] == link and li["is_revoked"] for li in (await control.group(GROUP))["invite_links"])


async def _member(control: BotAPIControl, user_id: int) -> bool:
    return (await control.group(GROUP))["members"].get(str(user_id)) == "member"


async def _status(control: BotAPIControl, user_id: int, status: str) -> bool:
    return (await control.group(GROUP))["members"].get(str(user_id)) == status


async def _deleted(control: BotAPIControl, message_id: int) -> bool:
    return any(m["message_id"] == message_id and m["deleted"] for m in (await control.chat(GROUP))["user_messages"])


async def _count_at_least(control: BotAPIControl, count: int) -> bool:
    return len(await _group_texts(control)) >= count


async def _many_members(db_url: str, count: int) -> None:
    """`count` active participants of the cohort who accepted the agreement (as onboarding and
    /group would have left them), straight in the database."""
    async def work(session: Any) -> None:
        now = datetime.now(UTC)
        clinician = await session.scalar(select(Staff).where(Staff.alias == "dr-clin"))
        cohort = await session.scalar(select(ParticipantGroup).where(ParticipantGroup.name == COHORT))
        for n in range(count):
            user_id = new_user_id()
            participant = Participant(
                alias=f"P-GX-{n:02d}", telegram_user_id=user_id, chat_id=user_id, status=ParticipantStatus.ACTIVE,
                locale="en", timezone="America/Chicago", checkin_time="09:00", quiet_start="22:00",
                quiet_end="07:00", therapist_id=clinician.id, consent_version="test", consented_at=now, created_at=now)
            session.add(participant)
            await session.flush()
            session.add(GroupMembership(group_id=cohort.id, participant_id=participant.id, joined_at=now))
            session.add(GroupAgreement(participant_id=participant.id, version="2026-12-01", accepted_at=now))

    await _db(db_url, work)
