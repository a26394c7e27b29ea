"""The alert loop, in process over HTTP against the local Bot API, on SQLite and PostgreSQL, with
the clock moved by the test (nothing sleeps):

- a therapist who never opened Telegram is skipped at once: the backup is paged in the same tick,
  and the participant hears "your care team has been told" only once that page was delivered;
- nobody on the care team reachable: every lead and admin is paged and a coverage failure is
  recorded; nobody at all: the participant gets the crisis numbers and the after-hours line;
- acknowledged but no outcome: the alert stays in /alerts and /caseload, reminds the person who
  acknowledged it after the configured time, then the lead, also across a restart; an outcome by
  button and a typed note close it;
- unacknowledged after the last round: every lead and admin, then daily, until acknowledged;
- 50 messages in 5 seconds while an alert is open: at most 2 notices; a higher level pages at once;
- a staff member's own time zone: asked at enrollment, changed in /settings, used in alerts,
  stamps, /alerts and /digest.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from sqlalchemy import select

from bot.config import Settings
from bot.db.models import AlertOutcome, AuditEntry, Escalation, EscalationEvent, EscalationStatus, Staff, StaffRole
from bot.sandbox.botapi import FakeBotAPI
from bot.services import enrollment
from bot.services.escalation.report import response_times
from tests.support.inproc import InProcessBot, add_participant, add_staff

SAM = 77
DR, BACKUP, LEAD, ADMIN = 900, 901, 902, 903
CRISIS = "I want to kill myself"
TOLD = "I've let your care team know"
NOT_REACHED = "I couldn't reach your care team"


async def _people(inbot: InProcessBot, *, linked: set[str], backup: bool = True, admin: bool = False) -> int:
    """dr-a (assigned), dr-b (backup), lin (lead), and an admin; only `linked` have a Telegram chat."""
    now = inbot.clock.now()
    async with inbot.ctx.sessionmaker() as s:
        staff = {}
        for alias, chat, role in (("dr-a", DR, "therapist"), ("dr-b", BACKUP, "therapist"), ("lin", LEAD, "lead"),
                                  ("root", ADMIN, "admin")):
            if alias == "root" and not admin:
                continue
            member = await add_staff(s, alias, chat, now)
            member.role = role
            if alias not in linked:  # invited, never opened Telegram
                member.chat_id = member.telegram_user_id = None
            staff[alias] = member
        participant = await add_participant(s, "P-1", staff["dr-a"], SAM, now)
        if backup:
            participant.backup_id = staff["dr-b"].id
        await s.commit()
        return participant.id


def _alerts(inbot: InProcessBot, chat: int) -> list[str]:
    return [t for t in inbot.texts(chat) if "Safety alert:" in t]


async def _events(inbot: InProcessBot) -> list[tuple[str, str]]:
    async with inbot.ctx.sessionmaker() as s:
        return [(k, d) for k, d in (await s.execute(
            select(EscalationEvent.kind, EscalationEvent.detail).order_by(EscalationEvent.id))).all()]


async def test_a_therapist_who_never_opened_telegram_is_skipped_and_the_backup_paged_at_once(
        inbot: InProcessBot) -> None:
    await _people(inbot, linked={"dr-b", "lin"})
    await inbot.say(SAM, CRISIS)
    assert len(inbot.texts(SAM)) == 1 and "988" in inbot.texts(SAM)[0]  # help at once; nothing promised yet
    await inbot.tick()  # the same moment: the clock has not moved
    (page,) = _alerts(inbot, BACKUP)
    assert "P-1" in page and "backup on call" in page and "page 1" in page
    assert TOLD in inbot.last_text(SAM)  # true now: a page was delivered
    assert ("page_skipped", "step:0:no_chat") in await _events(inbot)
    assert not _alerts(inbot, LEAD)


async def test_nobody_on_the_care_team_reachable_pages_every_lead_and_admin(inbot: InProcessBot) -> None:
    await _people(inbot, linked={"root"}, backup=False, admin=True)  # no chat: dr-a, the lead
    await inbot.say(SAM, CRISIS)
    await inbot.tick()
    (page,) = _alerts(inbot, ADMIN)
    assert "P-1" in page and "nobody on the care team could be reached" in page
    assert TOLD in inbot.last_text(SAM)  # someone was reached: the admin
    async with inbot.ctx.sessionmaker() as s:
        times = await response_times(s)
    assert [alias for _, alias, _ in times.coverage_failures] == ["P-1"]  # recorded for the operator
    assert ("coverage_failure", "unreached:2") in await _events(inbot)
    async with inbot.ctx.sessionmaker() as s:
        audited = (await s.scalars(select(AuditEntry.action).where(AuditEntry.actor == "system"))).all()
    assert [a.split(":escalation:")[0] for a in audited] == ["coverage_failure"]


async def test_nobody_reachable_at_all_gets_the_crisis_numbers_and_after_hours_line_plainly(
        bot_settings: Settings, api: FakeBotAPI, clock: object) -> None:
    settings = bot_settings.replace(program=dataclasses.replace(bot_settings.program, after_hours_phone="555-0100"))
    inbot = await InProcessBot.start(settings, api, clock)  # type: ignore[arg-type]
    try:
        await _people(inbot, linked=set(), admin=True)
        await inbot.say(SAM, CRISIS)
        await inbot.tick()
        crisis, plain = inbot.texts(SAM)
        assert "988" in crisis
        assert NOT_REACHED in plain and "988" in plain and "911" in plain and "555-0100" in plain
        inbot.clock.advance(hours=3)  # type: ignore[attr-defined]
        await inbot.tick()
        assert not any(TOLD in t for t in inbot.texts(SAM))  # never said, since it never became true
    finally:
        await inbot.close()


async def test_acknowledged_without_an_outcome_stays_visible_reminds_and_survives_a_restart(
        inbot: InProcessBot, bot_settings: Settings, api: FakeBotAPI) -> None:
    await _people(inbot, linked={"dr-a", "lin"})
    await inbot.say(SAM, CRISIS)
    await inbot.tick()
    await inbot.press(DR, "Acknowledge")
    assert "Acknowledged. Paging stopped." in inbot.notices(DR)[-1]
    stamped = inbot.messages(DR)[-1]
    assert "Acknowledged by dr-a at 2026-03-02 09:00 EST" in stamped["visible_text"]
    assert [b["text"] for row in stamped["reply_markup"]["inline_keyboard"] for b in row] == [
        "Reached them, safe", "Safety plan reviewed", "Sent to emergency care", "Could not reach them", "False alarm"]

    # 31 minutes on, the participant has not dropped to "concern": the alert is there until an outcome.
    await inbot.tick(inbot.clock.now() + timedelta(minutes=31))
    await inbot.say(DR, "/caseload")
    assert "🚨 P-1 · active · open alerts: 1 · acknowledged, no outcome yet: 1" in inbot.last_text(DR)
    await inbot.say(DR, "/alerts")
    assert "P-1" in inbot.last_text(DR) and "No outcome recorded yet" in inbot.last_text(DR)
    assert not _alerts(inbot, BACKUP)  # paging stopped at the acknowledgement

    # The reminder is a row: a restart in between changes nothing.
    await inbot.close()
    inbot = await InProcessBot.start(bot_settings, api, inbot.clock)
    try:
        await inbot.tick(inbot.clock.now() + timedelta(minutes=30))  # 61 minutes after the acknowledgement
        assert "No outcome yet" in inbot.last_text(DR) and "P-1" in inbot.last_text(DR)
        assert not any("No outcome yet" in t for t in inbot.texts(LEAD))
        await inbot.tick(inbot.clock.now() + timedelta(minutes=60))  # then the lead
        assert "No outcome yet" in inbot.last_text(LEAD)

        await inbot.press(LEAD, "Safety plan reviewed")
        assert "Recorded: Safety plan reviewed. The alert is closed." in inbot.notices(LEAD)[-1]
        assert "Add a note about P-1?" in inbot.last_text(LEAD)
        await inbot.say(LEAD, "Called at 11; reviewed the plan, she is with family tonight.")
        assert "Note saved" in inbot.last_text(LEAD)
        closed = [m["visible_text"] for m in inbot.messages(DR) if "Closed by lin" in (m.get("visible_text") or "")]
        assert closed  # the person who acknowledged it sees how it ended
        async with inbot.ctx.sessionmaker() as s:
            escalation = await s.scalar(select(Escalation))
            assert escalation is not None and escalation.status == EscalationStatus.RESOLVED
            assert escalation.outcome == AlertOutcome.SAFETY_PLAN
            assert escalation.outcome_note == "Called at 11; reviewed the plan, she is with family tonight."
        reminders = len([t for t in inbot.texts(DR) + inbot.texts(LEAD) if "No outcome yet" in t])
        await inbot.tick(inbot.clock.now() + timedelta(days=2))
        assert len([t for t in inbot.texts(DR) + inbot.texts(LEAD) if "No outcome yet" in t]) == reminders
        await inbot.say(DR, "/alerts")
        assert "No open safety alerts" in inbot.last_text(DR)
        kinds = [k for k, _ in await _events(inbot)]
        assert kinds[:3] == ["opened", "paged", "participant_team_told"]
        assert kinds.index("acknowledged") < kinds.index("reminded") < kinds.index("resolved") < kinds.index("note")
    finally:
        await inbot.close()


async def test_unacknowledged_after_the_last_round_goes_to_every_lead_and_admin_then_daily(
        bot_settings: Settings, api: FakeBotAPI, clock: object) -> None:
    settings = bot_settings.replace(escalation=dataclasses.replace(bot_settings.escalation, max_rounds=1))
    inbot = await InProcessBot.start(settings, api, clock)  # type: ignore[arg-type]
    try:
        await _people(inbot, linked={"dr-a", "dr-b", "lin", "root"}, admin=True)
        await inbot.say(SAM, CRISIS)
        await inbot.tick()
        for chat in (DR, BACKUP, LEAD):  # the one round: clinician, backup, lead, 30 minutes each
            assert len(_alerts(inbot, chat)) == 1, chat
            await inbot.tick(inbot.clock.now() + timedelta(minutes=31))  # type: ignore[attr-defined]
        for chat in (LEAD, ADMIN):
            assert "nobody acknowledged after every round" in _alerts(inbot, chat)[-1]
        assert len(_alerts(inbot, ADMIN)) == 1 and len(_alerts(inbot, DR)) == 1
        await inbot.tick(inbot.clock.now() + timedelta(days=1, minutes=1))  # type: ignore[attr-defined]
        assert len(_alerts(inbot, ADMIN)) == 2 and len(_alerts(inbot, LEAD)) == 3  # daily
        await inbot.press(ADMIN, "Acknowledge")
        await inbot.tick(inbot.clock.now() + timedelta(days=3))  # type: ignore[attr-defined]
        assert len(_alerts(inbot, ADMIN)) == 2 and len(_alerts(inbot, LEAD)) == 3  # paging stopped
    finally:
        await inbot.close()


async def test_fifty_messages_in_five_seconds_make_at_most_two_notices(inbot: InProcessBot) -> None:
    await _people(inbot, linked={"dr-a", "dr-b", "lin"})
    await inbot.say(SAM, CRISIS)
    await inbot.tick()
    start = inbot.clock.now()
    for n in range(50):
        inbot.clock.set(start + timedelta(seconds=n * 0.1))
        await inbot.say(SAM, f"sorry, i'm fine, ignore that ({n})")
        await inbot.tick()  # the scheduler runs as often as it likes
    notices = [t for t in inbot.texts(DR) if "wrote again" in t]
    assert 1 <= len(notices) <= 2, notices
    await inbot.tick(start + timedelta(minutes=11))  # the interval is over: what is left, in one notice
    notices = [t for t in inbot.texts(DR) if "wrote again" in t]
    assert len(notices) <= 2 and "(50 since the flag)" in notices[-1], notices
    # A higher level is not a follow-up: it pages again at once.
    await inbot.say(SAM, "i have the pills here and i want to die tonight")
    await inbot.tick()
    assert "Safety alert: IMMINENT" in _alerts(inbot, DR)[-1]


async def test_a_staff_member_sees_times_in_their_own_time_zone(inbot: InProcessBot) -> None:
    now = inbot.clock.now()  # 14:00 UTC: 09:00 in New York, 08:00 in Chicago, 07:00 in Denver
    async with inbot.ctx.sessionmaker() as s:
        issued = await enrollment.invite_staff(s, now, inbot.ctx.settings, "dr-tz", StaffRole.THERAPIST)
        await s.commit()
    await inbot.say(DR, f"/start {issued.token}")
    welcome = inbot.messages(DR)[-1]
    assert "Welcome, dr-tz" in welcome["visible_text"] and "Which time zone are you in?" in welcome["visible_text"]
    await inbot.press(DR, "Chicago")  # the same picker participants get
    assert "Time zone set to America/Chicago" in inbot.last_text(DR)
    async with inbot.ctx.sessionmaker() as s:
        staff = await s.scalar(select(Staff).where(Staff.alias == "dr-tz"))
        assert staff is not None and staff.timezone == "America/Chicago"
        await add_participant(s, "P-1", staff, SAM, now)
        await s.commit()
    await inbot.say(SAM, CRISIS)
    await inbot.tick()
    assert "Message received: 2026-03-02 08:00 CST" in _alerts(inbot, DR)[-1]

    await inbot.say(DR, "/settings")
    assert "Time zone: America/Chicago" in inbot.last_text(DR)
    await inbot.press(DR, "Time zone")
    await inbot.say(DR, "Atlantis")
    assert "times stay in America/Chicago" in inbot.last_text(DR)  # asked once: later texts are not zones
    await inbot.press(DR, "Time zone")
    await inbot.say(DR, "Denver")  # typed, like participants can
    assert "Time zone set to America/Denver" in inbot.last_text(DR)
    await inbot.say(DR, "/alerts")
    assert "since 2026-03-02 07:00 MST" in inbot.last_text(DR)
    await inbot.press(DR, "Acknowledge")
    assert any("Acknowledged by dr-tz at 2026-03-02 07:00 MST" in t for t in inbot.texts(DR))
    await inbot.say(DR, "/digest")
    assert "until 2026-03-02 07:00 MST" in inbot.last_text(DR)
    assert "acknowledged, no outcome yet, 2026-03-02 07:00 MST" in inbot.last_text(DR)
