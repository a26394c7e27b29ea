"""Tests that run a bot process of their own (to kill it, or in webhook mode). They live apart from
the tests that share one process, so that only one bot ever talks to this module's Bot API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from bot.sandbox.botapi import BotAPIControl, FakeBotAPI
from tests.support.e2e import BotProcess, Person, enroll_participant, enroll_staff, new_user_id
from tests.support.workers import WorkerBot, register_webhook

pytestmark = pytest.mark.e2e


async def test_webhook_mode_checks_the_secret(tmp_path: Path, botapi: FakeBotAPI, db_url: str,
                                             control: BotAPIControl) -> None:
    worker = WorkerBot(tmp_path, botapi.base_url or "", db_url, "webhook")
    before = len(await control.requests(method="setWebhook"))  # the module's Bot API is shared
    printed = await register_webhook(worker, control, [])  # once, by the operator: no worker sets it
    # Every kind the bot handles, the peer groups' member updates included (asked for by name).
    assert "webhook set" in printed and ("callback_query, chat_join_request, chat_member, edited_message, message, "
                                         "my_chat_member") in printed, printed
    worker.start()
    try:
        await worker.wait_listening()
        assert len(await control.requests(method="setWebhook")) == before + 1  # the command's; none from the worker
        port = worker.port
        async with aiohttp.ClientSession() as http:
            assert (await control.webhook())["secret_token_set"]
            forged = {"update_id": 999_999,
                      "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
                                  "from": {"id": 5, "is_bot": False, "first_name": "X"}, "text": "/start"}}
            async with http.post(f"http://127.0.0.1:{port}/telegram/webhook", json=forged,
                                 headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}) as response:
                assert response.status == 403
            async with http.post(f"http://127.0.0.1:{port}/telegram/webhook", json=forged) as response:
                assert response.status == 403
        stranger = Person(control, new_user_id())
        await stranger.say("/start")  # delivered by the Bot API with the right secret
        assert "open the invite link" in await stranger.read_text()
        assert len(await control.sent_messages(5)) == 0  # the forged update did nothing
        info = await asyncio.to_thread(worker.cli, "webhook", "info")
        assert info.returncode == 0 and worker.url in info.stdout and "pending updates:  0" in info.stdout, info
        deleted = await asyncio.to_thread(worker.cli, "webhook", "delete")
        assert deleted.returncode == 0 and (await control.webhook())["url"] is None, deleted
    finally:
        await worker.stop_async()


async def test_alert_survives_sigkill_between_flag_and_page(own_bot: BotProcess, control: BotAPIControl) -> None:
    own_bot.start()
    await own_bot.wait_ready(control)
    clinician = await enroll_staff(own_bot, control, "dr-kill")
    sam = await enroll_participant(own_bot, control, "P-kill", "dr-kill")
    # Telegram is failing for the clinician's chat, so the page cannot go out before the crash.
    await control.add_fault("sendMessage", "server_error", chat_id=clinician.chat_id, times=1000, status=502)
    await sam.say("i want to kill myself")
    assert "988" in (await sam.read(2))[0]["visible_text"]  # help on screen regardless
    await clinician.wait_for_message("Welcome")
    own_bot.kill()
    await control.clear_faults()
    assert not any("Safety alert:" in (m["visible_text"] or "") for m in await clinician.all_messages())

    own_bot.start()
    await own_bot.wait_ready(control)
    await clinician.wait_for_message("Safety alert: URGENT", timeout=20)
    own_bot.move_clock(minutes=1)  # let a few more ticks pass on a moved clock
    await sam.say("/help")
    await sam.read()
    pages = [m for m in await clinician.all_messages() if "Safety alert:" in (m["visible_text"] or "")]
    assert len(pages) == 1, f"expected exactly one page for step 1, got {len(pages)}"
