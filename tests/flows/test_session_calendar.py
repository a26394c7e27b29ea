"""The session calendar as participants and staff live it, in process, on SQLite and PostgreSQL:
an imported weekly group, reminders in each participant's own zone and language (Sydney
participant, Chicago host, across a DST change), quiet hours, cancelled and moved sessions,
pausing, "Can't attend" with its reason, and a run of absences reaching the clinician."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select, text

from bot.db.calendar_models import Attendance, ProgramSession, SessionOccurrence
from bot.db.models import ActionStatus, Disclosure, Participant, ScheduledAction
from bot.db.types import configure_encryption
from bot.services import enrollment
from bot.services.calendar import occurrences as cal
from bot.services.calendar.apply import import_calendar
from bot.services.calendar.attendance import attendance_export
from bot.services.calendar.csv_reader import parse_csv
from bot.services.scheduling.hooks import participant_schedule_changed
from tests.support.inproc import InProcessBot, add_participant, add_staff

MON = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # the clock fixture's start: Monday 08:00 in Chicago
TUE_9 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
FAC, CAL, SYD, CHI = 900_101, 900_102, 5_101, 5_102
LINK = "https://zoom.us/j/5550001"
CSV = ("title,kind,start,duration_minutes,timezone,video_link,facilitator,group,rrule\n"
       f'Evening process group,group,2026-03-02T14:00,90,America/Chicago,{LINK},dr-fac,Mon-Wed,'
       '"FREQ=WEEKLY;BYDAY=MO,WE"\n')


async def _program(inbot: InProcessBot, *, chicago_locale: str = "en") -> dict[str, int]:
    """Two clinicians, a participant in Sydney and one in Chicago, a Mon/Wed 2 PM Chicago group."""
    now = inbot.clock.now()
    async with inbot.ctx.sessionmaker() as s:
        fac = await add_staff(s, "dr-fac", FAC, now)
        clin = await add_staff(s, "dr-cal", CAL, now)
        syd = await add_participant(s, "P-syd", clin, SYD, now, timezone="Australia/Sydney", quiet=("22:00", "08:00"))
        chi = await add_participant(s, "P-chi", clin, CHI, now, timezone="America/Chicago", quiet=("22:00", "08:00"),
                                    locale=chicago_locale)
        parsed = parse_csv(CSV)
        report = await import_calendar(s, inbot.ctx.settings, parsed, now)
        assert report is not None and len(report.added) == 1, parsed.problems
        group = await cal.group_by_name(s, "Mon-Wed")
        assert group is not None
        await cal.set_membership(s, inbot.ctx.settings, group, [syd, chi], now, member=True)
        await s.commit()
        return {"session": report.added[0].id, "syd": syd.id, "chi": chi.id, "fac": fac.id, "cal": clin.id}


async def _reminders(inbot: InProcessBot) -> dict[str, ScheduledAction]:
    async with inbot.ctx.sessionmaker() as s:
        rows = (await s.scalars(select(ScheduledAction).where(ScheduledAction.kind == cal.REMINDER_KIND))).all()
    return {r.key: r for r in rows}


async def _occurrence(inbot: InProcessBot, session_id: int, day: date) -> SessionOccurrence:
    async with inbot.ctx.sessionmaker() as s:
        ps = await s.get(ProgramSession, session_id)
        assert ps is not None
        (occ,) = await cal.occurrence_on(s, ps, day, inbot.clock.now())
        await s.commit()
        return occ


def _session_texts(inbot: InProcessBot, chat: int) -> list[str]:
    """What a person got from the calendar (check-ins also arrive in these chats)."""
    return [t for t in inbot.texts(chat) if "session" in t or "sesión" in t]


def _buttons(message: dict) -> list[dict]:
    return [b for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


async def test_reminders_are_planned_once_and_arrive_in_each_participants_zone(inbot: InProcessBot) -> None:
    ids = await _program(inbot, chicago_locale="es")
    first = await _reminders(inbot)
    # Monday's group (20:00 UTC) is 6 hours away: only the 15-minute reminders; the 24-hour ones are past.
    assert {(r.participant_id, r.payload["offset_minutes"]) for r in first.values()} == {(ids["syd"], 15),
                                                                                          (ids["chi"], 15)}
    assert all(k == f"reminder:{r.payload['occurrence_id']}:{r.participant_id}:15" for k, r in first.items())

    async def plan_in_a_worker() -> None:
        async with inbot.ctx.sessionmaker() as s:
            await cal.plan_reminders(s, inbot.ctx.settings, inbot.clock.now())
            await s.commit()

    for _ in range(3):  # planning again, in every tick and in two workers at once, adds nothing
        await inbot.tick()
    await asyncio.gather(plan_in_a_worker(), plan_in_a_worker())
    assert (await _reminders(inbot)).keys() == first.keys()

    await inbot.tick(MON + timedelta(hours=5, minutes=45))
    (syd,) = [m for m in inbot.messages(SYD) if "session" in (m.get("visible_text") or "")]
    assert syd["visible_text"] == "Your group session starts at 7:00 AM."  # Tuesday 07:00 in Sydney
    join, cant = _buttons(syd)
    assert (join["text"], join["url"]) == ("Join", LINK)
    assert cant["text"] == "Can't attend" and cant["callback_data"].startswith("att:no:")
    assert _session_texts(inbot, CHI) == ["Tu sesión grupal empieza a las 14:00."]  # Spanish, Chicago time

    # Tuesday: Wednesday's group enters the 48-hour plan. In Chicago the 24-hour reminder is at 2 PM;
    # in Sydney 24 hours before is 07:00 Thursday, in their quiet hours: it goes at 21:59 the evening before.
    await inbot.tick(TUE_9)
    wednesday = {k: r for k, r in (await _reminders(inbot)).items() if k not in first}
    due = {(r.participant_id, r.payload["offset_minutes"]): r.due_at for r in wednesday.values()}
    assert due == {
        (ids["chi"], 1440): datetime(2026, 3, 3, 20, 0, tzinfo=UTC),
        (ids["chi"], 15): datetime(2026, 3, 4, 19, 45, tzinfo=UTC),
        (ids["syd"], 1440): datetime(2026, 3, 3, 10, 59, tzinfo=UTC),  # 21:59 Tuesday in Sydney
        (ids["syd"], 15): datetime(2026, 3, 4, 19, 45, tzinfo=UTC),  # 06:45 in quiet hours: still goes
    }
    await inbot.tick(datetime(2026, 3, 3, 10, 59, tzinfo=UTC))
    assert _session_texts(inbot, SYD)[-1] == "Your group session is on Thu, Mar 5 at 7:00 AM."
    await inbot.tick(datetime(2026, 3, 3, 20, 0, tzinfo=UTC))
    assert _session_texts(inbot, CHI)[-1] == "Tu sesión grupal es mañana a las 14:00."

    # After Chicago springs forward (8 March) the group is at 19:00 UTC: 6:00 AM in Sydney, 2 PM in Chicago.
    await inbot.tick(datetime(2026, 3, 9, 18, 45, tzinfo=UTC))
    assert _session_texts(inbot, SYD)[-1] == "Your group session starts at 6:00 AM."
    assert _session_texts(inbot, CHI)[-1] == "Tu sesión grupal empieza a las 14:00."
    keys = list((await _reminders(inbot)).keys())
    assert len(keys) == len(set(keys))


async def test_cancelled_and_moved_sessions_update_pending_reminders(inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    await inbot.tick(TUE_9)
    occ = await _occurrence(inbot, ids["session"], date(2026, 3, 4))
    mine = lambda rows: {k: r for k, r in rows.items() if k.startswith(f"reminder:{occ.id}:")}  # noqa: E731
    assert len(mine(await _reminders(inbot))) == 4

    async with inbot.ctx.sessionmaker() as s:  # one transaction: a change that is rolled back leaves nothing
        await cal.cancel_occurrence(s, await s.get(SessionOccurrence, occ.id), inbot.clock.now())  # type: ignore[arg-type]
        await s.rollback()
    assert {r.status for r in mine(await _reminders(inbot)).values()} == {ActionStatus.PENDING}

    thursday_4pm = datetime(2026, 3, 5, 22, 0, tzinfo=UTC)  # 16:00 in Chicago
    async with inbot.ctx.sessionmaker() as s:
        await cal.move_occurrence(s, inbot.ctx.settings, await s.get(SessionOccurrence, occ.id), thursday_4pm,  # type: ignore[arg-type]
                                  inbot.clock.now())
        await s.commit()
    moved = mine(await _reminders(inbot))
    assert {r.status for r in moved.values()} == {ActionStatus.PENDING} and len(moved) == 4
    assert {r.due_at for r in moved.values()} == {thursday_4pm - timedelta(days=1),
                                                   thursday_4pm - timedelta(minutes=15)}
    await inbot.tick()
    assert _session_texts(inbot, CHI)[-1] == ("Your group session on Wed, Mar 4 at 2:00 PM has moved to "
                                               "Thu, Mar 5 at 4:00 PM.")
    assert _session_texts(inbot, SYD)[-1] == ("Your group session on Thu, Mar 5 at 7:00 AM has moved to "
                                               "Fri, Mar 6 at 9:00 AM.")
    assert _buttons(inbot.messages(CHI)[-1])[0]["url"] == LINK

    async with inbot.ctx.sessionmaker() as s:
        await cal.cancel_occurrence(s, await s.get(SessionOccurrence, occ.id), inbot.clock.now())  # type: ignore[arg-type]
        await s.commit()
    assert {r.status for r in mine(await _reminders(inbot)).values()} == {ActionStatus.CANCELLED}
    await inbot.tick()
    assert _session_texts(inbot, CHI)[-1] == "Your group session on Thu, Mar 5 at 4:00 PM is cancelled."
    await inbot.tick(thursday_4pm - timedelta(minutes=15))  # nothing comes for a cancelled session
    assert _session_texts(inbot, CHI)[-1] == "Your group session on Thu, Mar 5 at 4:00 PM is cancelled."

    async with inbot.ctx.sessionmaker() as s:  # the whole series: nothing is planned any more
        await cal.cancel_series(s, inbot.ctx.settings, await s.get(ProgramSession, ids["session"]),  # type: ignore[arg-type]
                                inbot.clock.now())
        await s.commit()
    before = len(await _reminders(inbot))
    await inbot.tick(datetime(2026, 3, 8, 20, 0, tzinfo=UTC))
    rows = await _reminders(inbot)
    assert len(rows) == before and all(r.status != ActionStatus.PENDING for r in rows.values())


async def test_paused_participants_get_no_reminders_until_they_resume(inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    await inbot.tick(TUE_9)
    async with inbot.ctx.sessionmaker() as s:
        chi = await s.get(Participant, ids["chi"])
        assert chi is not None
        await enrollment.pause(s, chi, inbot.clock.now())
        await participant_schedule_changed(s, inbot.ctx, chi)
        await s.commit()
    theirs = lambda: [r for r in rows.values() if r.participant_id == ids["chi"] and r.due_at > TUE_9]  # noqa: E731
    rows = await _reminders(inbot)
    assert theirs() and {r.status for r in theirs()} == {ActionStatus.CANCELLED}
    await inbot.tick(TUE_9 + timedelta(hours=1))  # the planner does not bring them back while paused
    rows = await _reminders(inbot)
    assert {r.status for r in theirs()} == {ActionStatus.CANCELLED}
    await inbot.tick(datetime(2026, 3, 3, 20, 0, tzinfo=UTC))
    assert _session_texts(inbot, CHI) == []

    inbot.clock.set(datetime(2026, 3, 3, 21, 0, tzinfo=UTC))
    async with inbot.ctx.sessionmaker() as s:
        chi = await s.get(Participant, ids["chi"])
        assert chi is not None
        await enrollment.resume(s, chi, inbot.clock.now())
        await participant_schedule_changed(s, inbot.ctx, chi)
        await s.commit()
    rows = await _reminders(inbot)
    # The 24-hour reminder's time has passed; the 15-minute one is back.
    pending = [r for r in theirs() if r.status == ActionStatus.PENDING]
    assert [r.payload["offset_minutes"] for r in pending] == [15]
    await inbot.tick(datetime(2026, 3, 4, 19, 45, tzinfo=UTC))
    assert _session_texts(inbot, CHI) == ["Your group session starts at 2:00 PM."]


async def test_cant_attend_asks_a_reason_and_tells_facilitator_and_clinician(inbot: InProcessBot) -> None:
    configure_encryption("test-data-key")
    try:
        ids = await _program(inbot)
        await inbot.tick(MON + timedelta(hours=5, minutes=45))
        await inbot.press(CHI, "Can't attend")
        ask = inbot.messages(CHI)[-1]
        assert ask["visible_text"].startswith("Thanks for letting us know. What is the main reason?")
        assert [b["text"] for b in _buttons(ask)] == ["Sick", "Work", "Family", "Transport", "Other"]
        await inbot.press(CHI, "Other")
        assert inbot.last_text(CHI) == "Tell me in a few words, or tap Skip."
        await inbot.say(CHI, "My car broke down")
        assert inbot.last_text(CHI) == ("Thank you. I've let your care team know you can't make it to your group "
                                        "session on Mon, Mar 2 at 2:00 PM.")
        await inbot.tick()
        expected = ("P-chi can't attend the group session on Mon, Mar 2, 2:00 PM CST (session "
                    f"{ids['session']}). Reason: Other.\nThey added a short note.")
        notices = [t for t in inbot.texts(FAC) if not t.startswith("Brief")]  # the facilitator's brief came too
        assert notices == [expected] and inbot.texts(CAL) == [expected]  # the words are not quoted
        async with inbot.ctx.sessionmaker() as s:
            answer = await s.scalar(select(Attendance).where(Attendance.participant_id == ids["chi"]))
            assert answer is not None and answer.status == "cant_attend" and answer.note == "My car broke down"
            raw = (await s.execute(text("SELECT reason, note FROM attendance"))).one()
            assert all(value.startswith("enc:v2:") for value in raw)  # encrypted at rest
            assert await s.scalar(select(func.count()).select_from(Disclosure).where(
                Disclosure.participant_id == ids["chi"], Disclosure.kind == "notice")) == 2

        await inbot.press(CHI, "I can come after all")
        assert inbot.last_text(CHI).startswith("Great, see you at your group session on Mon, Mar 2 at 2:00 PM")
        await inbot.tick()
        assert inbot.texts(CAL)[-1] == (f"P-chi can attend the group session on Mon, Mar 2, 2:00 PM CST (session "
                                        f"{ids['session']}) after all.")
        async with inbot.ctx.sessionmaker() as s:  # their own copy (/mydata) has it, readable
            (mine,) = await attendance_export(s, ids["chi"])
        assert (mine["status"], mine["reason"], mine["note"]) == ("attending", "other", "My car broke down")

        # No reason at all: staff are still told after the short wait.
        await inbot.press(SYD, "Can't attend")
        await inbot.tick(inbot.clock.now() + timedelta(minutes=5))
        assert len([t for t in inbot.texts(FAC) if not t.startswith("Brief")]) == 2
        await inbot.tick(inbot.clock.now() + timedelta(minutes=5))
        assert inbot.texts(FAC)[-1].startswith("P-syd can't attend the group session on Mon, Mar 2, 2:00 PM CST")
        assert inbot.texts(FAC)[-1].endswith("Reason: no reason given.")
    finally:
        configure_encryption("")


async def test_sessions_command_and_a_run_of_absences_reaches_the_clinician(inbot: InProcessBot) -> None:
    await _program(inbot)
    await inbot.say(SYD, "/sessions")
    listing = inbot.messages(SYD)[-1]
    assert listing["visible_text"].splitlines() == [
        "Your sessions in the next 7 days (times in Australia/Sydney)",
        "• Tue, Mar 3, 7:00 AM – group session · Join",
        "• Thu, Mar 5, 7:00 AM – group session · Join",
    ]
    assert [b["text"] for b in _buttons(listing)] == ["Can't attend Tue, Mar 3, 7:00 AM",
                                                      "Can't attend Thu, Mar 5, 7:00 AM"]
    await inbot.press(SYD, "Can't attend Tue, Mar 3")
    await inbot.press(SYD, "Sick")
    await inbot.press(SYD, "Can't attend Thu, Mar 5")
    await inbot.press(SYD, "Work")
    await inbot.tick()
    assert not any("in a row" in t for t in inbot.texts(CAL))

    await inbot.tick(datetime(2026, 3, 6, 0, 0, tzinfo=UTC))
    await inbot.say(SYD, "/sessions")
    assert "• Tue, Mar 10, 6:00 AM – group session · Join" in inbot.last_text(SYD)  # after Chicago's DST change
    await inbot.press(SYD, "Can't attend Tue, Mar 10")
    await inbot.press(SYD, "Family")
    await inbot.tick()
    assert ("P-syd said they can't attend 3 sessions in a row. Silence can be a signal: please check in with them."
            in inbot.texts(CAL))
    assert not any("in a row" in t for t in inbot.texts(FAC))  # the clinician's, not the facilitator's
    await inbot.press(SYD, "Can't attend")  # a stale button of a session already answered
    assert "You already told us you can't make it to this session." in inbot.texts(SYD)[-1]


async def test_a_checkin_after_the_reason_question_keeps_its_typed_answers(inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    await inbot.tick(MON + timedelta(hours=5, minutes=45))
    inbot.clock.advance(minutes=1)
    await inbot.press(CHI, "Can't attend")
    await inbot.press(CHI, "Other")
    assert inbot.last_text(CHI) == "Tell me in a few words, or tap Skip."
    inbot.clock.advance(minutes=1)
    await inbot.say(CHI, "/checkin")
    for label in ("3", "1", "8", "Yes"):
        await inbot.press(CHI, label)
    assert "thoughts of hurting yourself" in inbot.last_text(CHI)
    await inbot.say(CHI, "yes")
    assert "988" in inbot.texts(CHI)[-2]
    await inbot.tick()
    assert any("Safety alert: URGENT" in t for t in inbot.texts(CAL))
    async with inbot.ctx.sessionmaker() as s:
        answer = await s.scalar(select(Attendance).where(Attendance.participant_id == ids["chi"]))
        assert answer is None or answer.note != "yes"
