"""The sandbox demo's cohort group chat (#17): `iopbot sandbox` (the real `Sandbox`, in this process:
the local Bot API, the bot polling it, SQLite in a temporary folder) starts with the cohort's group
in the local Bot API with the bot as an admin, linked to the cohort as /linkgroup links it, the two
participants who accepted the agreement inside, the discussion prompt and a few peer messages; a
crisis a participant writes there gets the crisis reply in their private chat and pages their
therapist, and nothing the bot wrote in the group names anyone. The chat page shows the group to
its members (``?as=sam&chat=group``) and lets them write in it; to anyone else, nothing of it. One
sandbox for all of it."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from sqlalchemy import select

from bot.config import load_settings
from bot.db.calendar_models import ParticipantGroup
from bot.db.group_models import GroupChat, GroupFlag, GroupMember, MemberStatus
from bot.db.models import Participant, Staff
from bot.sandbox.demo import DEMO_GROUP, GROUP_CHAT_ID, GROUP_MESSAGES, GROUP_TITLE, PARTICIPANTS, STAFF
from bot.sandbox.server import Sandbox, SandboxOptions

REPO = Path(__file__).resolve().parents[2]
CRISIS = "I want to kill myself tonight"


@pytest.fixture(scope="module")
async def sandbox(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Sandbox, list[str]]]:
    data = tmp_path_factory.mktemp("sandbox-group")
    # No group quiet hours: the prompt and the welcomes must not depend on the hour the test runs at.
    base = load_settings(REPO / "config.toml", env={"BOT_TOKEN": "42:TEST"})
    base = base.replace(groups=dataclasses.replace(base.groups, quiet_start="00:00", quiet_end="00:00"))
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as env:
        env.delenv("DATABASE_URL", raising=False)
        env.setenv("IOPBOT_CLOCK_FILE", str(data / "clock-offset"))  # the sandbox sets it; restored after
        box = Sandbox(base, SandboxOptions(port=0, data_dir=data / "data"), lines.append)
        try:
            await box.start()
            yield box, lines
        finally:
            await box.close()


async def _db(box: Sandbox, work: Any) -> Any:
    assert box.running is not None
    async with box.running.ctx.sessionmaker() as session:
        return await work(session)


async def _until(check: Any, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while not (result := await check()):
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.05)
    return result


def _visible(box: Sandbox, chat_id: int) -> list[str]:
    assert box.api is not None
    return [m["visible_text"] or "" for m in box.api.chat(chat_id)["messages"]]


async def test_the_demo_has_a_linked_cohort_group_whose_crises_reach_the_writer_in_private(
        sandbox: tuple[Sandbox, list[str]]) -> None:
    box, lines = sandbox
    api = box.api
    assert api is not None
    alex, sam = PARTICIPANTS
    therapist = STAFF[0]

    # The group exists in the local Bot API: made by the therapist, the bot an admin, both participants in.
    view = api.group(GROUP_CHAT_ID)
    assert view["members"] == {str(therapist.user_id): "creator", str(api.bot_user["id"]): "administrator",
                               str(alex.user_id): "member", str(sam.user_id): "member"}
    # Linked to the demo's cohort in the database, with everyone on record as a member.
    async def linked(session: Any) -> tuple[str | None, list[str]]:
        chat = await session.scalar(select(GroupChat).where(GroupChat.telegram_chat_id == GROUP_CHAT_ID))
        cohort = await session.get(ParticipantGroup, chat.cohort_id) if chat.cohort_id else None
        rows = (await session.scalars(select(GroupMember).where(GroupMember.group_chat_id == chat.id,
                                                                GroupMember.status == MemberStatus.MEMBER))).all()
        who = [await session.get(Participant, r.participant_id) if r.participant_id else
               await session.get(Staff, r.staff_id) for r in rows]
        return (cohort.name if cohort else None), sorted(w.alias for w in who)

    cohort, members = await _db(box, linked)
    assert cohort == DEMO_GROUP
    assert members == ["P-101", "P-102", therapist.alias]
    # The start-up message says where the group is and how to write in it.
    assert any("Cohort group chat" in line and str(GROUP_CHAT_ID) in line and "P-101, P-102" in line
               for line in lines), lines

    # What is in it: the bot's notice, two welcomes, the week's discussion prompt, then the peers' answers.
    bot_texts = _visible(box, GROUP_CHAT_ID)
    assert any("This is now your group's chat" in t for t in bot_texts), bot_texts
    assert sum("Welcome to a new member" in t for t in bot_texts) == 2, bot_texts
    assert any("Something to talk about" in t and "small thing that went well" in t for t in bot_texts), bot_texts
    peers = [(u["from"]["id"], u["text"]) for u in api.chat(GROUP_CHAT_ID)["user_messages"]
             if not u["text"].startswith("/")]
    by_key = {p.key: p.user_id for p in (*PARTICIPANTS, *STAFF)}
    assert peers == [(by_key[key], text) for key, text in GROUP_MESSAGES]
    assert await _db(box, lambda s: s.scalar(select(GroupFlag.id))) is None  # nothing in them is a worry

    # Alex writes a crisis in the group: the crisis reply in his private chat, his therapist paged.
    seen_in_group = len(_visible(box, GROUP_CHAT_ID))
    api.group_message(GROUP_CHAT_ID, alex.user_id, CRISIS, first_name=alex.first_name)
    await _until(lambda: _has(box, alex.user_id, "You wrote something in the group chat that worried me"))
    await _until(lambda: _has(box, therapist.user_id, "Safety alert", "P-101"))
    await _until(lambda: _db(box, lambda s: s.scalar(select(GroupFlag.id))))
    # Nothing about it in the group, and nothing the bot ever wrote there names anyone.
    group_texts = _visible(box, GROUP_CHAT_ID)
    assert len(group_texts) == seen_in_group, group_texts[seen_in_group:]
    names = [p.alias for p in (*PARTICIPANTS, *STAFF)] + [w for p in (*PARTICIPANTS, *STAFF)
                                                          for w in p.first_name.split()]
    for text in group_texts:
        for name in names:
            assert not re.search(rf"\b{re.escape(name)}\b", text), (name, text)


async def _has(box: Sandbox, chat_id: int, *words: str) -> bool:
    return any(all(w in t for w in words) for t in _visible(box, chat_id))


async def test_the_chat_page_shows_the_group_to_its_members_and_they_write_there(
        sandbox: tuple[Sandbox, list[str]]) -> None:
    box, _ = sandbox
    async with ClientSession() as http:
        async def group(key: str) -> dict[str, Any]:
            async with http.get(f"{box.url}/api/chat/{key}/group") as response:
                assert response.status == 200, await response.text()
                return dict(await response.json())

        # Sam sees the group: the bot's posts, Alex's words under his name, his own as his.
        seen = await group("sam")
        assert seen["group"] == {"title": GROUP_TITLE, "member": True, "note": ""}
        items = [(i["from"], i.get("name", ""), i["text"]) for i in seen["items"]]
        assert any(who == "bot" and "This is now your group's chat" in text for who, _, text in items)
        by_people = [(who, name, text) for who, name, text in items if who != "bot"]
        assert by_people[0] == ("peer", "Dana Rivera", "/linkgroup evening-iop")  # as Telegram shows it
        assert by_people[1:4] == [("peer" if key == "alex" else "you", "Alex" if key == "alex" else "", text)
                                  for key, text in GROUP_MESSAGES]
        # He writes in it from the page: Telegram (the local Bot API) has it from him, and Alex sees it.
        words = "Thanks for the welcome, everyone."
        async with http.post(f"{box.url}/api/chat/sam/group/messages", json={"text": words}) as response:
            assert response.status == 200, await response.text()
        assert box.api is not None
        last = box.api.chat(GROUP_CHAT_ID)["user_messages"][-1]
        assert (last["from"]["id"], last["text"]) == (PARTICIPANTS[1].user_id, words)
        alex_items = (await group("alex"))["items"]
        assert ("peer", "Sam", words) in [(i["from"], i.get("name"), i["text"]) for i in alex_items]

        # The lead is not in it: no messages, what to do instead, and writing there is refused.
        lead = await group("lead")
        assert lead["items"] == [] and not lead["group"]["member"] and "/group" in lead["group"]["note"]
        async with http.post(f"{box.url}/api/chat/lead/group/messages", json={"text": "hello"}) as response:
            assert response.status == 403
        # The page has the two tabs.
        async with http.get(f"{box.url}/") as response:
            page = await response.text()
        assert 'id="tab-private"' in page and 'id="tab-group"' in page
