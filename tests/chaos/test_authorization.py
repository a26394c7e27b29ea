"""Who may do what: unknown user, participant, a participant's support person, clinician, another
clinician, lead, admin × every command and the alert buttons. The allowed ones work; every other one
is refused, changes nothing, and is written to the audit log as `refused:…` with allowed = false.

The command list comes from the code (PARTICIPANT_COMMANDS, STAFF_COMMANDS, SUPPORT_PERSON_COMMANDS,
plus /start and /help),
so a new command is in the matrix the day it is added. The assembled bot runs in this process; its
replies are read from the local Bot API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.config import load_settings
from bot.db.engine import make_engine, make_sessionmaker
from bot.db.models import AuditEntry, Escalation, EscalationStatus, Participant, ParticipantStatus, ScheduledAction
from bot.db.support_models import SupportPerson, SupportStatus
from bot.sandbox.botapi import FakeBotAPI, RateLimits
from bot.telegram.commands import PARTICIPANT_COMMANDS, STAFF_COMMANDS, SUPPORT_PERSON_COMMANDS
from tests.chaos.conftest import report
from tests.support.databases import create_postgres_database, create_sqlite_database
from tests.support.inproc import InProcessBot, add_participant, add_staff, inproc_settings

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
USERS = {"unknown": 8001, "participant": 8101, "support person": 8301, "clinician": 8201, "other clinician": 8202,
         "lead": 8203, "admin": 8204}
STAFF_ROLES = {"clinician": "therapist", "other clinician": "therapist", "lead": "lead", "admin": "admin"}
COMMANDS = ["start", "help", *sorted(PARTICIPANT_COMMANDS), *sorted(STAFF_COMMANDS),
            *sorted(SUPPORT_PERSON_COMMANDS - PARTICIPANT_COMMANDS - STAFF_COMMANDS)]
OPEN_TO_ALL = {"start", "help"}
HINT = "This bot is for people in a treatment program"  # what an unknown person gets, and nothing else
REFUSALS = ("That command is for staff", "That command is for participants", HINT,
            "That command is for support persons", "That command is not available to support persons")
NO_HANDLER = "I don't know that command"


def allowed(role: str, command: str) -> bool:
    if command in OPEN_TO_ALL:
        return True
    if role == "participant":
        return command in PARTICIPANT_COMMANDS
    if role == "support person":  # a participant's family member or friend (#17)
        return command in SUPPORT_PERSON_COMMANDS
    if role in STAFF_ROLES:
        return command in STAFF_COMMANDS
    return False


@dataclass
class World:
    bot: InProcessBot
    api: FakeBotAPI
    url: str
    staff_ids: dict[str, int]
    participant_id: int

    async def scalar(self, statement: Any) -> Any:
        async with self.bot.ctx.sessionmaker() as session:
            return await session.scalar(statement)

    async def refused_count(self) -> int:
        return int(await self.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.allowed.is_(False), AuditEntry.action.like("refused:%"))) or 0)

    def texts(self, user: int) -> list[str]:
        return [(m.get("visible_text") or m.get("caption") or "") for m in self.api.chat(user)["messages"]]

    async def open_escalation(self) -> int:
        """The participant writes a crisis message; the page goes out. Returns the escalation id."""
        await self.bot.say(USERS["participant"], "i want to kill myself")
        await self.bot.tick()
        escalation = await self.scalar(select(Escalation.id).where(
            Escalation.participant_id == self.participant_id, Escalation.status == EscalationStatus.OPEN))
        assert escalation is not None
        return int(escalation)


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    url = create_postgres_database() if request.param == "postgres" else create_sqlite_database(tmp_path)
    now = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    engine = make_engine(url)
    staff_ids: dict[str, int] = {}
    async with make_sessionmaker(engine)() as session:
        for role, kind in STAFF_ROLES.items():
            staff = await add_staff(session, f"auth-{role.replace(' ', '-')}", USERS[role], now)
            staff.role = kind
            staff_ids[role] = staff.id
        assigned = await session.get(type(staff), staff_ids["clinician"])
        participant = await add_participant(session, "P-AUTH-1", assigned, USERS["participant"], now)
        participant_id = participant.id
        session.add(SupportPerson(  # the participant's mother, who joined with her own consent
            participant_id=participant_id, alias="P-AUTH-1-S1", name="mom", status=SupportStatus.ACTIVE,
            invited_by=f"participant:{participant_id}", telegram_user_id=USERS["support person"],
            chat_id=USERS["support person"], locale="en", timezone="America/New_York", consent_version="test",
            consented_at=now, created_at=now))
        await session.commit()
    await engine.dispose()
    api = FakeBotAPI(rate_limits=RateLimits(enabled=False))
    await api.start()
    settings = inproc_settings(load_settings(REPO / "config.toml", env={"BOT_TOKEN": "42:TEST"}), api, url)
    bot = await InProcessBot.start(settings, api, ManualClock(now))
    yield World(bot, api, url, staff_ids, participant_id)
    await bot.close()
    await api.stop()


async def test_every_role_times_every_command(world: World) -> None:
    mismatches: list[str] = []
    no_handler: list[str] = []
    matrix: dict[str, dict[str, str]] = {c: {} for c in COMMANDS}
    caseload_replies: dict[str, list[str]] = {}
    for role, user in USERS.items():
        for command in COMMANDS:
            before_refused, before_seen = await world.refused_count(), len(world.texts(user))
            await world.bot.say(user, f"/{command}")
            replies = world.texts(user)[before_seen:]
            if command == "caseload":
                caseload_replies[role] = replies
            refused_rows = await world.refused_count() - before_refused
            refusal_text = any(any(words in r for words in REFUSALS) for r in replies)
            if allowed(role, command):
                if role == "unknown":  # /start and /help: the enrollment hint and nothing else
                    ok = refused_rows == 0 and bool(replies) and all(HINT in r for r in replies)
                else:
                    ok = refused_rows == 0 and bool(replies) and not refusal_text
                if ok and any(r.startswith(NO_HANDLER) for r in replies):
                    no_handler.append(f"{role} /{command}")
                    matrix[command][role] = "no handler"
                else:
                    matrix[command][role] = "works" if ok else "WRONG"
            else:
                ok = refused_rows >= 1 and bool(replies) and refusal_text
                matrix[command][role] = "refused" if ok else "WRONG"
            if not ok:
                mismatches.append(f"{role} /{command}: replies={replies!r:.200} refused audit rows={refused_rows}")
    # What each may see: /caseload names this participant to those who may see them, and nothing
    # the other clinician was ever sent names them.
    sees = {role: any("P-AUTH-1" in t for t in caseload_replies[role]) for role in STAFF_ROLES}
    for outsider in ("other clinician", "support person"):
        if any("P-AUTH-1" in t for t in world.texts(USERS[outsider])):
            mismatches.append(f"the {outsider} was sent a text naming P-AUTH-1")
    if sees != {"clinician": True, "other clinician": False, "lead": True, "admin": True}:
        mismatches.append(f"who saw P-AUTH-1 in /caseload: {sees}")
    # Nothing a refused command did may have changed the participant.
    status = await world.scalar(select(Participant.status).where(Participant.id == world.participant_id))
    width = max(len(c) for c in COMMANDS) + 1
    lines = ["/" + c.ljust(width) + "  ".join(matrix[c].get(r, "").ljust(15) for r in USERS) for c in COMMANDS]
    report("authorization: role x command (allowed ones work; others refused and audited)", {
        "roles": "  ".join(r.ljust(15) for r in USERS),
        "matrix": "\n    " + "\n    ".join(lines),
        "named P-AUTH-1 in their caseload": sees,
        "wrong": len(mismatches),
        "allowed but no handler yet": no_handler or "none",
    })
    assert not mismatches, "\n".join(mismatches)
    assert status in (ParticipantStatus.ACTIVE, ParticipantStatus.PAUSED)


ALERT_DECISIONS = {"ack": EscalationStatus.ACKNOWLEDGED, "contacted": EscalationStatus.ACKNOWLEDGED,
                   "false": EscalationStatus.RESOLVED, "out:safe": EscalationStatus.RESOLVED}


def decision_data(decision: str, escalation: int) -> str:
    """esc:ack:7, esc:false:7, esc:out:7:safe (an outcome button carries its code last)."""
    if decision.startswith("out:"):
        return f"esc:out:{escalation}:{decision[4:]}"
    return f"esc:{decision}:{escalation}"


async def test_alert_buttons_only_for_those_who_may_handle_the_alert(world: World) -> None:
    escalation = await world.open_escalation()
    other = world.staff_ids["other clinician"]
    buttons = [decision_data(d, escalation) for d in ALERT_DECISIONS] + [
        f"esc:reassign:{escalation}", f"esc:to:{escalation}:{other}"]
    refused: dict[str, list[str]] = {}
    wrong: list[str] = []
    for role in ("unknown", "participant", "support person", "other clinician"):
        for data in buttons:
            before = await world.refused_count()
            pages_before = await world.scalar(select(func.count()).select_from(ScheduledAction).where(
                ScheduledAction.escalation_id == escalation))
            await world.bot.press_data(USERS[role], 1, data)
            status = await world.scalar(select(Escalation.status).where(Escalation.id == escalation))
            pages = await world.scalar(select(func.count()).select_from(ScheduledAction).where(
                ScheduledAction.escalation_id == escalation))
            if await world.refused_count() - before < 1 or status != EscalationStatus.OPEN or pages != pages_before:
                wrong.append(f"{role} pressed {data}: status {status}, pages {pages_before}->{pages}")
            else:
                refused.setdefault(role, []).append(data.split(":")[1])
    # Participant-only buttons pressed by staff or strangers: refused too, and nobody is opted out.
    for role in ("unknown", "clinician", "lead", "admin"):
        before = await world.refused_count()
        await world.bot.press_data(USERS[role], 1, "stop:yes")
        if await world.refused_count() - before < 1:
            wrong.append(f"{role} pressed stop:yes and it was not refused")
    status = await world.scalar(select(Participant.status).where(Participant.id == world.participant_id))
    if status != ParticipantStatus.ACTIVE:
        wrong.append(f"the participant is {status} after others pressed their stop button")

    # Those who may: the assigned clinician, a lead, an admin; each decision closes the alert.
    worked: dict[str, list[str]] = {}
    for role in ("clinician", "lead", "admin"):
        for decision, expected in ALERT_DECISIONS.items():
            escalation = await world.open_escalation()
            await world.bot.press_data(USERS[role], 1, decision_data(decision, escalation))
            status = await world.scalar(select(Escalation.status).where(Escalation.id == escalation))
            if status != expected:
                wrong.append(f"{role} pressed {decision}: status {status}, expected {expected}")
            else:
                worked.setdefault(role, []).append(decision)
            # An alert ends only with an outcome: record one, so that the next crisis opens a new alert.
            await world.bot.press_data(USERS[role], 1, f"esc:out:{escalation}:false")
        escalation = await world.open_escalation()
        pages_before = await world.scalar(select(func.count()).select_from(ScheduledAction).where(
            ScheduledAction.escalation_id == escalation))
        await world.bot.press_data(USERS[role], 1, f"esc:reassign:{escalation}")
        await world.bot.press_data(USERS[role], 1, f"esc:to:{escalation}:{other}")
        pages = await world.scalar(select(func.count()).select_from(ScheduledAction).where(
            ScheduledAction.escalation_id == escalation))
        if pages <= pages_before:
            wrong.append(f"{role} reassigned escalation {escalation} but no page was added")
        else:
            worked.setdefault(role, []).append("reassign")
        await world.bot.press_data(USERS[role], 1, f"esc:out:{escalation}:false")  # close it for the next round
    audited = await world.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action.in_(["alert_decision", "alert_reassign"]), AuditEntry.allowed.is_(True)))
    report("authorization: alert buttons", {
        "refused (and audited, nothing changed)": refused,
        "worked": worked,
        "allowed decisions audited": audited,
        "wrong": wrong or "none",
    })
    # The support person never hears of the participant's alerts.
    if any("alert" in t.lower() or "P-AUTH-1" in t for t in world.texts(USERS["support person"])):
        wrong.append(f"the support person was told of an alert: {world.texts(USERS['support person'])}")
    assert not wrong, "\n".join(wrong)


async def test_group_commands_only_for_staff_who_lead_the_cohort(world: World) -> None:
    """Peer groups (#17): /linkgroup and /closethread in the group, and /mute, /unmute, /remove,
    /readmit in private, work for the cohort's facilitator (the clinician here), a lead and an admin; the participant,
    an unknown user and another clinician are refused, audited, and change nothing. Nothing is
    ever answered in the group."""
    from bot.db.calendar_models import GroupMembership, ParticipantGroup, ProgramSession
    from bot.db.group_models import GroupChat, GroupMember

    group = -100555000222
    now = world.bot.clock.now()
    async with world.bot.ctx.sessionmaker() as session:
        cohort = ParticipantGroup(name="Auth-Cohort", created_at=now)
        session.add(cohort)
        await session.flush()
        session.add(ProgramSession(uid="auth-group", title="Group", kind="group", first_start=now, duration_minutes=60,
                                   timezone="UTC", rrule=None, exdates=[], video_link="https://example.org/v",
                                   facilitator_id=world.staff_ids["clinician"], group_id=cohort.id, created_at=now,
                                   updated_at=now))
        session.add(GroupMembership(group_id=cohort.id, participant_id=world.participant_id, joined_at=now))
        await session.commit()
    world.api.create_group(group, USERS["admin"], members=list(USERS.values()), is_forum=True)
    wrong: list[str] = []
    matrix: dict[str, str] = {}
    for role in ("unknown", "participant", "other clinician", "clinician", "lead", "admin"):
        before = await world.refused_count()
        written = world.api.group_message(group, USERS[role], "/linkgroup Auth-Cohort")
        await world.bot.feed({"update_id": written["update_id"], "message": written["message"]})
        linked_by = await world.scalar(select(GroupChat.linked_by_id).where(GroupChat.telegram_chat_id == group))
        expected = world.staff_ids.get(role) if role in ("clinician", "lead", "admin") else None
        if role in ("clinician", "lead", "admin"):
            ok = linked_by == expected and await world.refused_count() == before
        else:
            ok = await world.refused_count() - before >= 1 and linked_by is None  # refused before anyone linked it
        matrix[f"/linkgroup by {role}"] = "works" if role in ("clinician", "lead", "admin") else "refused"
        if not ok:
            wrong.append(f"/linkgroup by {role}: linked_by={linked_by}, refused rows "
                         f"{await world.refused_count() - before}")
    # Peer-led threads: the facilitator opens one; /closethread inside it works only for staff who
    # lead the cohort (refused and audited for the others, who are answered in private if known).
    written = world.api.group_message(group, USERS["clinician"], "/thread Auth topic")
    await world.bot.feed({"update_id": written["update_id"], "message": written["message"]})
    topics = world.api.group(group)["topics"]
    matrix["/thread by clinician (facilitator)"] = "works" if len(topics) == 1 else "WRONG"
    if len(topics) != 1:
        wrong.append(f"/thread by the facilitator made no topic: {topics}")
    topic = topics[0]["message_thread_id"] if topics else 0
    for role in ("unknown", "participant", "other clinician", "lead"):
        before = await world.refused_count()
        written = world.api.group_message(group, USERS[role], "/closethread", message_thread_id=topic or None)
        await world.bot.feed({"update_id": written["update_id"], "message": written["message"]})
        closes = await world.scalar(select(func.count()).select_from(ScheduledAction).where(
            ScheduledAction.payload["action"].as_string() == "close_topic"))
        refused = await world.refused_count() - before
        ok = (refused == 0 and closes == 1) if role == "lead" else (refused >= 1 and closes == 0)
        matrix[f"/closethread by {role}"] = ("works" if role == "lead" else "refused") if ok else "WRONG"
        if not ok:
            wrong.append(f"/closethread by {role}: refused rows={refused}, close requests={closes}")
    for command in ("mute", "unmute", "remove", "readmit"):
        for role in ("participant", "other clinician", "clinician", "lead", "admin"):
            before = await world.refused_count()
            seen = len(world.texts(USERS[role]))
            await world.bot.say(USERS[role], f"/{command} P-AUTH-1")
            replies = world.texts(USERS[role])[seen:]
            refused = await world.refused_count() - before
            if role in ("clinician", "lead", "admin"):
                ok = (refused == 0 and bool(replies) and "P-AUTH-1" in replies[-1]
                      and "you can't do that" not in replies[-1])
            else:
                ok = refused >= 1 and bool(replies)
            matrix[f"/{command} by {role}"] = "works" if ok and role in ("clinician", "lead", "admin") else (
                "refused" if ok else "WRONG")
            if not ok:
                wrong.append(f"/{command} by {role}: replies={replies!r:.200} refused rows={refused}")
    removed_by = await world.scalar(select(GroupMember.removed_by_id).where(
        GroupMember.participant_id == world.participant_id))
    bot_words = [m.get("visible_text") or "" for m in world.api.chat(group)["messages"]]
    if any("P-AUTH-1" in t or "auth-" in t for t in bot_words):
        wrong.append(f"something in the group names someone: {bot_words}")
    report("authorization: group commands (peer groups)", {"matrix": matrix, "wrong": wrong or "none",
                                                            "removed by (last /remove)": removed_by})
    assert not wrong, "\n".join(wrong)
