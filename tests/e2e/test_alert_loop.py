"""The closed loop of alerts, over real HTTP with the real `iopbot run` process (one process per
database for the module; the tests run in order and each uses its own people):

1. nobody can be reached at all: the participant gets the crisis numbers and the after-hours line,
   never "your care team has been told";
2. the therapist never opened Telegram: the backup is paged within seconds, and the participant's
   reply is truthful;
3. nobody on the care team can be reached: leads and admins are paged, and `iopbot report alerts`
   lists the coverage failures;
4. acknowledged but no outcome: a reminder after the configured time; an outcome closes it;
5. unacknowledged after the last round: every lead and admin, then daily, until acknowledged;
6. 50 messages in 5 seconds while an alert is open: at most 2 notices.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.sandbox.botapi import BotAPIControl, FakeBotAPI
from tests.support.e2e import BotProcess, Person, enroll_participant, enroll_staff, issue_invite, running

pytestmark = pytest.mark.e2e

CONFIG = """
    [program]
    after_hours_phone = "555-0100"
    [escalation]
    max_rounds = 1
    resolve_reminder_minutes = 20.0
    follow_up_notice_minutes = 10.0
"""
CRISIS = "i want to kill myself"
IMMINENT = "i have the pills here and i want to die tonight"
TOLD = "I've let your care team know"
NOT_REACHED = "I couldn't reach your care team"
# People enrolled by an earlier test that a later one needs, per bot process (database).
KNOWN: dict[str, dict[str, Person]] = {}


@pytest.fixture(scope="module")
async def alert_bot(tmp_path_factory: pytest.TempPathFactory, botapi: FakeBotAPI, module_db_url: str,
                    control: BotAPIControl) -> AsyncIterator[BotProcess]:
    proc = BotProcess(tmp_path_factory.mktemp("alert-bot"), botapi.base_url or "", module_db_url,
                      extra_config=CONFIG)
    async with running(proc, control):
        yield proc


def shown(message: dict[str, Any]) -> str:
    return message.get("visible_text") or message.get("caption") or ""


async def messages_with(person: Person, *parts: str) -> list[dict[str, Any]]:
    return [m for m in await person.all_messages() if all(p in shown(m) for p in parts)]


async def wait_for(person: Person, *parts: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:  # noqa: ASYNC109
    """Wait until `count` messages in the chat show every one of `parts`; return them."""
    deadline = time.monotonic() + timeout
    while True:
        found = await messages_with(person, *parts)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            seen = [shown(m)[:90] for m in (await person.all_messages())[-6:]]
            raise AssertionError(f"chat {person.chat_id}: {count} message(s) with {parts} not seen in {timeout}s: {seen}")
        await asyncio.sleep(0.05)


async def press_on(control: BotAPIControl, person: Person, message: dict[str, Any], label: str) -> None:
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for button in row:
            if button["text"] == label:
                await control.press_button(person.user_id, message["message_id"], button["callback_data"],
                                           chat_id=person.chat_id)
                return
    raise AssertionError(f"no button {label!r} on {shown(message)[:80]!r}")


async def invite_only(proc: BotProcess, alias: str, role: str = "therapist") -> None:
    """A staff member invited who never opened the link: no Telegram chat."""
    await issue_invite(proc.db_url, "staff", alias, role=role)


async def test_nobody_reachable_at_all_gets_the_numbers_and_the_after_hours_line(
        alert_bot: BotProcess, control: BotAPIControl) -> None:
    await invite_only(alert_bot, "dr-never")
    pat = await enroll_participant(alert_bot, control, "P-401", "dr-never")
    await pat.say(CRISIS)
    crisis, plain = (shown(m) for m in await pat.read(2))
    assert "988" in crisis
    assert NOT_REACHED in plain and "988" in plain and "911" in plain and "555-0100" in plain
    assert not await messages_with(pat, TOLD)


async def test_an_unlinked_therapist_is_skipped_and_the_backup_paged_within_seconds(
        alert_bot: BotProcess, control: BotAPIControl) -> None:
    await invite_only(alert_bot, "dr-unlinked")
    backup = await enroll_staff(alert_bot, control, "dr-backup")
    pat = await enroll_participant(alert_bot, control, "P-402", "dr-unlinked", backup="dr-backup")
    said = time.monotonic()
    await pat.say(CRISIS)
    (page,) = await wait_for(backup, "Safety alert: URGENT", "P-402", timeout=10)
    assert time.monotonic() - said < 5, "the backup was not paged within seconds"
    assert "backup on call" in shown(page)
    crisis, told = (shown(m) for m in await pat.read(2))
    assert "988" in crisis and TOLD in told  # true: the backup's page was delivered


async def test_nobody_on_the_care_team_reachable_pages_leads_and_admins(
        alert_bot: BotProcess, control: BotAPIControl) -> None:
    await invite_only(alert_bot, "dr-gone")
    await invite_only(alert_bot, "lead-unlinked", role="lead")
    admin = await enroll_staff(alert_bot, control, "root", role="admin")
    KNOWN.setdefault(alert_bot.db_url, {})["root"] = admin
    pat = await enroll_participant(alert_bot, control, "P-403", "dr-gone")
    await pat.say(CRISIS)
    (page,) = await wait_for(admin, "Safety alert: URGENT", "P-403")
    assert "nobody on the care team could be reached" in shown(page)
    crisis, told = (shown(m) for m in await pat.read(2))
    assert TOLD in told  # someone was reached: the admin
    report = await asyncio.to_thread(alert_bot.cli, "report", "alerts")
    assert report.returncode == 0, report.stderr
    assert "coverage failures (nobody in the paging chain could be reached): 2" in report.stdout, report.stdout
    assert "(P-401)" in report.stdout and "(P-403)" in report.stdout


async def test_acknowledged_but_unresolved_reminds_after_the_configured_time(
        alert_bot: BotProcess, control: BotAPIControl) -> None:
    clinician = await enroll_staff(alert_bot, control, "dr-ack")
    pat = await enroll_participant(alert_bot, control, "P-404", "dr-ack")
    await pat.say(CRISIS)
    (page,) = await wait_for(clinician, "Safety alert: URGENT", "P-404")
    await press_on(control, clinician, page, "Acknowledge")
    await wait_for(clinician, "P-404", "Acknowledged by dr-ack")
    alert_bot.move_clock(minutes=21)  # [escalation] resolve_reminder_minutes = 20
    (reminder,) = await wait_for(clinician, "No outcome yet", "P-404")
    await press_on(control, clinician, reminder, "Reached them, safe")
    (ask,) = await wait_for(clinician, "Add a note about P-404?")
    await press_on(control, clinician, ask, "Skip")
    await wait_for(clinician, "P-404", "Closed by dr-ack")
    await clinician.say("/alerts")
    await wait_for(clinician, "No open safety alerts")


async def test_unacknowledged_after_the_last_round_goes_to_every_lead_and_admin_then_daily(
        alert_bot: BotProcess, control: BotAPIControl) -> None:
    clinician = await enroll_staff(alert_bot, control, "dr-late")
    backup = await enroll_staff(alert_bot, control, "dr-late-b")
    lead = await enroll_staff(alert_bot, control, "lead-on", role="lead")
    admin = KNOWN[alert_bot.db_url]["root"]  # the admin enrolled in the coverage test
    pat = await enroll_participant(alert_bot, control, "P-405", "dr-late", backup="dr-late-b")
    await pat.say(IMMINENT)  # imminent: 5 minutes to acknowledge each page
    await wait_for(clinician, "Safety alert: IMMINENT", "P-405")
    alert_bot.move_clock(minutes=6)
    await wait_for(backup, "Safety alert: IMMINENT", "P-405")
    alert_bot.move_clock(minutes=6)  # the unlinked lead is skipped at once: the linked one is paged
    await wait_for(lead, "Safety alert: IMMINENT", "P-405")
    alert_bot.move_clock(minutes=6)  # the last round is over (max_rounds = 1): every lead and admin
    everyone = "nobody acknowledged after every round"
    await wait_for(lead, "P-405", everyone)
    await wait_for(admin, "P-405", everyone)
    alert_bot.move_clock(days=1, minutes=1)  # and again the next day
    await wait_for(lead, "P-405", everyone, count=2)
    (first, second) = await wait_for(admin, "P-405", everyone, count=2)
    await press_on(control, admin, second, "Acknowledge")
    await wait_for(admin, "P-405", "Acknowledged by root")
    alert_bot.move_clock(days=1, minutes=1)
    await pat.say("/help")  # a round trip through the bot: time for any page that was due
    await wait_for(pat, "Here is what I can do")
    assert len(await messages_with(admin, "P-405", everyone)) == 2
    assert len(await messages_with(clinician, "Safety alert:", "P-405")) == 1


async def test_fifty_messages_in_five_seconds_make_at_most_two_notices(
        alert_bot: BotProcess, control: BotAPIControl) -> None:
    clinician = await enroll_staff(alert_bot, control, "dr-many")
    pat = await enroll_participant(alert_bot, control, "P-406", "dr-many")
    await pat.say(CRISIS)
    await wait_for(clinician, "Safety alert: URGENT", "P-406")
    await pat.read(2)
    started = time.monotonic()
    for n in range(50):
        await pat.say(f"sorry, i'm fine, please ignore that ({n})")
    assert time.monotonic() - started < 5
    await pat.read(50, timeout=60)  # every message answered (and stored for the care team)
    notices = await messages_with(clinician, "P-406", "wrote again")
    assert 1 <= len(notices) <= 2, [shown(m) for m in notices]
    alert_bot.move_clock(minutes=11)  # the interval is over: what is left comes in one notice
    await wait_for(clinician, "P-406", "wrote again", "(50 since the flag)")
    notices = await messages_with(clinician, "P-406", "wrote again")
    assert len(notices) <= 2, [shown(m) for m in notices]
