"""People come and go, coverage is checked, and the data key is held to: over real HTTP with the real
bot process and the real `iopbot` command, on SQLite and PostgreSQL. One bot process (with a data
key) serves the module; the last test restarts it with the wrong key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from bot.db.engine import make_engine
from bot.sandbox.botapi import BotAPIControl, FakeBotAPI
from tests.support.e2e import BotProcess, enroll_participant, enroll_staff, issue_invite, running

pytestmark = pytest.mark.e2e

DATA_KEY = "e2e-data-key-7f3a9c1d2b4e"


@pytest.fixture(scope="module")
async def keyed_bot(tmp_path_factory: pytest.TempPathFactory, botapi: FakeBotAPI, module_db_url: str,
                    control: BotAPIControl) -> AsyncIterator[BotProcess]:
    # The daily coverage notice at midnight: whenever the suite runs, its time today has passed.
    proc = BotProcess(tmp_path_factory.mktemp("bot"), botapi.base_url or "", module_db_url,
                      extra_config='[coverage]\nnotice_time = "00:00"', env={"IOPBOT_DATA_KEY": DATA_KEY})
    async with running(proc, control):
        yield proc


async def test_nobody_reachable_means_doctor_exits_non_zero(keyed_bot: BotProcess, control: BotAPIControl) -> None:
    # The therapist was invited but never opened Telegram; no backup, no on-call, no lead.
    await issue_invite(keyed_bot.db_url, "staff", "dr-never", role="therapist")
    sam = await enroll_participant(keyed_bot, control, "P-alone", "dr-never")
    await sam.say("I want to kill myself")
    assert "988" in (await sam.read())[0]["visible_text"]  # the crisis reply, whoever can be paged

    doctor = keyed_bot.cli("doctor")
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert "UNCOVERED P-alone (active): dr-never (clinician): no linked Telegram chat" in doctor.stdout
    assert doctor.stderr.strip().splitlines()[-1] == "doctor: 1 participant(s) have nobody who can be paged"
    assert DATA_KEY not in doctor.stdout + doctor.stderr

    lead = await enroll_staff(keyed_bot, control, "lin-lead", "lead")
    doctor = keyed_bot.cli("doctor")
    assert doctor.returncode == 0, doctor.stdout  # a reachable lead is in everyone's chain
    assert "Participants for whom only leads and admins can be paged" in doctor.stdout
    assert "  P-alone (active): dr-never (clinician): no linked Telegram chat" in doctor.stdout
    keyed_bot.move_clock(minutes=11)  # the next coverage check ([schedule] plan_interval_minutes)
    await lead.wait_for_message("Coverage gap", timeout=30)  # and the lead is told, in Telegram
    assert "P-alone" in (await lead.wait_for_message("Coverage gap"))["visible_text"]


async def test_discharge_says_goodbye_stops_the_program_and_a_crisis_still_pages(
        keyed_bot: BotProcess, control: BotAPIControl) -> None:
    clinician = await enroll_staff(keyed_bot, control, "dr-dis")
    alex = await enroll_participant(keyed_bot, control, "P-leaving", "dr-dis")
    result = keyed_bot.cli("participant", "discharge", "P-leaving")
    assert result.returncode == 0 and "P-leaving: discharged." in result.stdout, result.stderr
    goodbye = await alex.read_text()
    assert "Thank you for being part of Test IOP" in goodbye and "988" in goodbye and "911" in goodbye
    assert "P-leaving was discharged" in (await clinician.wait_for_message("was discharged"))["visible_text"]

    await alex.say("hello?")
    assert "Your time in the program has ended" in await alex.read_text()
    await alex.say("/checkin")
    assert "Your time in the program has ended" in await alex.read_text()
    await alex.say("I want to end my life tonight, I have the pills")
    assert "911" in (await alex.read())[0]["visible_text"]
    alert = await clinician.wait_for_message("Safety alert:")
    assert "P-leaving" in alert["visible_text"]


async def test_deactivation_is_refused_until_the_caseload_is_handed_over(
        keyed_bot: BotProcess, control: BotAPIControl) -> None:
    leaving = await enroll_staff(keyed_bot, control, "dr-leaving")
    taking = await enroll_staff(keyed_bot, control, "dr-taking")
    sam = await enroll_participant(keyed_bot, control, "P-handed", "dr-leaving")

    refused = keyed_bot.cli("staff", "deactivate", "dr-leaving")
    assert refused.returncode == 2
    assert "dr-leaving still holds 1 participant(s) (P-handed)" in refused.stderr
    done = keyed_bot.cli("staff", "deactivate", "dr-leaving", "--reassign-to", "dr-taking")
    assert done.returncode == 0 and "1 participant(s) now with dr-taking: P-handed" in done.stdout, done.stderr

    await sam.say("I want to kill myself")
    await sam.read()
    page = await taking.wait_for_message("Safety alert:")
    assert "P-handed" in page["visible_text"]
    await leaving.say("/caseload")  # no longer staff: nothing of anyone's
    assert "open the invite link" in await leaving.read_text()
    assert all("P-handed" not in (m.get("visible_text") or "") for m in await leaving.all_messages())


async def test_the_wrong_data_key_refuses_to_start(keyed_bot: BotProcess, control: BotAPIControl) -> None:
    engine = make_engine(keyed_bot.db_url)
    try:
        async with engine.connect() as conn:
            stored = (await conn.execute(sa.text("SELECT text FROM inbound_messages WHERE text IS NOT NULL"))).scalars()
            values = list(stored)
    finally:
        await engine.dispose()
    assert values and all(v.startswith("enc:v2:") for v in values)  # what they wrote is encrypted at rest
    assert not any("kill" in v for v in values)

    await keyed_bot.stop_async()
    keyed_bot.extra_env = {"IOPBOT_DATA_KEY": "not-the-right-key"}
    started = len(keyed_bot.log_text())
    keyed_bot.start()
    assert keyed_bot.proc is not None
    deadline = time.monotonic() + 60
    while keyed_bot.proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert keyed_bot.proc.returncode == 2, keyed_bot.log_tail()
    log = keyed_bot.log_text()[started:]
    assert "Traceback" not in log and "not-the-right-key" not in log and DATA_KEY not in log, log
    (line,) = [line for line in log.splitlines() if line.startswith("config error:")]
    assert "IOPBOT_DATA_KEY is not the key this database's text is encrypted with" in line
    assert "iopbot keys rotate" in line  # and how to fix it
    # No key at all is refused the same way (tests/services/test_data_key.py); the bot stays down.
