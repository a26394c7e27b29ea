"""Support persons in process (the assembled bot fed updates, replies read from the local Bot API),
on SQLite and PostgreSQL: the participant's /support invite with what is shared and their consent,
the support person's own consent, what they see (only what was chosen), family reads with the
program's crisis numbers, refused commands, their words reaching the clinician at the level the
safety layer gives (a concern notice, an urgent page) and never the participant's own record
(/mydata, the participant's open alert), a family-session reminder, revoking, and the participant
leaving the program (/stop, discharge) ending it."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.config import load_settings
from bot.db.calendar_models import ProgramSession, SessionAttendee
from bot.db.checkin_models import CheckinAnswer
from bot.db.models import AuditEntry, Escalation, Participant, ScheduledAction, Staff
from bot.db.support_models import SupportCheckin, SupportMessage, SupportPerson, SupportShare, SupportStatus
from bot.sandbox.botapi import FakeBotAPI, RateLimits
from bot.services.enrollment import invite_participant
from bot.services.inbound import who_is_writing
from bot.services.people import discharge
from bot.services.support import service
from tests.support.databases import create_postgres_database, create_sqlite_database
from tests.support.inproc import InProcessBot, add_participant, add_staff, inproc_settings

REPO = Path(__file__).resolve().parents[2]
CLINICIAN, PARTICIPANT, MOM, STRANGER = 7101, 7201, 7301, 7401
OTHER_PARTICIPANT, DAD = 7202, 7302
ENDED = "Your connection as a support person has ended"
START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday, 10:00 in New York
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(params=["sqlite", "postgres"])
async def bot(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[InProcessBot]:
    from bot.db.engine import make_engine, make_sessionmaker

    url = create_postgres_database() if request.param == "postgres" else create_sqlite_database(tmp_path)
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        clinician = await add_staff(session, "dr-sp", CLINICIAN, START)
        await add_participant(session, "P-SP", clinician, PARTICIPANT, START)
        await session.commit()
    await engine.dispose()
    api = FakeBotAPI(rate_limits=RateLimits(enabled=False))
    await api.start()
    settings = inproc_settings(load_settings(REPO / "config.toml", env={"BOT_TOKEN": "42:TEST"}), api, url)
    running = await InProcessBot.start(settings, api, ManualClock(START))
    yield running
    await running.close()
    await api.stop()


def weekly(days: int) -> datetime:
    """A few minutes after the support person's weekly time (18:00 in New York), `days` after START."""
    local = (START + timedelta(days=days)).astimezone(NEW_YORK).replace(hour=18, minute=5)
    return local.astimezone(UTC)


async def invite_mom(bot: InProcessBot, *shares: str) -> str:
    """The participant's /support dialog; returns the link's token."""
    await bot.say(PARTICIPANT, "/support")
    assert "You have not invited anyone yet" in bot.last_text(PARTICIPANT)
    await bot.press(PARTICIPANT, "Invite someone")
    await bot.say(PARTICIPANT, "mom")
    assert "What may mom see about you?" in bot.last_text(PARTICIPANT)
    for share in shares:
        await bot.press(PARTICIPANT, share)
    await bot.press(PARTICIPANT, "Done")
    consent = bot.last_text(PARTICIPANT)
    assert "never see your answers, messages, scores or alerts" in consent
    await bot.press(PARTICIPANT, "I agree, make the link")
    link = bot.last_text(PARTICIPANT)
    found = re.search(r"\?start=([A-Za-z0-9_-]+)", link)
    assert found, link
    return found.group(1)


async def scalar(bot: InProcessBot, statement: object) -> object:
    async with bot.ctx.sessionmaker() as session:
        return await session.scalar(statement)  # type: ignore[call-overload]


async def my_data(bot: InProcessBot) -> dict:  # type: ignore[type-arg]
    """The participant's /mydata file, as they would open it."""
    await bot.say(PARTICIPANT, "/mydata")
    document = bot.messages(PARTICIPANT)[-1]["document"]
    return json.loads(bot.api.file_bytes(document["file_id"]))  # type: ignore[no-any-return]


async def open_alert_of_participant(bot: InProcessBot) -> bool:
    """What the update pipeline reads about the participant writing: is an alert of theirs open?"""
    async with bot.ctx.sessionmaker() as session:
        return (await who_is_writing(session, PARTICIPANT, None)).open_alert


async def test_support_person_sees_only_what_was_chosen_and_loses_it_on_revoke(bot: InProcessBot) -> None:
    token = await invite_mom(bot, "Checked in this week")
    share = await scalar(bot, select(SupportShare))
    assert isinstance(share, SupportShare) and share.shares == "checkins" and share.consent_version
    assert share.decided_by.startswith("participant:")

    await bot.say(MOM, f"/start {token}", language_code="es")
    consent = bot.last_text(MOM)
    assert "Ser persona de apoyo" in consent and "si hiciste tu chequeo esta semana" in consent
    await bot.press(MOM, "English")  # her own consent, in the language she reads
    assert "Being a support person" in bot.last_text(MOM)
    await bot.press(MOM, "I agree")
    assert "You are all set" in bot.last_text(MOM)
    person = await scalar(bot, select(SupportPerson))
    assert isinstance(person, SupportPerson) and person.status == SupportStatus.ACTIVE
    assert person.consented_at is not None and person.name == "mom" and person.alias == "P-SP-S1"
    await bot.tick()
    assert "mom accepted your invitation" in bot.last_text(PARTICIPANT)

    # The same link again, or from someone else: nothing.
    await bot.say(STRANGER, f"/start {token}")
    assert "This link doesn't work" in bot.last_text(STRANGER) or "link" in bot.last_text(STRANGER)
    # A participant's link opened by her: one Telegram account is one role; the link stays unused.
    async with bot.ctx.sessionmaker() as session:
        issued = await invite_participant(session, START, bot.ctx.settings, "P-SP-NEW", "dr-sp")
        await session.commit()
    await bot.say(MOM, f"/start {issued.token}")
    assert "already connected to this program" in bot.last_text(MOM)
    assert await scalar(bot, select(Participant.alias).where(Participant.telegram_user_id == MOM)) is None
    await bot.say(MOM, "/start")  # her own help, not the hint for strangers
    assert "/family" in bot.last_text(MOM) and "This bot is for people in a treatment program" not in bot.last_text(MOM)

    # The crisis read, with the program's numbers filled in.
    await bot.press(MOM, "What to do in a crisis")
    crisis = "\n".join(bot.texts(MOM)[-6:])
    assert "call 911" in crisis and "988" in crisis and "{" not in crisis

    # Participants' and staff commands are refused and audited; the participant cannot use /family.
    for command in ("/checkin", "/caseload", "/mydata", "/support"):
        await bot.say(MOM, command)
        assert "not available to support persons" in bot.last_text(MOM), command
    await bot.say(PARTICIPANT, "/family")
    assert "for support persons" in bot.last_text(PARTICIPANT)
    refused = await scalar(bot, select(func.count()).select_from(AuditEntry).where(
        AuditEntry.allowed.is_(False), AuditEntry.actor == f"support:{person.id}"))
    assert refused == 4

    # A week later: the update says only what was chosen (checked in, never the answers), then her check-in.
    async with bot.ctx.sessionmaker() as session:
        from bot.db.checkin_models import FlowRun

        run = FlowRun(participant_id=person.participant_id, kind="checkin", flow_id="daily", locale="en",
                      started_at=START + timedelta(days=5), status="finished")
        session.add(run)
        await session.flush()
        session.add(CheckinAnswer(participant_id=person.participant_id, run_id=run.id, local_date=START.date(),
                                  question_id="mood", value_number=2, answered_at=START + timedelta(days=5)))
        await session.commit()
    await bot.tick(weekly(7))
    texts = bot.texts(MOM)
    update = next(t for t in texts if "This week's update" in t)
    assert "They checked in with the program this week." in update
    assert "attended" not in update and "mood" not in update.lower() and "2" not in update
    assert "How are you doing this week?" in texts[-1]
    await bot.press(MOM, "7")
    await bot.say(MOM, "tired but ok")
    assert "Taking care of yourself matters too" in bot.last_text(MOM)
    checkin = await scalar(bot, select(SupportCheckin))
    assert isinstance(checkin, SupportCheckin) and checkin.score == 7 and checkin.note == "tired but ok"

    # The participant stops it: she is told plainly, and nothing more comes.
    await bot.say(PARTICIPANT, "/support")
    assert "mom" in bot.last_text(PARTICIPANT) and "whether you checked in this week" in bot.last_text(PARTICIPANT)
    await bot.press(PARTICIPANT, "Stop 1")
    await bot.press(PARTICIPANT, "Yes, stop it")
    assert "mom gets nothing more" in bot.last_text(PARTICIPANT)
    await bot.tick()
    assert "Your connection as a support person has ended" in bot.last_text(MOM)
    seen = len(bot.texts(MOM))
    await bot.tick(weekly(14))
    await bot.tick(weekly(21))
    assert len(bot.texts(MOM)) == seen
    assert await scalar(bot, select(SupportShare.ended_at).where(SupportShare.id == share.id)) is not None
    await bot.say(MOM, "/family")
    assert "no longer connected" in bot.last_text(MOM)


async def test_distress_reaches_the_clinician_at_the_level_given_and_family_reminder(bot: InProcessBot) -> None:
    token = await invite_mom(bot)
    await bot.say(MOM, f"/start {token}")
    assert "what they chose to share with you: nothing" in bot.last_text(MOM)
    await bot.press(MOM, "I agree")
    await bot.tick()

    # A family session for the participant tomorrow: the support person is reminded, with the link.
    async with bot.ctx.sessionmaker() as session:
        ps = ProgramSession(uid="fam-1", title="Family session P-SP", kind="family",
                            first_start=START + timedelta(hours=30), duration_minutes=60, timezone="America/New_York",
                            video_link="https://zoom.us/j/family", created_at=START, updated_at=START)
        session.add(ps)
        await session.flush()
        session.add(SessionAttendee(session_id=ps.id, participant_id=(await session.scalar(
            select(SupportPerson.participant_id))) or 0))
        await session.commit()
    await bot.tick(START + timedelta(hours=6, minutes=1))  # plans; the 24-hour reminder is due now
    reminder = next(m for m in bot.messages(MOM) if "family session is" in (m.get("visible_text") or ""))
    assert reminder["visible_text"] == "Your family session is tomorrow at 4:00 PM."
    buttons = [b for row in reminder["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == [{"text": "Join", "url": "https://zoom.us/j/family"}]

    # Worry about the participant: what the safety layer gives (a concern): a notice, no page.
    await bot.say(MOM, "she said she wants to end it")
    assert "Thank you for telling me" in bot.last_text(MOM)  # the same crisis texts as anyone's
    await bot.tick()
    notice = bot.last_text(CLINICIAN)
    assert "P-SP's support person mom (P-SP-S1)" in notice and "worry about P-SP" in notice
    assert "nobody was paged" in notice and "she said" not in notice
    assert await scalar(bot, select(func.count()).select_from(Escalation)) == 0

    # Her own crisis: the crisis reply at once, and the participant's clinician paged as a support-person alert.
    before = len(bot.texts(PARTICIPANT))
    await bot.say(MOM, "I want to kill myself")
    assert "988" in bot.last_text(MOM)
    await bot.tick()
    page = next(t for t in bot.texts(CLINICIAN) if "Support person alert" in t)
    assert "URGENT" in page and "P-SP" in page and "the support person's own distress" in page
    assert "kill" not in page
    escalation = await scalar(bot, select(Escalation))
    assert isinstance(escalation, Escalation) and escalation.source == "support:self"
    assert "I've let their care team know" in bot.last_text(MOM)
    assert len(bot.texts(PARTICIPANT)) == before  # the participant is told nothing of it
    stored = await scalar(bot, select(func.count()).select_from(SupportMessage))
    assert stored == 2
    # Her alert is not the participant's: not in their own export, and what they write is not
    # taken as written during an alert of theirs.
    mine = await my_data(bot)
    assert mine["safety_flags"] == [] and not any(row["kind"].startswith("alert") for row in mine["scheduled"])
    assert not await open_alert_of_participant(bot)
    # The participant's own crisis still opens an alert of their own.
    await bot.say(PARTICIPANT, "i want to kill myself tonight")
    await bot.tick()
    assert await scalar(bot, select(func.count()).select_from(Escalation)) == 2
    assert await scalar(bot, select(func.count()).select_from(ScheduledAction).where(
        ScheduledAction.kind == "crisis_line", ScheduledAction.participant_id.is_not(None))) == 1
    assert await open_alert_of_participant(bot)
    mine = await my_data(bot)
    own = await scalar(bot, select(Escalation).where(Escalation.source == "message"))
    assert isinstance(own, Escalation)
    own_rows = await scalar(bot, select(func.count()).select_from(ScheduledAction).where(
        ScheduledAction.escalation_id == own.id, ScheduledAction.kind.like("alert%"),
        ScheduledAction.staff_id.is_(None), ScheduledAction.participant_id.is_not(None)))
    assert [flag["level"] for flag in mine["safety_flags"]] == [own.level]  # theirs alone
    assert len([row for row in mine["scheduled"] if row["kind"].startswith("alert")]) == own_rows


async def test_the_participant_leaving_ends_it_and_the_support_person_is_told_plainly(bot: InProcessBot) -> None:
    """/stop, or a discharge: each support person's sharing ends as if revoked, whoever had joined
    is told plainly (nothing says why), and nothing more comes to them."""
    token = await invite_mom(bot, "Checked in this week")
    await bot.say(MOM, f"/start {token}")
    await bot.press(MOM, "I agree")
    await bot.tick()  # the planner has looked: its next look is a plan interval away
    # Another participant, with a support person the operator set up (`iopbot invite support`).
    async with bot.ctx.sessionmaker() as session:
        clinician = await session.scalar(select(Staff))
        assert clinician is not None
        other = await add_participant(session, "P-SP2", clinician, OTHER_PARTICIPANT, START)
        _, issued = await service.invite(session, START, bot.ctx.settings, other, "dad", frozenset(),
                                         by=service.OPERATOR)
        await session.commit()
    await bot.say(DAD, f"/start {issued.token}")
    await bot.press(DAD, "I agree")
    await bot.tick()
    assert "You are all set" in bot.last_text(DAD)

    # The participant stops using the bot: at the planner's next look, mom is told plainly.
    await bot.say(PARTICIPANT, "/stop")
    await bot.press(PARTICIPANT, "Yes, stop")
    assert "You have stopped" in bot.last_text(PARTICIPANT)
    await bot.tick(START + timedelta(minutes=11))
    told = bot.last_text(MOM)
    assert ENDED in told and "988" in told and "stop" not in told.lower() and "P-SP" not in told
    mom = await scalar(bot, select(SupportPerson).where(SupportPerson.telegram_user_id == MOM))
    assert isinstance(mom, SupportPerson) and mom.status == SupportStatus.REVOKED
    assert await scalar(bot, select(SupportShare.ended_at).where(SupportShare.support_person_id == mom.id))
    assert await scalar(bot, select(AuditEntry.actor).where(AuditEntry.action == f"support_revoked:{mom.id}")) == \
        f"participant:{mom.participant_id}"

    # The other participant is discharged by the operator: dad is told at the next tick.
    async with bot.ctx.sessionmaker() as session:
        leaving = await session.scalar(select(Participant).where(Participant.alias == "P-SP2"))
        assert leaving is not None
        await discharge(session, leaving, START + timedelta(minutes=12), alumni=False)
        await session.commit()
    await bot.tick(START + timedelta(minutes=12))
    told = bot.last_text(DAD)
    assert ENDED in told and "discharge" not in told.lower() and "P-SP2" not in told
    assert await scalar(bot, select(SupportPerson.status).where(SupportPerson.telegram_user_id == DAD)) == \
        SupportStatus.REVOKED

    # Nothing more comes to either: no weekly update or check-in, each told once.
    seen = {who: len(bot.texts(who)) for who in (MOM, DAD)}
    await bot.tick(weekly(7))
    await bot.tick(weekly(14))
    assert {who: len(bot.texts(who)) for who in (MOM, DAD)} == seen
    assert [t for who in (MOM, DAD) for t in bot.texts(who) if ENDED in t] == [bot.last_text(MOM), bot.last_text(DAD)]
    await bot.say(MOM, "/family")
    assert "no longer connected" in bot.last_text(MOM)

