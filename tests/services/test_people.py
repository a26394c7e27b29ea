"""People come and go, on SQLite and PostgreSQL, through the `iopbot` command as an operator uses it:
invites that grant what they were issued for and can be revoked, discharge (and alumni), staff
deactivation with the caseload handed over."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.cli import main
from bot.clock import ManualClock, OffsetFileClock
from bot.context import AppContext
from bot.db.engine import make_engine, make_sessionmaker
from bot.db.models import (
    ActionStatus,
    Escalation,
    EscalationStatus,
    Invite,
    Participant,
    ParticipantStatus,
    ScheduledAction,
    Staff,
)
from bot.services import enrollment
from bot.services.people import GOODBYE
from bot.services.scheduling.rows import enqueue

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


class Operator:
    """`iopbot …` in this process against the test's database, with the clock at NOW."""

    def __init__(self, config: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.config, self.db_url, self.capsys = config, db_url, capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        code = main(["--config", str(self.config), *args])
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def token(self, *args: str) -> str:
        code, out, err = self(*args)
        assert code == 0, err
        return next(line.split()[1] for line in out.splitlines() if line.startswith("token:"))

    def db(self, work: Any) -> Any:
        """Run `work(session)` on the database (in a thread: the test itself is synchronous)."""
        async def go() -> Any:
            engine = make_engine(self.db_url)
            try:
                async with make_sessionmaker(engine)() as session:
                    result = await work(session)
                    await session.commit()
                    return result
            finally:
                await engine.dispose()

        results: list[Any] = []
        import threading

        thread = threading.Thread(target=lambda: results.append(asyncio.run(go())))
        thread.start()
        thread.join()
        return results[0]


@pytest.fixture
def iopbot(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str]) -> Operator:
    config = tmp_path / "config.toml"
    config.write_text(f'[program]\nname = "Test IOP"\n\n[database]\nurl = "{db_url}"\n\n'
                      f'[content]\ndirectory = "{REPO / "content"}"\n')
    clock_file = tmp_path / "clock"
    OffsetFileClock.write_offset(clock_file, NOW.timestamp() - time.time())
    monkeypatch.setenv("IOPBOT_CLOCK_FILE", str(clock_file))
    for name in ("DATABASE_URL", "IOPBOT_DATA_KEY", "BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return Operator(config, db_url, capsys)


def redeem(iopbot: Operator, token: str, user: int, hint: str | None = "en") -> tuple[Any, Any]:
    async def work(session: Any) -> tuple[Any, Any]:
        result, who = await enrollment.redeem_invite(session, NOW + timedelta(minutes=1), token, user, user, hint)
        return result, (who.role if isinstance(who, Staff) else getattr(who, "locale", None))

    return iopbot.db(work)


def test_a_link_grants_what_it_was_issued_for_and_a_new_invite_revokes_the_old(iopbot: Operator) -> None:
    therapist_link = iopbot.token("invite", "staff", "--alias", "dr-x", "--role", "therapist")
    admin_link = iopbot.token("invite", "staff", "--alias", "dr-x", "--role", "admin")
    # Before: the therapist's link, opened after the alias was re-invited as admin, gave admin rights.
    assert redeem(iopbot, therapist_link, 501) == (enrollment.Redeemed.INVALID, None)
    assert redeem(iopbot, admin_link, 502) == (enrollment.Redeemed.STAFF, "admin")

    # A link never grants more than it was issued for, whatever the record says when it is opened.
    link = iopbot.token("invite", "staff", "--alias", "dr-y", "--role", "therapist")

    async def promote(session: Any) -> None:
        staff = await session.scalar(select(Staff).where(Staff.alias == "dr-y"))
        staff.role = "admin"

    iopbot.db(promote)
    assert redeem(iopbot, link, 503) == (enrollment.Redeemed.STAFF, "therapist")

    # A participant re-invited: only the newest link works.
    first = iopbot.token("invite", "participant", "--alias", "P-1", "--therapist", "dr-y")
    second = iopbot.token("invite", "participant", "--alias", "P-1", "--therapist", "dr-y")
    assert redeem(iopbot, first, 504)[0] is enrollment.Redeemed.INVALID
    assert redeem(iopbot, second, 505)[0] is enrollment.Redeemed.PARTICIPANT


def test_invite_revoke_and_the_language_of_an_invite(iopbot: Operator) -> None:
    iopbot.token("invite", "staff", "--alias", "dr-z", "--role", "therapist")
    link = iopbot.token("invite", "participant", "--alias", "P-2", "--therapist", "dr-z")
    code, out, _ = iopbot("invite", "revoke", "P-2")
    assert code == 0 and out.strip() == "P-2: 1 unused invite link(s) revoked"
    assert redeem(iopbot, link, 601)[0] is enrollment.Redeemed.INVALID
    assert iopbot("invite", "revoke", "P-2")[1].strip() == "P-2: no unused invite links"
    code, _, err = iopbot("invite", "revoke", "nobody")
    assert code == 2 and "no staff member or participant with alias 'nobody'" in err
    code, out, _ = iopbot("doctor")
    assert "participant P-2" not in out  # a revoked link is not an open invite

    spanish = iopbot.token("invite", "participant", "--alias", "P-3", "--therapist", "dr-z", "--language", "es")
    assert redeem(iopbot, spanish, 602, hint="en") == (enrollment.Redeemed.PARTICIPANT, "es")
    by_telegram = iopbot.token("invite", "participant", "--alias", "P-4", "--therapist", "dr-z")
    assert redeem(iopbot, by_telegram, 603, hint="es-MX") == (enrollment.Redeemed.PARTICIPANT, "es")
    with pytest.raises(SystemExit) as exit_:
        iopbot("invite", "participant", "--alias", "P-5", "--therapist", "dr-z", "--language", "fr")
    assert exit_.value.code == 2 and "invalid choice: 'fr'" in iopbot.capsys.readouterr().err


async def _enrolled(session: Any, alias: str, therapist: Staff, chat: int, *, backup: Staff | None = None
                    ) -> Participant:
    p = Participant(alias=alias, telegram_user_id=chat, chat_id=chat, status=ParticipantStatus.ACTIVE, locale="en",
                    timezone="America/New_York", checkin_time="09:00", quiet_start="22:00", quiet_end="07:00",
                    therapist_id=therapist.id, backup_id=backup.id if backup else None, consent_version="t",
                    consented_at=NOW, created_at=NOW)
    session.add(p)
    await session.flush()
    return p


async def _staff(session: Any, alias: str, chat: int | None, role: str = "therapist") -> Staff:
    s = Staff(alias=alias, role=role, telegram_user_id=chat, chat_id=chat, created_at=NOW)
    session.add(s)
    await session.flush()
    return s


def test_discharge_stops_what_the_bot_sends_keeps_the_record_and_says_goodbye(iopbot: Operator) -> None:
    async def setup(session: Any) -> None:
        lee = await _staff(session, "dr-lee", 700)
        p = await _enrolled(session, "P-10", lee, 710)
        for kind, key in (("checkin", "checkin:x:1"), ("session_reminder", "r:1"), ("content_drip", "d:1")):
            await enqueue(session, kind=kind, key=key, due_at=NOW + timedelta(hours=3), participant_id=p.id, now=NOW)
        await _enrolled(session, "P-11", lee, 711)

    iopbot.db(setup)
    code, out, err = iopbot("participant", "discharge", "P-10")
    assert code == 0, err
    assert out.startswith("P-10: discharged. 3 scheduled message(s) cancelled")

    async def look(session: Any) -> tuple[Any, ...]:
        p = await session.scalar(select(Participant).where(Participant.alias == "P-10"))
        rows = (await session.scalars(select(ScheduledAction).where(ScheduledAction.participant_id == p.id)
                                      .order_by(ScheduledAction.id))).all()
        return p.status, p.discharged_at, p.consented_at, [(r.kind, r.status, r.payload.get("notice")) for r in rows]

    status, discharged_at, consented_at, rows = iopbot.db(look)
    assert status == "discharged" and abs(discharged_at - NOW) < timedelta(minutes=1)
    assert consented_at == NOW  # the record is kept
    assert [r for r in rows if r[1] == ActionStatus.PENDING] == [
        (GOODBYE, "pending", None), ("staff_notice", "pending", "discharged")]
    assert {r[0] for r in rows if r[1] == ActionStatus.CANCELLED} == {"checkin", "session_reminder", "content_drip"}

    code, _, err = iopbot("participant", "discharge", "P-10")
    assert code == 2 and "only someone in the program can be discharged" in err
    assert iopbot("participant", "discharge", "P-404")[2].strip() == "error: no participant with alias 'P-404'"


async def test_alumni_get_a_check_in_every_few_days(ctx: AppContext, clock: ManualClock) -> None:
    from bot.services.checkins.setup import install_checkins
    from bot.services.people import discharge

    planner = install_checkins(ctx)
    async with ctx.sessionmaker() as s:
        lee = await _staff(s, "dr-lee", 700)
        p = await _enrolled(s, "P-12", lee, 712)
        await s.commit()
    await planner.plan(clock.now())
    async with ctx.sessionmaker() as s:
        p = await s.get(Participant, p.id)
        await discharge(s, p, clock.now(), alumni=True)
        await planner.replan_participant(s, p, clock.now())
        await s.commit()
    days = []
    for _ in range(16):  # two and a half weeks, a planning pass a day
        clock.advance(days=1)
        await planner.plan(clock.now())
    async with ctx.sessionmaker() as s:
        rows = (await s.scalars(select(ScheduledAction).where(
            ScheduledAction.participant_id == p.id, ScheduledAction.kind == "checkin",
            ScheduledAction.status == ActionStatus.PENDING))).all()
        days = sorted(r.payload["date"] for r in rows)
    assert days == ["2026-03-09", "2026-03-16"]  # a week after discharge (Mon 2 March), and the next week


def test_staff_deactivation_is_refused_while_they_hold_people_and_hands_them_over(iopbot: Operator) -> None:
    async def setup(session: Any) -> None:
        lee = await _staff(session, "dr-lee", 800)
        kim = await _staff(session, "dr-kim", 801)
        await _staff(session, "dr-gone", 802)
        p1 = await _enrolled(session, "P-20", lee, 820)
        await _enrolled(session, "P-21", kim, 821, backup=lee)
        session.add(Escalation(participant_id=p1.id, level=2, status=EscalationStatus.OPEN, source="message",
                               message_received_at=NOW, created_at=NOW))
        old = await _enrolled(session, "P-22", lee, 822)
        old.status = ParticipantStatus.DISCHARGED

    iopbot.db(setup)
    code, _, err = iopbot("staff", "deactivate", "dr-lee")
    assert code == 2
    assert err.strip() == ("error: dr-lee still holds 2 participant(s) (P-20, P-21) and 1 alert(s) without an "
                           "outcome; run again with --reassign-to ALIAS to hand them over")
    assert iopbot("staff", "deactivate", "dr-lee", "--reassign-to", "dr-lee")[0] == 2
    assert iopbot("staff", "deactivate", "dr-gone")[0] == 0  # holds nobody
    code, _, err = iopbot("staff", "deactivate", "dr-lee", "--reassign-to", "dr-gone")
    assert code == 2 and "'dr-gone' is deactivated" in err

    code, out, err = iopbot("staff", "deactivate", "dr-lee", "--reassign-to", "dr-kim")
    assert code == 0, err
    assert "2 participant(s) now with dr-kim: P-20, P-22" in out  # P-22 was discharged: a crisis still pages
    assert "1 alert(s) without an outcome paged to dr-kim" in out

    async def look(session: Any) -> tuple[Any, ...]:
        people = {p.alias: (p.therapist.alias, p.backup.alias if p.backup else None)
                  for p in (await session.scalars(select(Participant))).unique().all()}
        lee = await session.scalar(select(Staff).where(Staff.alias == "dr-lee"))
        pages = (await session.scalars(select(ScheduledAction).where(ScheduledAction.kind == "alert_step"))).all()
        return people, lee.active, lee.deactivated_at, [(r.staff_id, r.status) for r in pages]

    people, active, when, pages = iopbot.db(look)
    # P-21's backup was dr-lee and their clinician is dr-kim: the program's on-call backs them up now.
    assert people == {"P-20": ("dr-kim", None), "P-21": ("dr-kim", None), "P-22": ("dr-kim", None)}
    assert active is False and abs(when - NOW) < timedelta(minutes=1)
    assert pages == [(2, "pending")]  # the open alert pages dr-kim (id 2) now
    code, _, err = iopbot("staff", "deactivate", "dr-lee")
    assert code == 2 and "already deactivated" in err
    code, _, err = iopbot("invite", "participant", "--alias", "P-30", "--therapist", "dr-lee")
    assert code == 2 and "was deactivated" in err
    code, _, err = iopbot("invite", "staff", "--alias", "dr-lee", "--role", "therapist")
    assert code == 2 and "was deactivated" in err


def test_a_deactivated_person_is_no_ones_cover(iopbot: Operator) -> None:
    async def setup(session: Any) -> None:
        lee = await _staff(session, "dr-lee", 900)
        await _enrolled(session, "P-40", lee, 940)

    iopbot.db(setup)
    assert iopbot("doctor")[0] == 0
    link = iopbot.token("invite", "staff", "--alias", "dr-new", "--role", "therapist")
    assert iopbot("staff", "deactivate", "dr-lee", "--reassign-to", "dr-new")[0] == 0
    code, out, _ = iopbot("doctor")
    assert code == 1 and "UNCOVERED P-40 (active): dr-new (clinician): no linked Telegram chat" in out
    assert redeem(iopbot, link, 950)[0] is enrollment.Redeemed.STAFF
    assert iopbot("doctor")[0] == 0

    async def invites(session: Any) -> list[Any]:
        return [(i.role, i.used_at is not None) for i in (await session.scalars(select(Invite))).all()]

    assert iopbot.db(invites) == [("therapist", True)]
