"""A program enrolls a clinician and a participant, who then use the bot — over real HTTP,
with the real `iopbot` process, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import re

import pytest

from bot.sandbox.botapi import BotAPIControl
from tests.support.e2e import BotProcess, Person, buttons, enroll_staff, issue_invite, new_user_id

pytestmark = pytest.mark.e2e


async def test_whole_enrollment_with_the_real_invite_command(shared_bot: BotProcess, control: BotAPIControl) -> None:
    result = shared_bot.cli("invite", "staff", "--alias", "dr-cli", "--role", "therapist")
    assert result.returncode == 0, result.stderr
    staff_token = re.search(r"https://t\.me/iopbot_test_bot\?start=([\w-]+)", result.stdout)
    assert staff_token and "single use" in result.stdout
    clinician = Person(control, new_user_id(), first_name="Dr")
    await clinician.say(f"/start {staff_token.group(1)}")
    assert "Welcome, dr-cli. You are enrolled as therapist" in await clinician.read_text()

    result = shared_bot.cli("invite", "participant", "--alias", "P-cli", "--therapist", "dr-cli")
    token = re.search(r"start=([\w-]+)", result.stdout)
    assert result.returncode == 0 and token, result.stderr
    sam = Person(control, new_user_id())
    await sam.say(f"/start {token.group(1)}")
    consent = (await sam.read())[0]
    assert "not end-to-end encrypted" in consent["visible_text"]
    assert "Nobody watches this chat around the clock" in consent["visible_text"]
    assert "call 911" in consent["visible_text"]
    assert buttons(consent) == ["I agree", "I do not agree", "🌐 Español"]  # the language, before anything is stored
    await sam.press("I agree")
    assert "Which time zone" in await sam.read_text(2)
    await sam.say("Mars")  # a typo or a joke: a clear message, nothing changed
    assert "couldn't find that time zone" in await sam.read_text()
    await sam.say("denver")
    text = await sam.read_text(2)
    assert "America/Denver" in text and "What time should I send your daily check-in" in text
    await sam.press("09:00")
    assert "Daily check-in at 09:00" in await sam.read_text(2)
    await sam.press("Keep 22:00")
    assert "You're all set. Your daily check-in comes at 09:00 (America/Denver)" in await sam.read_text()

    bad = shared_bot.cli("invite", "participant", "--alias", "P-x", "--therapist", "nobody")
    assert bad.returncode == 2 and "invite them first" in bad.stderr


async def test_participant_settings_pause_export_and_stop(shared_bot: BotProcess, control: BotAPIControl) -> None:
    from tests.support.e2e import enroll_participant

    clinician = await enroll_staff(shared_bot, control, "dr-lee")
    sam = await enroll_participant(shared_bot, control, "P-101", "dr-lee")

    await sam.say("/settings")
    assert "Daily check-in: 09:00" in (await sam.read())[0]["visible_text"]
    await sam.press("Check-in time")
    assert "What time should I send" in await sam.read_text()
    await sam.say("half past seven")
    assert "couldn't read that time" in await sam.read_text()
    await sam.say("7:30pm")
    assert "Daily check-in: 19:30" in await sam.read_text(2)

    await sam.say("/pause")
    assert "paused. Your care team will be told" in await sam.read_text()
    assert "P-101 paused check-ins and reminders (/pause)" in await clinician.read_text()
    await sam.say("/resume")
    assert "Welcome back. Your daily check-in comes at 19:30" in await sam.read_text()
    assert "P-101 resumed check-ins and reminders (/resume)" in await clinician.read_text()

    await sam.say("I had a rough morning but went to group.")
    assert "saved this for your care team" in await sam.read_text()

    # What else they keep here is theirs to take too: a goal, a medication reminder, and a message
    # from their therapist with their reply. No quiet hours first, so the message comes now whatever
    # the hour this test runs at.
    await sam.say("/settings")
    await sam.read()
    await sam.press("Quiet hours")
    await sam.wait_for_message("During quiet hours")
    await sam.press("No quiet hours")
    await sam.wait_for_message("Quiet hours: none")
    await sam.say("/goals")
    await sam.wait_for_message("You have no goals yet")
    await sam.press("Add a goal")
    await sam.wait_for_message("Type your goal in a few words")
    await sam.say("Walk 10 minutes a day")
    await sam.wait_for_message("Saved. Your goal: Walk 10 minutes a day")
    await sam.say("/meds")
    await sam.wait_for_message("Your medication reminders")
    await sam.press("Add a reminder")
    await sam.wait_for_message("What do you want to call this reminder")
    await sam.say("evening pill")
    await sam.wait_for_message("At what time")
    await sam.say("21:00")
    await sam.wait_for_message("On which days")
    await sam.press("Every day")
    await sam.wait_for_message("May your care team see how many reminders")
    await sam.press("No")
    await sam.wait_for_message("Saved. I'll remind you at 21:00, every day")
    await clinician.say("/message P-101 How did this week's groups go for you?")
    await sam.wait_for_message("A message from your therapist")
    await sam.press("Reply")
    await sam.wait_for_message("Type your reply to your therapist")
    await sam.say("Better than last week, thanks.")
    await clinician.wait_for_message("P-101 replied to your message")
    sam.seen, clinician.seen = len(await sam.all_messages()), len(await clinician.all_messages())

    await sam.say("/mydata")
    export = (await sam.read())[0]
    assert export["kind"] == "document"
    data = json.loads(await control.file_bytes(export["document"]["file_id"]))
    assert data["alias"] == "P-101" and data["settings"]["checkin_time"] == "19:30"
    assert [m["text"] for m in data["messages"]] == ["I had a rough morning but went to group.",
                                                     "Better than last week, thanks."]
    assert data["consent"]["version"] and data["consent"]["given_at"]
    assert [(g["goal"], g["status"], g["ratings"]) for g in data["goals"]] == [("Walk 10 minutes a day", "open", [])]
    (reminder,) = data["medications"]["reminders"]
    assert (reminder["name"], reminder["times"], reminder["days"]) == ("evening pill", ["21:00"], "every day")
    (message,) = data["care_team_messages"]
    assert (message["from"], message["text"]) == ("therapist", "How did this week's groups go for you?")
    assert [(r["kind"], r["text"]) for r in message["replies"]] == [("text", "Better than last week, thanks.")]
    assert "dr-lee" not in json.dumps(data)  # the sender by role, never by name

    await sam.say("/caseload")  # a staff command
    assert "That command is for staff" in await sam.read_text()
    await clinician.say("/caseload")
    assert "P-101 · active" in await clinician.read_text()
    await clinician.say("/mydata")  # a participant command
    assert "That command is for participants" in await clinician.read_text()

    await sam.say("/stop")
    assert buttons((await sam.read())[0]) == ["Yes, stop", "No, keep going"]
    await sam.press("Yes, stop")
    assert "You have stopped" in await sam.read_text()
    assert "P-101 stopped using the bot" in await clinician.read_text()
    await sam.say("hello?")
    assert "You have stopped using this bot" in await sam.read_text()


async def test_unknown_people_and_bad_links_learn_nothing(shared_bot: BotProcess, control: BotAPIControl) -> None:
    await enroll_staff(shared_bot, control, "dr-kim")
    token = await issue_invite(shared_bot.db_url, "participant", "P-7", therapist="dr-kim")

    stranger = Person(control, new_user_id())
    await stranger.say("/start")
    assert "open the invite link your care team gave you" in await stranger.read_text()
    await stranger.say("/caseload")
    assert "open the invite link" in await stranger.read_text()
    await stranger.say("/start not-a-real-token")
    assert "This link doesn't work" in await stranger.read_text()

    owner = Person(control, new_user_id())
    await owner.say(f"/start {token}")
    assert "encrypted" in (await owner.read())[0]["visible_text"]
    second = Person(control, new_user_id())
    await second.say(f"/start {token}")  # the same link, used again by someone else
    reply = await second.read_text()
    assert "This link doesn't work" in reply and "P-7" not in reply and "kim" not in reply


async def test_declining_consent_stores_nothing_more(shared_bot: BotProcess, control: BotAPIControl) -> None:
    await enroll_staff(shared_bot, control, "dr-ray")
    token = await issue_invite(shared_bot.db_url, "participant", "P-9", therapist="dr-ray")
    person = Person(control, new_user_id())
    await person.say(f"/start {token}")
    await person.read()
    await person.press("I do not agree")
    assert "Nothing more will be stored" in await person.read_text()
    await person.say("hello")
    assert "open the invite link" in await person.read_text()
