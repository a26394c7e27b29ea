"""The pre-session brief, attendance marks and the daily digest, as staff live them, in process on
SQLite and PostgreSQL.

A Monday/Wednesday 2 PM (Chicago) group with a facilitator and two participants, and an individual
session with one of them: an hour before each, the facilitator gets the brief (one per group; one
per participant with the assigned clinician for an individual session) saying what happened since
the last session, including a thought record the participant saved for it. After the start, the
facilitator marks who was there from the brief and /trends counts what happened. A clinician sets
a daily digest time and it arrives then.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

from PIL import Image
from sqlalchemy import select

from bot.db.calendar_models import SessionOccurrence, SessionPresence
from bot.db.checkin_models import CheckinAnswer, FlowRun
from bot.db.content_models import ExerciseAnswer
from bot.db.instrument_models import InstrumentScore
from bot.db.models import ActionStatus, AuditEntry, Disclosure, Escalation, ScheduledAction
from bot.services.calendar import occurrences as cal
from bot.services.calendar.apply import import_calendar
from bot.services.calendar.csv_reader import parse_csv
from bot.services.charts.render import point_counts_of
from tests.support.inproc import InProcessBot, add_participant, add_staff

MON = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # the clock fixture's start: Monday 08:00 in Chicago
GROUP_START = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)  # Monday 2 PM in Chicago
SOLO_START = datetime(2026, 3, 3, 21, 0, tzinfo=UTC)  # Tuesday 3 PM in Chicago
FAC, CLIN, OTHER, ANA, BEN = 910_001, 910_002, 910_003, 6_101, 6_102
CSV = ("title,kind,start,duration_minutes,timezone,video_link,facilitator,group,rrule,participants\n"
       "Evening group,group,2026-03-02T14:00,90,America/Chicago,https://zoom.us/j/1,dr-fac,Mon-Wed,"
       '"FREQ=WEEKLY;BYDAY=MO,WE",\n'
       "Ana individual,individual,2026-03-03T15:00,50,America/Chicago,https://zoom.us/j/2,dr-fac,,,P-ana\n")


async def _program(inbot: InProcessBot) -> dict[str, int]:
    now = inbot.clock.now()
    async with inbot.ctx.sessionmaker() as s:
        fac = await add_staff(s, "dr-fac", FAC, now)
        clin = await add_staff(s, "dr-clin", CLIN, now)
        other = await add_staff(s, "dr-other", OTHER, now)
        ana = await add_participant(s, "P-ana", clin, ANA, now, timezone="America/Chicago")
        ben = await add_participant(s, "P-ben", clin, BEN, now, timezone="America/Chicago")
        report = await import_calendar(s, inbot.ctx.settings, parse_csv(CSV), now)
        assert report is not None and len(report.added) == 2
        group = await cal.group_by_name(s, "Mon-Wed")
        assert group is not None
        await cal.set_membership(s, inbot.ctx.settings, group, [ana, ben], now, member=True)
        # Ana's last week: moods 6, 6 the week before, 3, 4, 2 in this one; a PHQ-9 of 15; an
        # urgent alert resolved; a thought record saved for her next session.
        for offset, mood in ((-9, 6), (-8, 6), (-3, 3), (-2, 4), (-1, 2)):
            day = date(2026, 3, 2) + timedelta(days=offset)
            at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=15)
            run = FlowRun(participant_id=ana.id, kind="checkin", flow_id="daily", locale="en", status="done",
                          level=0, reasons="", local_date=day, started_at=at, finished_at=at)
            s.add(run)
            await s.flush()
            s.add(CheckinAnswer(participant_id=ana.id, run_id=run.id, local_date=day, question_id="mood",
                                value_number=mood, answered_at=at))
        run = FlowRun(participant_id=ana.id, kind="instrument", flow_id="phq9", locale="en", status="done",
                      started_at=MON - timedelta(days=2), finished_at=MON - timedelta(days=2))
        s.add(run)
        await s.flush()
        s.add(InstrumentScore(participant_id=ana.id, run_id=run.id, instrument_id="phq9", version="1",
                              local_date=date(2026, 2, 28), total=15, band="moderately_severe", level=0,
                              reasons="", completed_at=MON - timedelta(days=2)))
        s.add(Escalation(participant_id=ana.id, level=3, status="resolved", outcome="reached_safe",
                         message_received_at=MON - timedelta(days=1), resolved_at=MON - timedelta(hours=20),
                         created_at=MON - timedelta(days=1)))
        run = FlowRun(participant_id=ana.id, kind="exercise", flow_id="thought-record", locale="en", status="done",
                      started_at=MON - timedelta(hours=3), finished_at=MON - timedelta(hours=3))
        s.add(run)
        await s.flush()
        s.add(ExerciseAnswer(participant_id=ana.id, run_id=run.id, exercise_id="thought-record", key="situation",
                             value_text="Argument with my sister", answered_at=MON - timedelta(hours=3)))
        s.add(ExerciseAnswer(participant_id=ana.id, run_id=run.id, exercise_id="thought-record",
                             key="save_for_session", value_choice="yes", answered_at=MON - timedelta(hours=3)))
        await s.commit()
        return {"fac": fac.id, "clin": clin.id, "other": other.id, "ana": ana.id, "ben": ben.id}


def _briefs(inbot: InProcessBot, chat: int) -> list[dict]:
    return [m for m in inbot.messages(chat) if (m.get("visible_text") or "").startswith("Brief")]


async def _group_occurrence(inbot: InProcessBot) -> SessionOccurrence:
    async with inbot.ctx.sessionmaker() as s:
        occ = await s.scalar(select(SessionOccurrence).where(SessionOccurrence.start_at == GROUP_START))
        assert occ is not None
        return occ


async def test_the_group_brief_arrives_an_hour_before_and_attendance_is_marked_from_it(inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    await inbot.tick()
    await inbot.tick(GROUP_START - timedelta(minutes=61))
    assert _briefs(inbot, FAC) == []  # not yet

    await inbot.tick(GROUP_START - timedelta(minutes=60))
    (brief,) = _briefs(inbot, FAC)
    text = brief["visible_text"]
    assert text.startswith("Brief: group session Mon, Mar 2, 2:00 PM CST · 2 participants")
    # Ana: 3 check-ins this week averaging 3, down from 6; her PHQ-9; the alert and how it ended.
    assert "P-ana: check-ins 0/0; mood 3 (6)" in text
    assert "PHQ-9 15 moderately severe" in text and "🚨 imminent, Sun, Mar 1: resolved: Reached them, safe" in text
    assert "P-ben: check-ins 0/0; mood –, craving –" in text
    assert "Argument with my sister" not in text  # her own words are for her individual session
    assert "shared an exercise for their individual session" in text
    assert _briefs(inbot, CLIN) == []  # a group's brief goes to its facilitator only
    async with inbot.ctx.sessionmaker() as s:
        told = set((await s.scalars(select(Disclosure.participant_id).where(
            Disclosure.kind == "brief", Disclosure.recipient == f"staff:{ids['fac']}"))).all())
    assert told == {ids["ana"], ids["ben"]}

    # Before the start, marks are refused with a reason; after it, a tap cycles ✅ → ❌ → unmarked.
    await inbot.press(FAC, "Mark attendance")
    roster = inbot.messages(FAC)[-1]
    assert roster["visible_text"].startswith("Attendance · group session")
    await inbot.press(FAC, "P-ana")
    assert inbot.notices(FAC)[-1] == "Attendance can be marked once the session has started."
    inbot.clock.set(GROUP_START + timedelta(minutes=5))
    await inbot.press(FAC, "P-ana")
    labels = [b["text"] for row in inbot.messages(FAC)[-1]["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["✅ P-ana", "▫️ P-ben"]
    await inbot.press(FAC, "P-ben")
    await inbot.press(FAC, "P-ben")
    labels = [b["text"] for row in inbot.messages(FAC)[-1]["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["✅ P-ana", "❌ P-ben"]

    # Someone who is neither the facilitator nor these participants' clinician is refused, and logged.
    occ = await _group_occurrence(inbot)
    await inbot.say(OTHER, "/help")
    await inbot.press_data(OTHER, inbot.messages(OTHER)[-1]["message_id"], f"pres:{occ.id}:{ids['ana']}")
    assert "can't mark attendance" in inbot.notices(OTHER)[-1]
    async with inbot.ctx.sessionmaker() as s:
        marks = dict((await s.execute(select(SessionPresence.participant_id, SessionPresence.present))).all())
        refused = await s.scalar(select(AuditEntry).where(AuditEntry.allowed.is_(False),
                                                          AuditEntry.actor == f"staff:{ids['other']}"))
    assert marks == {ids["ana"]: True, ids["ben"]: False}
    assert refused is not None and refused.action.startswith("attendance:mark")

    # The clinician's /trends counts what happened once the session is over.
    await inbot.tick(GROUP_START + timedelta(hours=2))
    await inbot.say(CLIN, "/trends P-ana")
    assert "Sessions held: 1, attended: 1" in "\n".join(inbot.texts(CLIN))


async def test_an_individual_brief_goes_to_the_facilitator_and_the_clinician_with_what_was_shared(
        inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    await inbot.tick()
    await inbot.tick(SOLO_START - timedelta(minutes=60))
    for chat in (FAC, CLIN):
        briefs = [b["visible_text"] for b in _briefs(inbot, chat) if "P-ana" in b["visible_text"].splitlines()[0]]
        assert len(briefs) == 1, (chat, inbot.texts(chat))
        text = briefs[0]
        assert text.startswith("Brief: P-ana · individual session Tue, Mar 3, 3:00 PM CST")
        assert "Mood 3 (before: 6)" in text and "PHQ-9 15" in text
        assert "Shared for this session (1):" in text and "situation: Argument with my sister" in text
        # Her chart follows the text: a PNG that decodes, its caption the chart in words.
        chart = inbot.messages(chat)[-1]
        assert chart["kind"] == "photo" and chart["caption"].startswith("Chart of P-ana")
        png = inbot.api.file_bytes(chart["photo"]["file_id"])
        with Image.open(io.BytesIO(png)) as image:
            image.load()
            assert image.format == "PNG"
        assert point_counts_of(png)["mood"] == 5  # her five check-ins of the last 30 days
    assert not any("P-ben" in b["visible_text"] for b in _briefs(inbot, CLIN))
    async with inbot.ctx.sessionmaker() as s:
        recipients = set((await s.scalars(select(Disclosure.recipient).where(
            Disclosure.kind == "brief", Disclosure.participant_id == ids["ana"]))).all())
    assert {f"staff:{ids['fac']}", f"staff:{ids['clin']}"} <= recipients


async def test_a_cancelled_session_sends_no_brief_and_a_moved_one_moves_it(inbot: InProcessBot) -> None:
    await _program(inbot)
    await inbot.tick()
    async with inbot.ctx.sessionmaker() as s:
        group = await s.scalar(select(SessionOccurrence).where(SessionOccurrence.start_at == GROUP_START))
        solo = await s.scalar(select(SessionOccurrence).where(SessionOccurrence.start_at == SOLO_START))
        assert group is not None and solo is not None
        await cal.cancel_occurrence(s, group, inbot.clock.now())
        await cal.move_occurrence(s, inbot.ctx.settings, solo, SOLO_START + timedelta(hours=2), inbot.clock.now())
        await s.commit()
    await inbot.tick(MON + timedelta(minutes=30))  # the planner runs again
    await inbot.tick(GROUP_START)
    assert _briefs(inbot, FAC) == []
    await inbot.tick(SOLO_START - timedelta(minutes=60))
    assert _briefs(inbot, FAC) == []  # moved two hours later
    await inbot.tick(SOLO_START + timedelta(minutes=60))
    assert [b["visible_text"].splitlines()[0] for b in _briefs(inbot, FAC)] == [
        "Brief: P-ana · individual session Tue, Mar 3, 5:00 PM CST"]


async def test_a_clinician_sets_a_daily_digest_time_and_it_arrives_then(inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    await inbot.say(CLIN, "/digest at 25:00")
    assert "couldn't read" in inbot.last_text(CLIN)
    await inbot.say(CLIN, "/digest at 7:30 am")
    assert inbot.last_text(CLIN) == ("Your daily digest comes every day at 07:30 (America/New_York). "
                                     "/digest off stops it.")
    async with inbot.ctx.sessionmaker() as s:  # something for the digest: an alert on Ben, still open
        s.add(Escalation(participant_id=ids["ben"], level=2, status="open", created_at=MON,
                         message_received_at=datetime(2026, 3, 3, 3, 0, tzinfo=UTC)))
        await s.commit()
    before = len(inbot.messages(CLIN))
    await inbot.tick(datetime(2026, 3, 3, 12, 29, tzinfo=UTC))  # 07:29 Tuesday in New York (the program's zone)
    assert len(inbot.messages(CLIN)) == before
    await inbot.tick(datetime(2026, 3, 3, 12, 30, tzinfo=UTC))
    digest = inbot.messages(CLIN)[before:]
    assert digest and digest[0]["visible_text"].startswith("Digest: the last 24 hours")
    async with inbot.ctx.sessionmaker() as s:
        disclosed = set((await s.scalars(select(Disclosure.participant_id).where(
            Disclosure.kind == "digest", Disclosure.recipient == f"staff:{ids['clin']}"))).all())
        rows = (await s.scalars(select(ScheduledAction).where(ScheduledAction.kind == "daily_digest")
                                .order_by(ScheduledAction.due_at))).all()
    assert "P-ben" in digest[0]["visible_text"] and disclosed == {ids["ben"]}
    assert [(r.status, r.due_at) for r in rows][-1] == (ActionStatus.PENDING,
                                                        datetime(2026, 3, 4, 12, 30, tzinfo=UTC))

    await inbot.say(CLIN, "/digest off")
    assert inbot.last_text(CLIN).startswith("Your daily digest is off.")
    before = len(inbot.messages(CLIN))
    await inbot.tick(datetime(2026, 3, 4, 12, 31, tzinfo=UTC))
    assert len(inbot.messages(CLIN)) == before


async def test_a_new_facilitator_gets_the_brief_and_the_old_one_does_not(inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    await inbot.tick()  # briefs planned for dr-fac
    now = inbot.clock.now()
    async with inbot.ctx.sessionmaker() as s:  # the program re-imports its calendar: dr-other runs the group now
        changed = CSV.replace(",dr-fac,Mon-Wed,", ",dr-other,Mon-Wed,")
        report = await import_calendar(s, inbot.ctx.settings, parse_csv(changed), now)
        assert report is not None
        await s.commit()
    await inbot.tick(GROUP_START - timedelta(minutes=60))
    assert _briefs(inbot, FAC) == []
    (brief,) = _briefs(inbot, OTHER)
    assert "P-ana" in brief["visible_text"]

    # The roster behind "Mark attendance" is for those who may mark: the old facilitator, who is not
    # these participants' clinician, is refused (and it is logged); the new one sees both.
    occ = await _group_occurrence(inbot)
    await inbot.say(FAC, "/help")
    await inbot.press_data(FAC, inbot.messages(FAC)[-1]["message_id"], f"pres:{occ.id}")
    assert "can't mark attendance" in inbot.notices(FAC)[-1]
    async with inbot.ctx.sessionmaker() as s:
        refused = await s.scalar(select(AuditEntry).where(AuditEntry.allowed.is_(False),
                                                          AuditEntry.actor == f"staff:{ids['fac']}"))
    assert refused is not None and refused.action == f"attendance:view:occurrence:{occ.id}"
    await inbot.press(OTHER, "Mark attendance")
    labels = [b["text"] for row in inbot.messages(OTHER)[-1]["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["▫️ P-ana", "▫️ P-ben"]
