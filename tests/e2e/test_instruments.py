"""The weekly PHQ-9 over real HTTP with the real `iopbot run` process: it arrives on the
participant's questionnaire day after their check-in time (the bot's clock is moved, not waited
for), and item 9 above 0 gets the crisis reply on screen and pages the clinician."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.clock import OffsetFileClock
from bot.sandbox.botapi import BotAPIControl, FakeBotAPI
from tests.support.e2e import BotProcess, buttons, enroll_participant, enroll_staff, running

pytestmark = pytest.mark.e2e

CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture(scope="module")
async def instrument_bot(tmp_path_factory: pytest.TempPathFactory, botapi: FakeBotAPI, module_db_url: str,
                         control: BotAPIControl) -> AsyncIterator[BotProcess]:
    # Questionnaires are off in the harness's default config; this module's bot asks them, today.
    proc = BotProcess(tmp_path_factory.mktemp("bot"), botapi.base_url or "", module_db_url,
                      extra_config='[instruments]\nenabled = true\nday = "tuesday"\n')
    async with running(proc, control):
        yield proc


def _minutes_until_next_questionnaire(proc: BotProcess) -> float:
    """Minutes from the bot's now to just after the next Tuesday 09:30 in Chicago (past any jitter)."""
    now = OffsetFileClock(proc.clock_file).now().astimezone(CHICAGO)
    day = now.date() + timedelta(days=(1 - now.weekday()) % 7)
    target = datetime(day.year, day.month, day.day, 9, 30, tzinfo=CHICAGO)  # DST-safe
    if target < now + timedelta(minutes=10):
        target += timedelta(days=7)
        target = datetime(target.year, target.month, target.day, 9, 30, tzinfo=CHICAGO)
    return (target - now).total_seconds() / 60 + 6  # the jitter is 0-5 minutes


async def test_phq9_item9_gets_the_crisis_reply_and_pages_the_clinician(
        instrument_bot: BotProcess, control: BotAPIControl) -> None:
    clinician = await enroll_staff(instrument_bot, control, "dr-phq")
    sam = await enroll_participant(instrument_bot, control, "P-901", "dr-phq")  # Chicago, check-in 09:00

    instrument_bot.move_clock(minutes=_minutes_until_next_questionnaire(instrument_bot))
    first = await sam.wait_for_message("Little interest or pleasure")
    assert "PHQ-9" in first["visible_text"] and "1/9" in first["visible_text"]
    assert buttons(first) == ["Not at all", "Several days", "More than half the days", "Nearly every day"]
    for number in range(2, 10):
        await sam.press("Not at all")
        await sam.wait_for_message(f"{number}/9")
    await sam.press("Several days")  # item 9 = 1, a total of 1

    crisis = await sam.wait_for_message("988")
    assert "911" in crisis["visible_text"]
    result = await sam.wait_for_message("your total is")
    assert "PHQ-9: your total is 1 out of 27" in result["visible_text"] and "Minimal" in result["visible_text"]
    await sam.wait_for_message("I've let your care team know")  # said once the page was delivered

    alert = await clinician.wait_for_message("Safety alert: URGENT")
    assert "P-901" in alert["visible_text"] and "PHQ-9 item 9" in alert["visible_text"]
    assert buttons(alert)[0] == "Acknowledge"
