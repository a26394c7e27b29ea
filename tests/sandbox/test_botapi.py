"""The fake Bot API, driven by the real aiogram client over HTTP on 127.0.0.1.

One server and one Bot serve the whole module (closing an aiogram session costs 0.25 s); every test
starts from `reset()`. Rate limits and retry_after follow a monotonic clock the tests can move, so
"after the wait" needs no sleeping.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import SendMessage
from aiogram.types import BotCommand, BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import ClientSession, web

from bot.sandbox.botapi import (
    SECRET_HEADER,
    BotAPIControl,
    BotAPIControlError,
    BotAPIWaitTimeout,
    FakeBotAPI,
    WebhookRetry,
)

TOKEN = "123456789:test-token"  # noqa: S105
CHAT = 5001  # a participant's private chat (chat id == user id)
OTHER = 5002


class MovableMonotonic:
    """Real monotonic time plus an offset the test can add to."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Sandbox:
    api: FakeBotAPI
    url: str
    control: BotAPIControl
    bot: Bot
    clock: MovableMonotonic


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    clock = MovableMonotonic()
    api = FakeBotAPI(TOKEN, monotonic=clock, webhook_retry=WebhookRetry(first_delay=0.01, max_delay=0.02))
    url = await api.start()
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    control = BotAPIControl(url)
    yield Sandbox(api, url, control, bot, clock)
    await control.close()
    await bot.session.close()
    await api.stop()


@pytest.fixture(autouse=True)
async def fresh(sandbox: Sandbox) -> AsyncIterator[None]:
    await sandbox.control.reset()
    yield
    await sandbox.bot.delete_webhook()  # the one piece of bot configuration reset() keeps


@pytest.fixture
def bot(sandbox: Sandbox) -> Bot:
    return sandbox.bot


@pytest.fixture
def control(sandbox: Sandbox) -> BotAPIControl:
    return sandbox.control


async def until(condition: Callable[[], bool], within: float = 2.0) -> None:
    """Wait for a condition on the in-process server (not for wall time)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def poll_waiting(api: FakeBotAPI) -> Callable[[], bool]:
    return lambda: any(r["status"] is None for r in api.requests(method="getUpdates"))


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=f"button {d}", callback_data=d) for d in data]]
    )


# ---- basic methods --------------------------------------------------------------------------


async def test_get_me_answers_the_configured_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456789, "iopbot_test_bot", True)


async def test_sent_message_with_inline_keyboard_is_readable_through_control(
    bot: Bot, control: BotAPIControl
) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="Good", callback_data="checkin:mood:good")],
            [InlineKeyboardButton(text="Guide", url="https://example.org/guide")],
        ]
    )
    first = await bot.send_message(
        CHAT, "<b>How are you</b> &amp; today?", parse_mode="HTML", reply_markup=markup
    )
    second = await bot.send_message(CHAT, "plain")

    assert first.text == "How are you & today?"  # Telegram returns the visible text
    assert first.reply_markup is not None and first.reply_markup.model_dump() == markup.model_dump()
    assert first.chat.type == "private" and first.from_user is not None and first.from_user.is_bot
    assert second.message_id == first.message_id + 1
    sent = await control.sent_messages(CHAT)
    assert [m["text"] for m in sent] == ["<b>How are you</b> &amp; today?", "plain"]
    assert sent[0]["parse_mode"] == "HTML"
    assert sent[0]["reply_markup"] == markup.model_dump(exclude_none=True)
    assert sent[0]["message_id"] == first.message_id


async def test_text_limits_follow_telegram(bot: Bot, control: BotAPIControl) -> None:
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(CHAT, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(CHAT, "  \n ")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(CHAT, "🙂" * 2049)  # UTF-16: two units each
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(CHAT, "line<br>break", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="reserved"):
        await bot.send_message(CHAT, "Done.", parse_mode="MarkdownV2")
    assert await control.sent_messages(CHAT) == []

    # Tags and entities do not count: 4096 visible characters pass.
    await bot.send_message(CHAT, "<i>" + "&lt;" * 4096 + "</i>", parse_mode="HTML")
    await bot.send_message(CHAT, "*Done\\.*", parse_mode="MarkdownV2")
    assert [m["visible_text"] for m in await control.sent_messages(CHAT)] == ["<" * 4096, "Done."]


async def test_callback_data_must_be_1_to_64_bytes(bot: Bot, control: BotAPIControl) -> None:
    await bot.send_message(CHAT, "ok", reply_markup=keyboard("é" * 32))  # 64 bytes
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(CHAT, "too long", reply_markup=keyboard("é" * 33))
    assert len(await control.sent_messages(CHAT)) == 1


async def test_unknown_method_and_unknown_token_fail_loudly(sandbox: Sandbox, bot: Bot) -> None:
    with pytest.raises(TelegramNotFound, match="method not found"):
        await bot.send_venue(CHAT, latitude=0, longitude=0, title="t", address="a")
    async with ClientSession() as http, http.get(f"{sandbox.url}/bot123:wrong/getMe") as response:
        assert response.status == 401
        assert await response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_commands_chat_actions_and_get_chat(bot: Bot, control: BotAPIControl) -> None:
    commands = [BotCommand(command="checkin", description="Daily check-in")]
    assert await bot.set_my_commands(commands, language_code="es")
    stored = [c.model_dump(exclude_none=True) for c in commands]
    assert [c.model_dump(exclude_none=True) for c in await bot.get_my_commands(language_code="es")] == stored
    assert await bot.get_my_commands() == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Check-In", description="x")])
    assert list((await control.commands()).values()) == [stored]

    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.get_chat(CHAT)
    await control.inject_message(CHAT, "hi", first_name="Ana")
    assert (await bot.get_chat(CHAT)).first_name == "Ana"
    assert await bot.send_chat_action(CHAT, "typing")
    assert (await control.chat(CHAT))["chat_actions"] == ["typing"]


async def test_json_form_and_query_bodies_are_accepted(sandbox: Sandbox, control: BotAPIControl) -> None:
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    endpoint = f"{sandbox.url}/bot{TOKEN}/sendMessage"
    async with ClientSession() as http:
        async with http.post(endpoint, json={"chat_id": CHAT, "text": "json", "reply_markup": markup}) as r:
            assert r.status == 200
        form = {"chat_id": str(CHAT), "text": "form", "reply_markup": json.dumps(markup)}
        async with http.post(endpoint, data=form) as r:
            assert r.status == 200
        async with http.get(endpoint, params={"chat_id": str(CHAT), "text": "query"}) as r:
            assert (await r.json())["result"]["text"] == "query"
    sent = await control.sent_messages(CHAT)
    assert [(m["text"], m["reply_markup"]) for m in sent] == [
        ("json", markup),
        ("form", markup),
        ("query", None),
    ]


# ---- updates ------------------------------------------------------------------------------


async def test_long_poll_returns_an_update_injected_while_it_waits(
    sandbox: Sandbox, bot: Bot, control: BotAPIControl
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await until(poll_waiting(sandbox.api))
    injected_at = time.monotonic()
    injected = await control.inject_message(CHAT, "/start invite-abc", first_name="Ana", language_code="es")
    updates = await asyncio.wait_for(poll, 2)

    assert time.monotonic() - injected_at < 0.5
    assert [u.update_id for u in updates] == [injected["update_id"]]
    message = updates[0].message
    assert message is not None and message.text == "/start invite-abc"
    assert message.from_user is not None and message.from_user.language_code == "es"
    assert message.entities is not None and (message.entities[0].type, message.entities[0].length) == (
        "bot_command",
        len("/start"),
    )


async def test_long_poll_times_out_empty(sandbox: Sandbox) -> None:
    started = time.monotonic()
    # aiogram sends whole seconds; the server also takes fractions, which keeps this test short.
    async with (
        ClientSession() as http,
        http.post(f"{sandbox.url}/bot{TOKEN}/getUpdates", json={"timeout": 0.3}) as response,
    ):
        assert (await response.json()) == {"ok": True, "result": []}
    assert 0.3 <= time.monotonic() - started < 0.9


async def test_offset_confirms_updates_and_replays_are_handed_out_again(
    bot: Bot, control: BotAPIControl
) -> None:
    a = await control.inject_message(CHAT, "one")
    b = await control.inject_message(CHAT, "two")
    assert [u.update_id for u in await bot.get_updates()] == [a["update_id"], b["update_id"]]
    # Not confirmed yet: at-least-once, so they come again.
    assert len(await bot.get_updates()) == 2
    next_offset = b["update_id"] + 1
    assert await bot.get_updates(offset=next_offset) == []
    assert await bot.get_updates() == []

    # A replayed update_id (what a retried delivery looks like) is handed out once more.
    await control.inject_update({"update_id": a["update_id"], "message": a["message"]})
    assert [u.update_id for u in await bot.get_updates(offset=next_offset)] == [a["update_id"]]
    assert await bot.get_updates(offset=next_offset) == []

    # Unknown update kinds pass through for the bot to ignore.
    odd = await control.inject_update({"some_future_kind": {"x": 1}})
    assert [u.update_id for u in await bot.get_updates(offset=next_offset)] == [odd]


async def test_a_second_poller_ends_the_first_with_conflict(sandbox: Sandbox, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await until(poll_waiting(sandbox.api))
    assert await bot.get_updates(timeout=0) == []
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await asyncio.wait_for(first, 2)


async def test_a_user_edits_their_message_and_the_bot_gets_an_edited_message(
    bot: Bot, control: BotAPIControl
) -> None:
    sent = await control.inject_message(CHAT, "see you tomorrow", first_name="Sam")
    message_id = sent["message"]["message_id"]
    edit = await control.edit_message(CHAT, message_id, "/note see you never")
    first, second = await bot.get_updates()
    assert first.message is not None and first.message.text == "see you tomorrow"
    edited = second.edited_message
    assert second.update_id == edit["update_id"] and edited is not None and second.message is None
    assert (edited.message_id, edited.date, edited.text) == (message_id, first.message.date, "/note see you never")
    assert edited.edit_date is not None and edited.from_user is not None and edited.from_user.first_name == "Sam"
    assert edited.entities is not None and edited.entities[0].type == "bot_command"
    [stored] = (await control.chat(CHAT))["user_messages"]
    assert stored["text"] == "/note see you never" and [e["text"] for e in stored["edits"]] == ["see you tomorrow"]

    with pytest.raises(BotAPIControlError, match="sent no message 999"):
        await control.edit_message(CHAT, 999, "hello")
    with pytest.raises(BotAPIControlError, match="not modified"):  # Telegram sends no update for that
        await control.edit_message(CHAT, message_id, "/note see you never")


async def test_only_the_update_kinds_the_bot_asked_for_are_handed_out(
    bot: Bot, control: BotAPIControl, receiver: Receiver
) -> None:
    try:
        sent = await control.inject_message(CHAT, "one")
        message_id = sent["message"]["message_id"]
        await control.edit_message(CHAT, message_id, "two")
        [only] = await bot.get_updates(allowed_updates=["message", "callback_query"])
        assert only.message is not None and only.message.text == "one"
        # Kept until changed: a poll without allowed_updates asks for the same kinds.
        await control.edit_message(CHAT, message_id, "three")
        assert await bot.get_updates(offset=only.update_id + 1) == []
        wanted = await control.edit_message(CHAT, message_id, "four")
        [update] = await bot.get_updates(offset=only.update_id + 1, allowed_updates=["message", "edited_message"])
        assert update.update_id == wanted["update_id"] and update.edited_message is not None
        # [] is Telegram's default: every kind but chat_member and reactions.
        member = await control.inject_update({"chat_member": {"x": 1}})
        odd = await control.inject_update({"some_future_kind": {"x": 1}})
        assert [u.update_id for u in await bot.get_updates(offset=member, allowed_updates=[])] == [odd]

        # The webhook gets only what setWebhook asked for, and getWebhookInfo says what that is.
        await bot.set_webhook(receiver.url, allowed_updates=["message"])
        assert (await bot.get_webhook_info()).allowed_updates == ["message"]
        assert (await control.webhook())["allowed_updates"] == ["message"]
        await control.edit_message(CHAT, message_id, "five")
        later = await control.inject_message(CHAT, "six")
        _, body = await asyncio.wait_for(receiver.received.get(), 2)
        assert body["update_id"] == later["update_id"] and receiver.received.empty()
    finally:
        await bot.delete_webhook()
        await bot.get_updates(allowed_updates=[])  # this server is shared by the module's tests


# ---- buttons, edits, deletes ----------------------------------------------------------------


async def test_button_press_reaches_the_bot_and_its_answer_is_recorded(
    bot: Bot, control: BotAPIControl
) -> None:
    sent = await bot.send_message(CHAT, "Did you sleep well?", reply_markup=keyboard("sleep:yes", "sleep:no"))
    with pytest.raises(BotAPIControlError, match="no button"):
        await control.press_button(CHAT, sent.message_id, "sleep:maybe")

    pressed = await control.press_button(CHAT, sent.message_id, "sleep:no")
    [update] = await bot.get_updates()
    query = update.callback_query
    assert query is not None and query.id == pressed["callback_query_id"] and query.data == "sleep:no"
    assert query.message is not None and query.message.message_id == sent.message_id

    await bot.answer_callback_query(query.id, text="Noted")
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)
    [recorded] = (await control.chat(CHAT))["callback_queries"]
    assert (recorded["data"], recorded["answered"], recorded["answer_text"]) == ("sleep:no", True, "Noted")


async def test_edits_and_deletes_are_recorded(bot: Bot, control: BotAPIControl) -> None:
    sent = await bot.send_message(CHAT, "Question 1", reply_markup=keyboard("q1:a"))
    edited = await bot.edit_message_text("Question 1 — answered", chat_id=CHAT, message_id=sent.message_id)
    assert isinstance(edited, Message)
    assert edited.text == "Question 1 — answered" and edited.reply_markup is None  # omitted = removed
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Question 1 — answered", chat_id=CHAT, message_id=sent.message_id)
    await bot.edit_message_reply_markup(
        chat_id=CHAT, message_id=sent.message_id, reply_markup=keyboard("undo")
    )
    assert await bot.delete_message(CHAT, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("again", chat_id=CHAT, message_id=sent.message_id)

    [message] = await control.sent_messages(CHAT)
    assert message["sent"]["text"] == "Question 1" and message["text"] == "Question 1 — answered"
    assert [e["method"] for e in message["edits"]] == ["editMessageText", "editMessageReplyMarkup"]
    assert message["deleted"] is True


# ---- faults ---------------------------------------------------------------------------------


async def test_429_fault_gives_retry_after_and_early_retries_are_refused(
    sandbox: Sandbox, bot: Bot, control: BotAPIControl
) -> None:
    await control.add_fault("sendMessage", "retry_after", chat_id=CHAT, retry_after=1)
    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.send_message(CHAT, "reminder")
    assert raised.value.retry_after == 1
    assert await control.sent_messages(CHAT) == []  # a faulted call delivers nothing

    with pytest.raises(TelegramRetryAfter):  # retried too soon
        await bot.send_message(CHAT, "reminder")
    sandbox.clock.advance(1.0)
    await bot.send_message(CHAT, "reminder")

    records = await control.requests(method="sendMessage", chat_id=CHAT)
    assert [(r["status"], r["outcome"], r["early_retry"]) for r in records] == [
        (429, "fault", False),
        (429, "rate_limited", True),
        (200, "ok", False),
    ]
    stats = await control.stats()
    assert (stats["too_many_requests"], stats["early_retries"]) == (2, 1)
    assert stats["by_method"]["sendMessage"] == {"fault": 1, "ok": 1, "rate_limited": 1}


async def test_forbidden_fault_and_blocked_user(bot: Bot, control: BotAPIControl) -> None:
    await control.add_fault("sendMessage", "forbidden")
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(CHAT, "hello")
    await bot.send_message(CHAT, "hello")  # the fault applied once

    await control.block(CHAT)
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(CHAT, "hello?")
    with pytest.raises(TelegramForbiddenError):
        await bot.send_chat_action(CHAT, "typing")
    [update] = await bot.get_updates()
    assert update.my_chat_member is not None and update.my_chat_member.new_chat_member.status == "kicked"
    await control.unblock(CHAT, notify=False)
    await bot.send_message(CHAT, "welcome back")
    assert [m["text"] for m in await control.sent_messages(CHAT)] == ["hello", "welcome back"]


async def test_server_error_and_slow_faults(bot: Bot, control: BotAPIControl) -> None:
    await control.add_fault("sendMessage", "server_error", status=502, times=2)
    for _ in range(2):
        with pytest.raises(TelegramServerError, match="Bad Gateway"):
            await bot.send_message(CHAT, "x")
    await control.add_fault("*", "slow", delay=0.2)
    started = time.monotonic()
    await bot.send_message(CHAT, "late but delivered")
    assert time.monotonic() - started >= 0.2
    assert [m["text"] for m in await control.sent_messages(CHAT)] == ["late but delivered"]


async def test_fault_mix_is_reproducible_by_seed(bot: Bot, control: BotAPIControl) -> None:
    async def run() -> list[str]:
        await control.set_fault_mix(seed=7, retry_after_percent=30, server_error_percent=20)
        outcomes = []
        for chat_id in range(1, 31):  # one chat each, so no retry_after ban interferes
            try:
                await bot.send_message(chat_id, "x")
                outcomes.append("ok")
            except TelegramRetryAfter:
                outcomes.append("429")
            except TelegramServerError:
                outcomes.append("5xx")
        return outcomes

    await control.set_rate_limits(enabled=False)
    first = await run()
    await control.reset()
    await control.set_rate_limits(enabled=False)
    assert await run() == first
    assert set(first) == {"ok", "429", "5xx"}


# ---- rate limits ----------------------------------------------------------------------------


async def test_per_chat_rate_limit_gives_429(sandbox: Sandbox, bot: Bot, control: BotAPIControl) -> None:
    await control.set_rate_limits(per_chat_per_second=1, per_chat_burst=3)
    for i in range(3):
        await bot.send_message(CHAT, f"m{i}")
    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.send_message(CHAT, "m3")
    await bot.send_message(OTHER, "another chat is not limited")
    sandbox.clock.advance(raised.value.retry_after)
    await bot.send_message(CHAT, "m3")

    assert [m["text"] for m in await control.sent_messages(CHAT)] == ["m0", "m1", "m2", "m3"]
    outcomes = [r["outcome"] for r in await control.requests(chat_id=CHAT)]
    assert outcomes == ["ok", "ok", "ok", "rate_limited", "ok"]
    assert (await control.stats())["too_many_requests"] == 1


async def test_global_rate_limit_gives_429(bot: Bot, control: BotAPIControl) -> None:
    await control.set_rate_limits(global_per_second=5, global_burst=5)
    for chat_id in range(1, 6):
        await bot.send_message(chat_id, "broadcast")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(6, "broadcast")


# ---- files ----------------------------------------------------------------------------------


async def test_multipart_document_and_photo_are_stored(bot: Bot, control: BotAPIControl) -> None:
    data = b"%PDF-1.4 safety plan\n" + bytes(range(256))
    sent = await bot.send_document(CHAT, BufferedInputFile(data, filename="plan.pdf"), caption="Your plan")
    assert sent.document is not None
    assert (sent.document.file_name, sent.document.file_size, sent.caption) == (
        "plan.pdf",
        len(data),
        "Your plan",
    )
    again = await bot.send_document(CHAT, sent.document.file_id)  # by file_id, no upload
    assert again.document is not None and again.document.file_id == sent.document.file_id

    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", 2, 3) + b"\0" * 16
    photo = await bot.send_photo(CHAT, BufferedInputFile(png, filename="chart.png"))
    assert photo.photo is not None and (photo.photo[0].width, photo.photo[0].height) == (2, 3)

    sent_messages = await control.sent_messages(CHAT)
    assert [m["kind"] for m in sent_messages] == ["document", "document", "photo"]
    document = sent_messages[0]["document"]
    assert (document["filename"], document["size"], sent_messages[0]["caption"]) == (
        "plan.pdf",
        len(data),
        "Your plan",
    )
    assert await control.file_bytes(document["file_id"]) == data
    downloaded = await bot.download(sent.document.file_id)
    assert isinstance(downloaded, io.BytesIO) and downloaded.getvalue() == data


# ---- webhook --------------------------------------------------------------------------------


@dataclass
class Receiver:
    url: str
    received: asyncio.Queue[tuple[dict[str, str], dict[str, Any]]]
    statuses: list[int] = field(default_factory=list)  # answered in turn, then 200


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    box = Receiver(url="", received=asyncio.Queue())

    async def handle(request: web.Request) -> web.Response:
        await box.received.put((dict(request.headers), await request.json()))
        return web.Response(status=box.statuses.pop(0) if box.statuses else 200)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    box.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield box
    await runner.cleanup()


async def test_webhook_gets_updates_in_order_with_the_secret(
    bot: Bot, control: BotAPIControl, receiver: Receiver
) -> None:
    assert await bot.set_webhook(receiver.url, secret_token="s3cret_Token-1")  # noqa: S106
    assert (await bot.get_webhook_info()).url == receiver.url
    injected = [await control.inject_message(CHAT, f"m{i}") for i in range(5)]

    got = [await asyncio.wait_for(receiver.received.get(), 2) for _ in injected]
    assert all(headers[SECRET_HEADER] == "s3cret_Token-1" for headers, _ in got)
    assert [body["update_id"] for _, body in got] == [i["update_id"] for i in injected]
    with pytest.raises(TelegramConflictError):
        await bot.get_updates()


async def test_webhook_is_retried_until_it_answers_2xx(
    bot: Bot, control: BotAPIControl, receiver: Receiver
) -> None:
    receiver.statuses = [500, 500]
    await bot.set_webhook(receiver.url)
    injected = await control.inject_message(CHAT, "hello")

    got = [await asyncio.wait_for(receiver.received.get(), 2) for _ in range(3)]
    assert [body["update_id"] for _, body in got] == [injected["update_id"]] * 3
    assert SECRET_HEADER not in got[0][0]
    info = await bot.get_webhook_info()
    assert info.last_error_message is not None and "500" in info.last_error_message


async def test_aiogram_webhook_handler_and_its_reply_in_the_answer(bot: Bot, control: BotAPIControl) -> None:
    # The real aiogram webhook handler checks the secret; its handler answers by returning a method,
    # which aiogram puts in the HTTP answer for Telegram (here: the server) to run.
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def echo(message: Message) -> SendMessage:
        return message.answer(f"echo: {message.text}")

    app = web.Application()
    secret = "hook-secret"  # noqa: S105
    handler = SimpleRequestHandler(dispatcher, bot, secret_token=secret, handle_in_background=False)
    handler.register(app, "/tg")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        await bot.set_webhook(f"http://127.0.0.1:{runner.addresses[0][1]}/tg", secret_token=secret)
        await control.inject_message(CHAT, "hi")
        [reply] = await control.wait_for_messages(CHAT, 1, timeout=2)
        assert reply["text"] == "echo: hi"
        [call] = await control.requests(method="sendMessage")
        assert (call["source"], call["status"]) == ("webhook reply", 200)
    finally:
        await runner.cleanup()


# ---- the control client and the process -----------------------------------------------------


async def test_wait_for_messages_waits_for_the_condition_and_reports_what_it_saw(
    bot: Bot, control: BotAPIControl
) -> None:
    waiting = asyncio.create_task(control.wait_for_messages(CHAT, 1, timeout=2))
    await bot.send_message(CHAT, "Your session starts in 1 hour")
    assert [m["text"] for m in await waiting] == ["Your session starts in 1 hour"]
    with pytest.raises(BotAPIWaitTimeout, match=r"expected 2 .* got 1: .*session starts"):
        await control.wait_for_messages(CHAT, 2, timeout=0.1)


async def test_runs_as_its_own_process() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.sandbox.botapi", "--port", "0", "--token", TOKEN,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        async with ClientSession() as http, http.post(f"{url}/bot{TOKEN}/getMe") as response:
            assert (await response.json())["result"]["username"] == "iopbot_test_bot"
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 5) == 0
