"""The loop CLINICAL.md asks for, over real HTTP with the real bot process: a participant in
crisis gets help on screen at once, a named clinician is paged, the backup and the lead follow
when nobody acknowledges, and an acknowledgement stops the paging. What is assessed and how it is
worded: an edited message, Spanish from a participant whose setting is English, a denial of risk
(pages nobody), and an act in plain words (imminent; the page names what was found)."""

from __future__ import annotations

import pytest

from bot.sandbox.botapi import BotAPIControl
from tests.support.e2e import BotProcess, buttons, enroll_participant, enroll_staff

pytestmark = pytest.mark.e2e

ALERT_BUTTONS = ["Acknowledge", "I contacted them", "False alarm", "Reassign"]
OUTCOME_BUTTONS = ["Reached them, safe", "Safety plan reviewed", "Sent to emergency care", "Could not reach them",
                   "False alarm"]


async def test_crisis_message_gets_help_at_once_and_pages_the_clinician(
    shared_bot: BotProcess, control: BotAPIControl
) -> None:
    clinician = await enroll_staff(shared_bot, control, "dr-ana")
    sam = await enroll_participant(shared_bot, control, "P-201", "dr-ana")

    await sam.say("i want to kill myself")
    crisis, told = await sam.read(2)
    assert "988" in crisis["visible_text"] and "911" in crisis["visible_text"]
    assert "I've let your care team know" in told["visible_text"]

    alert = (await clinician.read())[0]
    assert "Safety alert: URGENT" in alert["visible_text"] and "P-201" in alert["visible_text"]
    assert "kill myself" not in alert["visible_text"]  # quote_in_alerts is off by default
    assert buttons(alert) == ALERT_BUTTONS

    # "I'm fine" does not close the flag: it is passed on, and the alert stays open.
    await sam.say("jk im fine, you misunderstood")
    assert "saved this for your care team" in await sam.read_text()
    assert "wrote again while their safety alert is open" in await clinician.read_text()
    await clinician.say("/alerts")
    listed = (await clinician.read())[0]
    assert "P-201" in listed["visible_text"] and buttons(listed) == ALERT_BUTTONS

    await clinician.press("Acknowledge")
    edited = await clinician.wait_for_message("Acknowledged by dr-ana")
    assert edited["message_id"] in (alert["message_id"], listed["message_id"]) or "P-201" in edited["visible_text"]
    # Acknowledged is not the end: the alert stays listed until an outcome is recorded.
    await clinician.say("/alerts")
    listed = (await clinician.read())[0]
    assert "P-201" in listed["visible_text"] and "No outcome recorded yet" in listed["visible_text"]
    assert buttons(listed) == OUTCOME_BUTTONS
    await clinician.press("Reached them, safe")
    assert "Add a note about P-201?" in await clinician.read_text()
    await clinician.wait_for_message("Closed by dr-ana")
    await clinician.say("Spoke on the phone; she is with her sister tonight.")
    assert "Note saved" in await clinician.read_text()
    await clinician.say("/alerts")
    assert "No open safety alerts" in await clinician.read_text()


async def test_another_clinician_cannot_see_or_close_the_alert(shared_bot: BotProcess,
                                                               control: BotAPIControl) -> None:
    own = await enroll_staff(shared_bot, control, "dr-ben")
    other = await enroll_staff(shared_bot, control, "dr-cho")
    kim = await enroll_participant(shared_bot, control, "P-202", "dr-ben")
    await kim.say("I want to end my life")
    await kim.read(2)
    alert = (await own.read())[0]

    await other.say("/alerts")
    assert "No open safety alerts" in await other.read_text()
    # A forged button press (the button was never sent to this clinician) is refused.
    data = alert["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    await control.press_button(other.user_id, alert["message_id"], data, chat_id=own.chat_id, verify=False)
    await own.say("/alerts")
    assert "P-202" in await own.read_text()  # still open


async def test_unacknowledged_alert_goes_to_backup_then_lead_until_acknowledged(
    shared_bot: BotProcess, control: BotAPIControl
) -> None:
    clinician = await enroll_staff(shared_bot, control, "dr-dee")
    backup = await enroll_staff(shared_bot, control, "dr-eve")
    lead = await enroll_staff(shared_bot, control, "lead-fay", role="lead")
    pat = await enroll_participant(shared_bot, control, "P-203", "dr-dee", backup="dr-eve")

    await pat.say("i have the pills here and i want to die tonight")
    crisis = (await pat.read(2))[0]
    assert crisis["visible_text"].startswith("Please call 911 now")  # imminent leads with 911
    first = (await clinician.read())[0]
    assert "IMMINENT" in first["visible_text"]

    shared_bot.move_clock(minutes=6)  # imminent: 5 minutes to acknowledge
    page2 = (await backup.read())[0]
    assert "P-203" in page2["visible_text"] and "backup on call" in page2["visible_text"]
    shared_bot.move_clock(minutes=6)
    page3 = (await lead.read())[0]
    assert "P-203" in page3["visible_text"]

    await lead.press("I contacted them")
    for person in (clinician, backup, lead):  # everyone paged sees who took it
        stamped = await person.wait_for_message("lead-fay contacted them")
        assert "P-203" in stamped["visible_text"]
    # Paging stopped: no page is left waiting, so moving time on pages nobody.
    assert await pending_pages(shared_bot.db_url, "P-203") == 0
    shared_bot.move_clock(minutes=30)
    await pat.say("/help")
    await pat.read()
    for person in (clinician, backup, lead):
        pages = [m for m in await person.all_messages() if "Safety alert:" in (m["visible_text"] or "")]
        assert len(pages) == 1, f"{person.user_id} got {len(pages)} pages"


async def test_an_edited_message_turned_into_a_crisis_gets_help_and_pages(
    shared_bot: BotProcess, control: BotAPIControl
) -> None:
    clinician = await enroll_staff(shared_bot, control, "dr-gil")
    pat = await enroll_participant(shared_bot, control, "P-204", "dr-gil")
    # The bot asks Telegram for edits (the local Bot API hands out only the kinds asked for).
    assert "edited_message" in (await control.webhook())["allowed_updates"]

    said = await control.inject_message(pat.user_id, "see you at group tomorrow", first_name=pat.first_name)
    assert "saved this for your care team" in await pat.read_text()
    await control.edit_message(pat.user_id, said["message"]["message_id"], "I want to end my life")
    crisis, told = await pat.read(2)
    assert "988" in crisis["visible_text"] and "911" in crisis["visible_text"]
    assert "I've let your care team know" in told["visible_text"]
    alert = (await clinician.read())[0]
    assert "Safety alert: URGENT" in alert["visible_text"] and "P-204" in alert["visible_text"]
    assert "Found: thoughts of suicide" in alert["visible_text"]
    assert "end my life" not in alert["visible_text"] and buttons(alert) == ALERT_BUTTONS


async def test_spanish_from_a_participant_set_to_english_gets_help_and_pages(
    shared_bot: BotProcess, control: BotAPIControl
) -> None:
    clinician = await enroll_staff(shared_bot, control, "dr-hal")
    pat = await enroll_participant(shared_bot, control, "P-205", "dr-hal", language_code="en")
    await pat.say("ya no aguanto más, quiero morirme")
    crisis, told = await pat.read(2)
    assert "988" in crisis["visible_text"] and "I've let your care team know" in told["visible_text"]  # in English
    alert = (await clinician.read())[0]
    assert "Safety alert: URGENT" in alert["visible_text"] and "P-205" in alert["visible_text"]


async def test_a_denial_pages_nobody_and_an_act_in_plain_words_pages_as_imminent(
    shared_bot: BotProcess, control: BotAPIControl
) -> None:
    clinician = await enroll_staff(shared_bot, control, "dr-ida")
    pat = await enroll_participant(shared_bot, control, "P-206", "dr-ida")
    await pat.say("no thoughts of hurting myself this week")
    reply = await pat.read_text()  # sent after the update's transaction committed
    assert "saved this for your care team" in reply and "911" not in reply  # no crisis reply
    assert await escalations(shared_bot.db_url, "P-206") == 0
    assert not [m for m in await clinician.all_messages() if "Safety alert:" in (m["visible_text"] or "")]

    act = "emptied my pill bottle an hour ago"
    await pat.say(act)
    crisis, told = await pat.read(2)
    assert crisis["visible_text"].startswith("Please call 911 now")  # imminent leads with 911
    assert "I've let your care team know" in told["visible_text"]
    alert = (await clinician.read())[0]
    assert "Safety alert: IMMINENT" in alert["visible_text"] and "P-206" in alert["visible_text"]
    assert "Found: act in progress or just done: ingestion" in alert["visible_text"]
    assert "pill bottle" not in alert["visible_text"]


async def test_preparing_in_words_no_rule_lists_is_read_by_meaning_and_pages(
    shared_bot: BotProcess, control: BotAPIControl
) -> None:
    """The semantic layer, in the running bot: no rule lists these words; the crisis reply and the
    page still come, the alert says what was found and that it was found by meaning, not the words."""
    clinician = await enroll_staff(shared_bot, control, "dr-jo")
    pat = await enroll_participant(shared_bot, control, "P-207", "dr-jo")
    await pat.say("my brother can have my guitar and my truck, i already signed the title over")
    crisis, told = await pat.read(2)
    assert "988" in crisis["visible_text"] and "I've let your care team know" in told["visible_text"]
    alert = (await clinician.read())[0]
    assert "Safety alert: URGENT" in alert["visible_text"] and "P-207" in alert["visible_text"]
    assert "Found: preparing: by meaning" in alert["visible_text"]
    assert "guitar" not in alert["visible_text"]
    # An ordinary note afterwards is passed on as a note: no crisis reply, no second alert.
    await pat.say("just a note for later: group was good today, see you thursday")
    assert "saved this for your care team" in await pat.read_text()
    assert await escalations(shared_bot.db_url, "P-207") == 1


async def escalations(db_url: str, alias: str) -> int:
    from sqlalchemy import func, select

    from bot.db.engine import make_engine, make_sessionmaker
    from bot.db.models import Escalation, Participant

    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return int(await session.scalar(
                select(func.count()).select_from(Escalation).join(
                    Participant, Participant.id == Escalation.participant_id)
                .where(Participant.alias == alias)) or 0)
    finally:
        await engine.dispose()


async def pending_pages(db_url: str, alias: str) -> int:
    from sqlalchemy import func, select

    from bot.db.engine import make_engine, make_sessionmaker
    from bot.db.models import ActionStatus, Participant, ScheduledAction

    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return int(await session.scalar(
                select(func.count()).select_from(ScheduledAction).join(
                    Participant, Participant.id == ScheduledAction.participant_id)
                .where(Participant.alias == alias, ScheduledAction.kind == "alert_step",
                       ScheduledAction.status == ActionStatus.PENDING)) or 0)
    finally:
        await engine.dispose()
