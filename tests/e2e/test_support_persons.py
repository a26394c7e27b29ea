"""Support persons end to end: the real `iopbot run` process over HTTP with the local Bot API, on
SQLite and PostgreSQL, the clock moved (never waited for).

A participant invites their mother with /support, sharing only "checked in this week"; she opens
the forwarded link, gives her own consent, and from then on: a family-session reminder with the
video link (a family session in the calendar for that participant), the weekly update saying only
what was chosen, her own weekly check-in (a low week tells the clinician), her worry about the
participant reaching the clinician as a concern and her own crisis paging the clinician as an
urgent support-person alert (the participant hears nothing of either). Staff invite a second
support person with `iopbot invite support`. The participant stops the mother's access: she is told
plainly, and nothing more comes."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.clock import OffsetFileClock
from bot.sandbox.botapi import BotAPIControl
from tests.support.e2e import BotProcess, Person, buttons, enroll_participant, enroll_staff, new_user_id

pytestmark = pytest.mark.e2e

CHICAGO = ZoneInfo("America/Chicago")
LINK = "https://zoom.us/j/5550100"


async def wait_for(person: Person, needle: str, timeout: float = 30.0) -> dict[str, Any]:  # noqa: ASYNC109
    """The first message in this chat that shows `needle` (others may come in between)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in await person.all_messages():
            if needle in (message.get("visible_text") or ""):
                return message
        await asyncio.sleep(0.1)
    texts = [(m.get("visible_text") or "")[:90] for m in await person.all_messages()]
    raise AssertionError(f"no message with {needle!r} in chat {person.chat_id}: {texts}")


async def wait_for_button(person: Person, label: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not any(label in buttons(m) for m in await person.all_messages()):
        assert time.monotonic() < deadline, f"no button {label!r} in chat {person.chat_id}"
        await asyncio.sleep(0.05)


async def texts_of(person: Person) -> list[str]:
    return [m.get("visible_text") or "" for m in await person.all_messages()]


def now_of(proc: BotProcess) -> datetime:
    return OffsetFileClock(proc.clock_file).now()


def move_to(proc: BotProcess, when: datetime) -> None:
    proc.move_clock(seconds=(when - now_of(proc)).total_seconds())


async def invite(participant: Person, name: str, share: str | None) -> str:
    await participant.say("/support")
    await wait_for(participant, "Your support persons")
    await participant.press("Invite someone")
    await wait_for(participant, "Who do you want to invite?")
    await participant.say(name)
    await wait_for(participant, f"What may {name} see about you?")
    if share:
        await participant.press(share)
        await wait_for_button(participant, f"✅ {share}")
    await participant.press("Done")
    await wait_for(participant, "Before I make the link")
    await participant.press("I agree, make the link")
    link = await participant.wait_for_message("You are invited to be a support person")
    found = re.search(r"\?start=([A-Za-z0-9_-]+)", link["visible_text"])
    assert found, link
    return found.group(1)


async def test_support_person_end_to_end(shared_bot: BotProcess, control: BotAPIControl, tmp_path: Path) -> None:
    clinician = await enroll_staff(shared_bot, control, "dr-family")
    participant = await enroll_participant(shared_bot, control, "P-FAM", "dr-family")  # Chicago

    # The participant invites her mother, sharing only "checked in this week", and consents.
    token = await invite(participant, "mom", "Checked in this week")
    mom = Person(control, new_user_id(), first_name="Ana")
    await mom.say(f"/start {token}")
    consent = await wait_for(mom, "Being a support person")
    assert "whether you checked in this week" in consent["visible_text"]
    assert "not end-to-end encrypted" in consent["visible_text"]
    await mom.press("I agree")
    welcome = await wait_for(mom, "You are all set")
    joined = now_of(shared_bot)  # her week runs from here (not from after the family session's move)
    assert "What to do in a crisis" in buttons(welcome)
    await wait_for(participant, "mom accepted your invitation")
    # The link worked once: someone else who got it is told it does not work.
    stranger = Person(control, new_user_id())
    await stranger.say(f"/start {token}")
    assert "link doesn't work" in await stranger.read_text()
    # Her commands are hers: the participant's and staff's are refused.
    await mom.say("/caseload")
    await wait_for(mom, "not available to support persons")

    # Staff set up a second support person with the participant: the participant is told.
    made = shared_bot.cli("invite", "support", "--participant", "P-FAM", "--name", "dad", "--share", "attendance")
    assert made.returncode == 0, made.stderr
    assert "P-FAM-S2" in made.stdout and "shares: attendance" in made.stdout
    await wait_for(participant, "Your care team set up a support person for you: dad")

    # A family session for P-FAM in three hours: 15 minutes before, mom gets the reminder with the link.
    now = now_of(shared_bot)
    local = (now + timedelta(hours=3)).astimezone(CHICAGO).replace(tzinfo=None, second=0, microsecond=0)
    start = local.replace(minute=local.minute - local.minute % 5)
    calendar = tmp_path / "family.csv"
    calendar.write_text("title,kind,start,duration_minutes,timezone,video_link,facilitator,group,rrule,participants\n"
                        f"Family session,family,{start:%Y-%m-%dT%H:%M},60,America/Chicago,{LINK},dr-family,,,P-FAM\n")
    imported = shared_bot.cli("sessions", "import", str(calendar))
    assert imported.returncode == 0, imported.stderr
    move_to(shared_bot, start.replace(tzinfo=CHICAGO) - timedelta(minutes=15) + timedelta(seconds=1))
    reminder = await wait_for(mom, "Your family session starts at")
    join = [b for row in reminder["reply_markup"]["inline_keyboard"] for b in row]
    assert join == [{"text": "Join", "url": LINK}]  # no "Can't attend": that is the participant's to say
    assert "Family session" not in reminder["visible_text"]  # minimum necessary: never the title

    # Her worry about the participant: the level the safety layer gives (a concern): a notice, no page.
    await mom.say("she said she wants to end it")
    await wait_for(mom, "Thank you for telling me")
    notice = await wait_for(clinician, "worry about P-FAM")
    assert "P-FAM's support person mom (P-FAM-S1)" in notice["visible_text"]
    assert "nobody was paged" in notice["visible_text"] and "end it" not in notice["visible_text"]

    # Her own crisis: the crisis reply at once, and the participant's clinician paged, urgent.
    participant_seen = len(await participant.all_messages())
    await mom.say("I can't take this anymore, I want to kill myself")
    reply = await wait_for(mom, "I'm really glad you told me")
    assert "988" in reply["visible_text"]
    page = await wait_for(clinician, "Support person alert")
    assert "URGENT" in page["visible_text"] and "P-FAM" in page["visible_text"]
    assert "the support person's own distress" in page["visible_text"]
    assert "Acknowledge" in buttons(page) and "kill" not in page["visible_text"]
    await wait_for(mom, "I've let their care team know")
    await clinician.press("Acknowledge")

    # A week later (18:00 in her zone, the weekday she joined): only what was shared, then her check-in.
    week = (joined + timedelta(days=7)).astimezone(CHICAGO).replace(hour=18, minute=2, second=0, microsecond=0)
    move_to(shared_bot, week.astimezone(ZoneInfo("UTC")))
    update = await wait_for(mom, "This week's update")
    assert "with the program this week." in update["visible_text"]  # checked in, or did not
    assert "attended" not in update["visible_text"]  # attendance was not chosen for her
    await wait_for(mom, "How are you doing this week?")
    await mom.press("1")
    await wait_for(mom, "Anything you'd like to add?")
    await mom.press("Skip")
    await wait_for(mom, "That sounds like a hard week")
    low = await wait_for(clinician, "rated their week 1/10")
    assert "P-FAM's support person mom" in low["visible_text"]
    assert not any("support person" in t.lower() and "alert" in t.lower()
                   for t in (await texts_of(participant))[participant_seen:])  # told nothing of her words

    # The participant stops it: she is told plainly, without detail, and nothing more comes.
    await participant.say("/support")
    overview = await wait_for(participant, "1. mom")
    assert "whether you checked in this week" in overview["visible_text"]
    await participant.press("Stop 1")
    await wait_for(participant, "Stop mom's access?")
    await participant.press("Yes, stop it")
    await wait_for(participant, "mom gets nothing more")
    ended = await wait_for(mom, "Your connection as a support person has ended")
    assert "P-FAM" not in ended["visible_text"]
    seen = len(await mom.all_messages())
    move_to(shared_bot, now_of(shared_bot) + timedelta(days=7, minutes=5))
    await mom.say("/family")
    await wait_for(mom, "no longer connected")
    later = (await texts_of(mom))[seen:]
    assert not any("update" in t or "check-in" in t or "session" in t for t in later), later
