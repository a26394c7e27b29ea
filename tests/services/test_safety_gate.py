"""The crisis reply needs neither the database nor the LLM; what of a message is assessed."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message, Update

from bot.app import build_dispatcher
from bot.clock import ManualClock
from bot.config import Settings
from bot.content.i18n import Texts
from bot.context import AppContext
from bot.db.engine import make_engine, make_sessionmaker
from bot.sandbox.botapi import DEFAULT_TOKEN, FakeBotAPI
from bot.telegram.safety_gate import assessed_text, participant_message
from tests.support import loaded

REPO = Path(__file__).resolve().parents[2]


async def test_crisis_reply_goes_out_while_the_database_is_down(settings: Settings, clock: ManualClock) -> None:
    api = FakeBotAPI()
    await api.start()
    # Nothing listens on port 1: every database call fails.
    engine = make_engine("postgresql+asyncpg://iopbot:x@127.0.0.1:1/iopbot")
    ctx = AppContext(settings=settings, clock=clock, texts=Texts.load(REPO / "content"),
                     sessionmaker=make_sessionmaker(engine))
    dp = build_dispatcher(ctx, loaded.safety_rules(REPO / "content"))
    bot = Bot(DEFAULT_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api.base_url or "")),
              default=DefaultBotProperties(parse_mode="HTML"))
    update = Update.model_validate({
        "update_id": 1,
        "message": {"message_id": 5, "date": 0, "chat": {"id": 42, "type": "private"},
                    "from": {"id": 42, "is_bot": False, "first_name": "A", "language_code": "es"},
                    "text": "quiero morir"},
    }, context={"bot": bot})
    # The update is held (tried again until the database is back); the crisis reply must not wait.
    handling = asyncio.create_task(dp.feed_update(bot, update))
    try:
        messages = await api.wait_for_messages(42, 1, timeout=10)
        assert not handling.done(), "the update was given up instead of being held for the database"
    finally:
        handling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await handling
        await bot.session.close()
        await engine.dispose()
        await api.stop()
    assert len(messages) == 1
    assert "988" in messages[0]["visible_text"] and "911" in messages[0]["visible_text"]
    assert "oprime 2 para español" in messages[0]["visible_text"]  # in the person's language (tú)


def _msg(**content: object) -> Message:
    return Message.model_validate({"message_id": 1, "date": 0, "chat": {"id": 42, "type": "private"},
                                   "from": {"id": 42, "is_bot": False, "first_name": "A"}, **content})


def test_what_is_assessed_of_a_message() -> None:
    token = "Zx9_Qm2-Lk8vTt3RbYw0PnHs4JcUe7Aa"  # the shape of an invite token (32 URL-safe characters)
    assert assessed_text(_msg(text="i want to die")) == "i want to die"
    assert assessed_text(_msg(photo=[], caption="i want to die")) == "i want to die"
    assert assessed_text(_msg(sticker=None)) is None
    # /start: the words after it are the person's; an invite token is not words.
    assert assessed_text(_msg(text=f"/start {token}")) is None
    assert assessed_text(_msg(text="/start")) is None
    assert assessed_text(_msg(text="/start i can't go on")) == "i can't go on"
    assert assessed_text(_msg(text=f"/start@iopbot_test_bot {token} i want to die")) == "i want to die"
    assert assessed_text(_msg(text="/started to feel better")) == "/started to feel better"
    # An edited message is assessed like a new one.
    edited = Update.model_validate({"update_id": 2, "edited_message": {
        "message_id": 1, "date": 0, "edit_date": 5, "chat": {"id": 42, "type": "private"},
        "from": {"id": 42, "is_bot": False, "first_name": "A"}, "text": "now"}})
    assert participant_message(edited) is edited.edited_message
