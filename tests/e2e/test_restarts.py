"""Tests that run a bot process of their own (to kill it, or in webhook mode). They live apart from
the tests that share one process, so that only one bot ever talks to this module's Bot API."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from bot.sandbox.botapi import BotAPIControl
from tests.support.e2e import BotProcess, Person, enroll_participant, enroll_staff, new_user_id

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.bot_config("")
async def test_webhook_mode_checks_the_secret(own_bot: BotProcess, control: BotAPIControl) -> None:
    port = _free_port()
    own_bot.extra_config = f"""
        [telegram]
        mode = "webhook"
        webhook_url = "http://127.0.0.1:{port}/telegram/webhook"
        webhook_listen_port = {port}
    """
    own_bot.extra_env = {"IOPBOT_WEBHOOK_SECRET": "s3cret-value-for-tests"}
    own_bot.start()
    try:
        await own_bot.wait_ready(control)
        async with aiohttp.ClientSession() as http:
            assert (await control.webhook())["secret_token_set"]
            forged = {"update_id": 999_999, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
                                                        "from": {"id": 5, "is_bot": False, "first_name": "X"},
                                                        "text": "/start"}}
            async with http.post(f"http://127.0.0.1:{port}/telegram/webhook", json=forged,
                                 headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}) as response:
                assert response.status == 403
            async with http.post(f"http://127.0.0.1:{port}/telegram/webhook", json=forged) as response:
                assert response.status == 403
        stranger = Person(control, new_user_id())
        await stranger.say("/start")  # delivered by the Bot API with the right secret
        assert "open the invite link" in await stranger.read_text()
        assert len(await control.sent_messages(5)) == 0  # the forged update did nothing
    finally:
        await own_bot.stop_async()


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
