"""Layer 1: the assembled bot (dispatcher, middlewares, scheduler worker, sender) in this process,
talking real HTTP to an in-process local Bot API, with a manual clock.

Updates are fed straight to the dispatcher (no polling), and the scheduler tick is run by the
test, so a test moves time and sees exactly what a person would have received. Restarting is
assembling again on the same database.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from aiogram.types import Update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import ManualClock
from bot.config import Settings
from bot.db.models import Participant, ParticipantStatus, Staff
from bot.runtime import RunningBot, assemble
from bot.sandbox.botapi import FakeBotAPI
from tests.support import loaded


def inproc_settings(settings: Settings, api: FakeBotAPI, db_url: str, **sections: Any) -> Settings:
    """`settings` pointed at `api` and `db_url`, without real per-chat waits; `sections` override."""
    s = settings.replace(
        telegram=dataclasses.replace(settings.telegram, api_base=api.base_url or "", request_timeout_seconds=5.0),
        database=dataclasses.replace(settings.database, url=db_url),
        secrets=dataclasses.replace(settings.secrets, bot_token=api.token),
        sender=dataclasses.replace(settings.sender, per_chat_interval_seconds=0.01, backoff_base_seconds=0.01,
                                   backoff_max_seconds=0.05),
        # No daily read unless a test asks for it: it would add messages to every chat over a day.
        content=dataclasses.replace(settings.content, drip_every_days=0),
        # No weekly questionnaires unless a test asks for them: they would add messages on Mondays.
        instruments=dataclasses.replace(settings.instruments, enabled=False),
    )
    return s.replace(**sections) if sections else s


class InProcessBot:
    def __init__(self, running: RunningBot, api: FakeBotAPI, clock: ManualClock) -> None:
        self.running = running
        self.api = api
        self.clock = clock

    @classmethod
    async def start(cls, settings: Settings, api: FakeBotAPI, clock: ManualClock) -> InProcessBot:
        # The compiled safety rules and the content library are loaded once per test session
        # (tests/support/loaded.py) and handed to `assemble`, which would otherwise load them again.
        c = settings.content
        rules = loaded.safety_rules(settings.content_dir)
        store = loaded.content_store(settings.content_dir, allow_drafts=c.allow_drafts,
                                     grade_limit=c.reading_grade_limit)
        return cls(await assemble(settings, clock, migrate=False, safety_rules=rules, content=store), api, clock)

    @property
    def ctx(self) -> Any:
        return self.running.ctx

    async def close(self) -> None:
        await self.running.sender.settled()
        await self.running.bot.session.close()
        await self.running.engine.dispose()

    async def feed(self, update: dict[str, Any]) -> None:
        bot = self.running.bot
        await self.running.dispatcher.feed_update(bot, Update.model_validate(update, context={"bot": bot}))

    async def say(self, user_id: int, text: str, language_code: str = "en") -> None:
        injected = self.api.inject_message(user_id, text, first_name="Sam", language_code=language_code)
        await self.feed({"update_id": injected["update_id"], "message": injected["message"]})

    async def press(self, user_id: int, label: str) -> dict[str, Any]:
        """Tap the newest button whose label is `label` (exactly, else containing it)."""
        for message in reversed(self.messages(user_id)):
            found = [b for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row
                     if "callback_data" in b]
            button = next((b for b in found if b["text"] == label), None) or next(
                (b for b in found if label.lower() in b["text"].lower()), None)
            if button is not None:
                await self.press_data(user_id, message["message_id"], button["callback_data"])
                return message
        raise AssertionError(f"no button {label!r} in chat {user_id}: {self.texts(user_id)}")

    async def press_data(self, user_id: int, message_id: int, data: str) -> None:
        pressed = self.api.press_button(user_id, message_id, data, verify=False)
        await self.feed({"update_id": pressed["update_id"], "callback_query": pressed["callback_query"]})

    def messages(self, chat_id: int) -> list[dict[str, Any]]:
        return list(self.api.chat(chat_id)["messages"])

    def texts(self, chat_id: int) -> list[str]:
        return [m.get("visible_text") or m.get("caption") or "" for m in self.messages(chat_id)]

    def last_text(self, chat_id: int) -> str:
        texts = self.texts(chat_id)
        return texts[-1] if texts else ""

    def notices(self, chat_id: int) -> list[str]:
        """The toasts shown on pressed buttons (answerCallbackQuery texts)."""
        return [q.get("answer_text") or "" for q in self.api.chat(chat_id)["callback_queries"]]

    async def tick(self, at: datetime | None = None) -> int:
        if at is not None:
            self.clock.set(at)
        done = await self.running.worker.tick()
        await self.running.sender.settled()  # what the sends met is written down, as in a running bot soon after
        return done


async def add_staff(session: AsyncSession, alias: str, chat_id: int, now: datetime) -> Staff:
    staff = Staff(alias=alias, role="therapist", telegram_user_id=chat_id, chat_id=chat_id, locale="en",
                  active=True, on_call=False, created_at=now)
    session.add(staff)
    await session.flush()
    return staff


async def add_participant(session: AsyncSession, alias: str, therapist: Staff, chat_id: int, now: datetime, *,
                          timezone: str = "America/New_York", checkin_time: str = "09:00",
                          quiet: tuple[str, str] = ("22:00", "07:00"), locale: str = "en") -> Participant:
    """An enrolled, active participant (what onboarding leaves behind), without the dialog."""
    participant = Participant(
        alias=alias, telegram_user_id=chat_id, chat_id=chat_id, status=ParticipantStatus.ACTIVE, locale=locale,
        timezone=timezone, checkin_time=checkin_time, quiet_start=quiet[0], quiet_end=quiet[1],
        therapist_id=therapist.id, consent_version="test", consented_at=now, created_at=now)
    session.add(participant)
    await session.flush()
    return participant
