"""What an operator relies on at 2 am: replayed updates handled once, and no participant words in
the logs. (Webhook secrets and SIGKILL are in test_restarts.py: those tests need their own bot.)"""

from __future__ import annotations

import pytest

from bot.sandbox.botapi import BotAPIControl
from tests.support.e2e import BotProcess, enroll_participant, enroll_staff

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
