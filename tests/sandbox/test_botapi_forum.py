"""The local Bot API's forum groups (Topics turned on), driven by the real aiogram client over
HTTP, as the peer-led threads use them: createForumTopic and closeForumTopic with Telegram's rules
(an admin bot, a forum, a title of 1-128 characters, closing once), members writing in a topic
(message_thread_id), only admins writing in a closed one, and sendMessage into a topic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Update

from bot.sandbox.botapi import BotAPIControl, BotAPIControlError, FakeBotAPI

TOKEN = "123456789:test-token"  # noqa: S105
FORUM, PLAIN = -1005001, -1005002
OWNER, ANA = 7101, 7102


@pytest.fixture
async def world() -> AsyncIterator[tuple[FakeBotAPI, Bot, BotAPIControl]]:
    api = FakeBotAPI(TOKEN)
    url = await api.start()
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    control = BotAPIControl(url)
    yield api, bot, control
    await control.close()
    await bot.session.close()
    await api.stop()


async def test_forum_topics_as_telegram_has_them(world: Any) -> None:
    api, bot, control = world
    await control.create_group(FORUM, OWNER, members=[ANA], is_forum=True)
    await control.create_group(PLAIN, OWNER, members=[ANA])

    topic = await bot.create_forum_topic(FORUM, "Sleep after stopping")
    assert topic.name == "Sleep after stopping" and topic.message_thread_id > 0
    with pytest.raises(TelegramBadRequest, match="not a forum"):
        await bot.create_forum_topic(PLAIN, "Weekend")
    with pytest.raises(TelegramBadRequest, match="TOPIC_TITLE_TOO_LONG"):
        await bot.create_forum_topic(FORUM, "x" * 129)

    # A member writes in the topic: the bot reads it with aiogram's own types, in that thread.
    written = await control.group_message(FORUM, ANA, "Anyone else up at 3am?",
                                          message_thread_id=topic.message_thread_id)
    update = Update.model_validate({"update_id": written["update_id"], "message": written["message"]},
                                   context={"bot": bot})
    assert update.message is not None and update.message.chat.is_forum
    assert update.message.is_topic_message and update.message.message_thread_id == topic.message_thread_id
    sent = await bot.send_message(FORUM, "A note in the thread", message_thread_id=topic.message_thread_id)
    assert sent.message_thread_id == topic.message_thread_id
    with pytest.raises(TelegramBadRequest, match="thread not found"):
        await bot.send_message(FORUM, "nowhere", message_thread_id=99999)

    # Closed: once (a second close is TOPIC_NOT_MODIFIED); members can no longer write in it.
    assert await bot.close_forum_topic(FORUM, topic.message_thread_id)
    with pytest.raises(TelegramBadRequest, match="TOPIC_NOT_MODIFIED"):
        await bot.close_forum_topic(FORUM, topic.message_thread_id)
    with pytest.raises(BotAPIControlError, match="closed"):
        await control.group_message(FORUM, ANA, "still here?", message_thread_id=topic.message_thread_id)
    view = await control.group(FORUM)
    assert view["is_forum"] and view["topics"] == [
        {"message_thread_id": topic.message_thread_id, "name": "Sleep after stopping", "closed": True}]

    # Without the admin right, no topics.
    await control.set_bot_admin(FORUM, False, by=OWNER)
    with pytest.raises(TelegramBadRequest, match="not enough rights"):
        await bot.create_forum_topic(FORUM, "Later")
    assert api.group(FORUM)["topics"][0]["closed"]
