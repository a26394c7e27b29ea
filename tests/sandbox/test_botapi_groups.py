"""The fake Bot API in group mode, driven by the real aiogram client over HTTP: invite links, join
requests, members (chat_member updates the bot reads with aiogram's own types), bans, restrictions,
deleting a member's message, and Telegram's limit of about 20 messages a minute in one group.
Rate limits follow a monotonic clock the test moves, so nothing sleeps."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import ChatPermissions, Update

from bot.sandbox.botapi import BotAPIControl, BotAPIControlError, FakeBotAPI

TOKEN = "123456789:test-token"  # noqa: S105
GROUP = -1001234
OWNER, ANA, BEN = 7001, 7002, 7003


class MovableMonotonic:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture(scope="module")
async def world() -> AsyncIterator[tuple[FakeBotAPI, Bot, BotAPIControl, MovableMonotonic]]:
    clock = MovableMonotonic()
    api = FakeBotAPI(TOKEN, monotonic=clock)
    url = await api.start()
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    control = BotAPIControl(url)
    yield api, bot, control, clock
    await control.close()
    await bot.session.close()
    await api.stop()


@pytest.fixture
async def api(world: Any) -> FakeBotAPI:
    await world[2].reset()
    return world[0]  # type: ignore[no-any-return]


async def updates(bot: Bot, kinds: list[str]) -> list[Update]:
    found = await bot.get_updates(timeout=0, allowed_updates=kinds)
    if found:
        await bot.get_updates(offset=found[-1].update_id + 1, timeout=0)
    return found


async def test_join_request_link_approval_and_chat_member_updates(api: FakeBotAPI, world: Any) -> None:
    _, bot, control, _ = world
    await control.create_group(GROUP, OWNER, title="Tue-Thu")
    added = await updates(bot, ["my_chat_member", "chat_member", "chat_join_request", "message"])
    assert added[0].my_chat_member is not None and added[0].my_chat_member.new_chat_member.status == "administrator"
    assert added[0].my_chat_member.chat.type == "supergroup"

    expires = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(TelegramBadRequest, match="member limit"):
        await bot.create_chat_invite_link(GROUP, name="x", creates_join_request=True, member_limit=1)
    link = await bot.create_chat_invite_link(GROUP, name="iopbot-1", expire_date=expires, creates_join_request=True)
    assert link.creates_join_request and not link.is_revoked and link.invite_link.startswith("https://t.me/+")

    await control.join_with_link(ANA, link.invite_link)
    request = (await updates(bot, ["chat_join_request", "chat_member"]))[0].chat_join_request
    assert request is not None and request.from_user.id == ANA and request.user_chat_id == ANA
    assert request.invite_link is not None and request.invite_link.invite_link == link.invite_link
    # A private message to the requester (Telegram allows it while the request is open).
    await bot.send_message(request.user_chat_id, "Please read the agreement first.")

    assert await bot.approve_chat_join_request(GROUP, ANA)
    joined = (await updates(bot, ["chat_member"]))[0].chat_member
    assert joined is not None and (joined.old_chat_member.status, joined.new_chat_member.status) == ("left", "member")
    with pytest.raises(TelegramBadRequest, match="HIDE_REQUESTER_MISSING"):
        await bot.approve_chat_join_request(GROUP, ANA)  # decided once

    await control.join_with_link(BEN, link.invite_link)
    await updates(bot, ["chat_join_request"])
    assert await bot.decline_chat_join_request(GROUP, BEN)
    view = await control.group(GROUP)
    assert view["members"][str(ANA)] == "member" and str(BEN) not in view["members"]
    assert [d["approved"] for d in view["decided"]] == [True, False]

    revoked = await bot.revoke_chat_invite_link(GROUP, link.invite_link)
    assert revoked.is_revoked
    with pytest.raises(BotAPIControlError, match="expired or was revoked"):
        await control.join_with_link(BEN, link.invite_link)


async def test_kick_mute_and_delete_need_the_bot_to_be_an_admin(api: FakeBotAPI, world: Any) -> None:
    _, bot, control, _ = world
    await control.create_group(GROUP, OWNER, members=[ANA, BEN])
    written = await control.group_message(GROUP, ANA, "hello all")
    reply = await control.group_message(GROUP, BEN, "hi!", reply_to_message_id=written["message"]["message_id"])
    assert reply["message"]["reply_to_message"]["from"]["id"] == ANA
    got = await updates(bot, ["message", "my_chat_member"])
    assert [u.message.chat.type for u in got if u.message] == ["supergroup", "supergroup"]

    until = datetime.now(UTC) + timedelta(hours=2)
    await bot.restrict_chat_member(GROUP, ANA, ChatPermissions(can_send_messages=False), until_date=until)
    assert (await bot.get_chat_member(GROUP, ANA)).status == "restricted"
    with pytest.raises(BotAPIControlError, match="muted"):
        await control.group_message(GROUP, ANA, "can I write?")
    await bot.restrict_chat_member(GROUP, ANA, ChatPermissions(**dict.fromkeys(
        ("can_send_messages", "can_send_audios", "can_send_documents", "can_send_photos", "can_send_videos",
         "can_send_video_notes", "can_send_voice_notes", "can_send_polls", "can_send_other_messages",
         "can_add_web_page_previews", "can_react_to_messages"), True)))
    assert (await bot.get_chat_member(GROUP, ANA)).status == "member"

    assert await bot.delete_message(GROUP, written["message"]["message_id"])
    assert (await control.chat(GROUP))["user_messages"][0]["deleted"]

    await bot.ban_chat_member(GROUP, BEN)
    await bot.unban_chat_member(GROUP, BEN, only_if_banned=True)
    assert (await control.group(GROUP))["members"][str(BEN)] == "left"
    with pytest.raises(TelegramBadRequest, match="administrator"):
        await bot.ban_chat_member(GROUP, OWNER)
    admins = await bot.get_chat_administrators(GROUP)
    assert {a.user.id for a in admins} == {OWNER, 123456789}

    await control.set_bot_admin(GROUP, False, by=OWNER)
    with pytest.raises(TelegramBadRequest, match="not enough rights"):
        await bot.create_chat_invite_link(GROUP, creates_join_request=True)
    with pytest.raises(TelegramBadRequest, match="can't be deleted"):
        await bot.delete_message(GROUP, reply["message"]["message_id"])
    await bot.leave_chat(GROUP)
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(GROUP, "still here?")


async def test_at_most_twenty_messages_in_a_minute_in_one_group(api: FakeBotAPI, world: Any) -> None:
    _, bot, control, clock = world
    await control.create_group(GROUP, OWNER)
    await control.set_rate_limits(per_chat_per_second=100.0, per_chat_burst=100.0)
    for n in range(20):
        await bot.send_message(GROUP, f"post {n}")
    with pytest.raises(TelegramRetryAfter) as refused:
        await bot.send_message(GROUP, "one too many")
    assert 55 <= refused.value.retry_after <= 60
    await bot.send_message(ANA, "a private chat is not held up by a group's limit")
    clock.offset += refused.value.retry_after + 1  # the minute (and the retry_after ban) has passed
    await bot.send_message(GROUP, "after the minute")
    sent = [r for r in api.requests(method="sendMessage", chat_id=GROUP) if r["outcome"] == "ok"]
    assert len(sent) == 21
