"""What an operator relies on at 2 am: replayed updates handled once, a forged webhook refused,
no participant words in the logs, and an alert that survives a SIGKILL."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from bot.sandbox.botapi import BotAPIControl, Fault
from tests.support.e2e import BotProcess, Person, enroll_participant, enroll_staff, new_user_id

pytestmark = pytest.mark.e2e


async def test_a_replayed_update_is_handled_once(shared_bot: BotProcess, control: BotAPIControl) -> None:
    await enroll_staff(shared_bot, control, "dr-dup")
    sam = await enroll_participant(shared_bot, control, "P-dup", "dr-dup")
    sent = await control.inject_message(sam.user_id, "a note for my therapist", first_name="Sam")
    await sam.read()
    replay = {"update_id": sent["update_id"], "message": sent["message"]}
    await control.inject_update(replay)  # Telegram delivering the same update again
    await sam.say("/help")  # a later update: once it is answered, the replay was processed too
    await sam.read()
    notes = [m for m in await sam.all_messages() if "saved this for your care team" in (m["visible_text"] or "")]
    assert len(notes) == 1


async def test_logs_hold_no_words_a_participant_typed(shared_bot: BotProcess, control: BotAPIControl) -> None:
    await enroll_staff(shared_bot, control, "dr-log")
    sam = await enroll_participant(shared_bot, control, "P-log", "dr-log")
    await sam.say("My sister Rosalind found out about the relapse on Tuesday")
    await sam.read()
    await sam.say("i want to kill myself with the pills in the blue cabinet")
    await sam.read(2)
    await sam.say("/settings")
    await sam.read()
    await sam.press("Time zone")
    await sam.read()
    await sam.say("Fairbanks Alaska where Rosalind lives")
    await sam.read()
    log = shared_bot.log_text()
    assert "DEBUG" in log or "INFO" in log  # the log is real and was written at DEBUG level
    for typed in sam.typed:
        if typed.startswith("/"):
            continue
        assert typed not in log, f"participant text found in the log: {typed[:30]!r}"
    for word in ("Rosalind", "cabinet", "Fairbanks", "P-log"):
        assert word not in log


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
        own_bot.stop()


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
