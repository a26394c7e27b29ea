"""Escalation rules in-process, on SQLite and PostgreSQL: who is paged (and who is skipped, at once,
when they cannot be reached), raising, coalesced follow-ups, acknowledging and resolving with an
outcome, the figures, and the migration of alerts closed under the old rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import select

from bot.clock import ManualClock
from bot.context import AppContext
from bot.db.models import (
    ActionStatus,
    AlertOutcome,
    Escalation,
    EscalationEvent,
    EscalationStatus,
    Participant,
    ScheduledAction,
    Staff,
)
from bot.safety.levels import Assessment, Category, Level
from bot.services import enrollment
from bot.services.escalation.handling import acknowledge, add_note, resolve
from bot.services.escalation.paging import page_step, paging_chain
from bot.services.escalation.record import FlagRecord, open_escalation, record_message
from bot.services.escalation.report import format_report, response_times
from tests.support.databases import create_postgres_database, sqlite_url

URGENT = Assessment(Level.URGENT, (Category.SUICIDE,), ("rule:test",))
IMMINENT = Assessment(Level.IMMINENT, (Category.SUICIDE,), ("rule:plan",))
CONCERN = Assessment(Level.CONCERN, (Category.SUICIDE,), ("rule:hopeless",))
NOTHING = Assessment()


async def _program(ctx: AppContext, *, linked: tuple[str, ...] = ("dr-a", "dr-oncall", "lead"),
                   admin: bool = False) -> int:
    """dr-a (assigned), dr-oncall (the program's on-call), a lead (and an admin); those in `linked`
    have opened Telegram (a chat), the others were invited and never did."""
    now = ctx.clock.now()
    async with ctx.sessionmaker() as s:
        people = [("dr-a", "therapist", False), ("dr-oncall", "therapist", True), ("lead", "lead", False)]
        if admin:
            people.append(("admin", "admin", False))
        for n, (alias, role, on_call) in enumerate(people):
            await enrollment.invite_staff(s, now, ctx.settings, alias, role, on_call=on_call)
            if alias in linked:
                staff = await enrollment.staff_by_alias(s, alias)
                assert staff is not None
                staff.chat_id = staff.telegram_user_id = 900 + n
        issued = await enrollment.invite_participant(s, now, ctx.settings, "P-1", "dr-a")
        _, p = await enrollment.redeem_invite(s, now, issued.token, 77, 77, None)
        await s.commit()
        assert isinstance(p, Participant)
        return p.id


async def _pages(ctx: AppContext) -> list[tuple[str, str, str]]:
    async with ctx.sessionmaker() as s:
        rows = (await s.execute(
            select(ScheduledAction.key, Staff.alias, ScheduledAction.status)
            .join(Staff, Staff.id == ScheduledAction.staff_id)
            .where(ScheduledAction.kind == "alert_step").order_by(ScheduledAction.id))).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def _flag(ctx: AppContext, pid: int, assessment: Assessment = URGENT, message_id: int = 2) -> FlagRecord:
    async with ctx.sessionmaker() as s:
        p = await s.get(Participant, pid)
        assert p is not None
        record = await record_message(s, ctx, p, text="x", telegram_message_id=message_id, assessment=assessment,
                                      received_at=ctx.clock.now(), crisis_reply_sent_at=ctx.clock.now())
        await s.commit()
        return record


async def _events(ctx: AppContext) -> list[tuple[str, str]]:
    async with ctx.sessionmaker() as s:
        return [(k, d) for k, d in (await s.execute(
            select(EscalationEvent.kind, EscalationEvent.detail).order_by(EscalationEvent.id))).all()]


async def test_chain_is_clinician_then_on_call_then_lead(ctx: AppContext) -> None:
    pid = await _program(ctx, admin=True)
    async with ctx.sessionmaker() as s:
        p = await s.get(Participant, pid)
        assert p is not None
        chain = await paging_chain(s, p)
        aliases = [(await s.get(Staff, i)).alias for i in chain]  # type: ignore[union-attr]
    assert aliases == ["dr-a", "dr-oncall", "lead"]  # admins come after the last round, with every lead


async def test_concern_pages_nobody_and_urgent_opens_one_escalation(ctx: AppContext, clock: ManualClock) -> None:
    pid = await _program(ctx)
    async with ctx.sessionmaker() as s:
        p = await s.get(Participant, pid)
        assert p is not None
        record = await record_message(s, ctx, p, text="hopeless", telegram_message_id=1, assessment=CONCERN,
                                      received_at=clock.now(), crisis_reply_sent_at=None)
        assert record.escalation is None
        first = await record_message(s, ctx, p, text="x", telegram_message_id=2, assessment=URGENT,
                                     received_at=clock.now(), crisis_reply_sent_at=clock.now())
        again = await record_message(s, ctx, p, text="im fine jk", telegram_message_id=3,
                                     assessment=Assessment(), received_at=clock.now(),
                                     crisis_reply_sent_at=None)
        await s.commit()
    assert first.new_escalation and not again.new_escalation
    assert first.escalation is not None and again.escalation is not None
    assert again.escalation.id == first.escalation.id  # "I'm fine" attaches, never closes
    assert again.escalation.status == EscalationStatus.OPEN and again.escalation.follow_up_count == 1
    assert [(alias, status) for _, alias, status in await _pages(ctx)] == [("dr-a", ActionStatus.PENDING)]


async def test_a_clinician_without_a_chat_is_skipped_at_once_in_the_same_commit(ctx: AppContext) -> None:
    pid = await _program(ctx, linked=("dr-oncall", "lead"))  # dr-a was invited, never opened Telegram
    record = await _flag(ctx, pid)
    assert [(key.rsplit(":", 2)[-2:], alias, status) for key, alias, status in await _pages(ctx)] == [
        (["step", "1"], "dr-oncall", ActionStatus.PENDING)]
    async with ctx.sessionmaker() as s:
        page = await s.scalar(select(ScheduledAction).where(ScheduledAction.kind == "alert_step"))
        assert page is not None and page.due_at == ctx.clock.now()  # now, not after 30 minutes
    assert ("page_skipped", "step:0:no_chat") in await _events(ctx)
    assert record.escalation is not None and record.escalation.nobody_reached_at is None


async def test_nobody_in_the_chain_reachable_pages_every_lead_and_admin(ctx: AppContext, clock: ManualClock) -> None:
    pid = await _program(ctx, linked=("admin",), admin=True)
    record = await _flag(ctx, pid)
    assert record.escalation is not None and record.escalation.nobody_reached_at == clock.now()
    pages = await _pages(ctx)
    assert [(alias, status) for key, alias, status in pages if ":coverage:" in key] == [
        ("admin", ActionStatus.PENDING)]
    events = [kind for kind, _ in await _events(ctx)]
    assert events.count("page_skipped") == 4 and "coverage_failure" in events  # 3 in the chain, the lead again
    async with ctx.sessionmaker() as s:
        # The chain goes on at the usual pace (someone may open Telegram meanwhile), not at once.
        later = await s.scalar(select(ScheduledAction).where(ScheduledAction.key.like("%:step:%")))
        assert later is not None and later.due_at == clock.now() + timedelta(minutes=30)
        lines = (await s.scalars(select(ScheduledAction.key).where(ScheduledAction.kind == "crisis_line"))).all()
    assert lines == []  # the admin's page may still go out: the participant is not told "nobody" yet


async def test_nobody_reachable_at_all_tells_the_participant_plainly(ctx: AppContext) -> None:
    pid = await _program(ctx, linked=(), admin=True)
    record = await _flag(ctx, pid)
    assert record.escalation is not None and record.escalation.nobody_reached_at is not None
    async with ctx.sessionmaker() as s:
        lines = (await s.scalars(select(ScheduledAction.payload).where(ScheduledAction.kind == "crisis_line"))).all()
    assert lines == [{"line": "not_reached"}]


async def test_a_worse_follow_up_raises_and_pages_again_sooner(ctx: AppContext, clock: ManualClock) -> None:
    pid = await _program(ctx)
    async with ctx.sessionmaker() as s:
        p = await s.get(Participant, pid)
        assert p is not None
        first = await record_message(s, ctx, p, text="x", telegram_message_id=2, assessment=URGENT,
                                     received_at=clock.now(), crisis_reply_sent_at=clock.now())
        # The first page went out; the next one is due in 30 minutes.
        step1 = (await s.scalars(select(ScheduledAction))).one()
        step1.status = ActionStatus.SENT
        await page_step(s, ctx, first.escalation, p, step=1,  # type: ignore[arg-type]
                        due=clock.now() + timedelta(minutes=30))
        clock.advance(minutes=2)
        await record_message(s, ctx, p, text="y", telegram_message_id=3, assessment=IMMINENT,
                             received_at=clock.now(), crisis_reply_sent_at=clock.now())
        await s.commit()
        step_next = await s.scalar(select(ScheduledAction).where(ScheduledAction.key.like("%:step:1")))
    assert first.escalation is not None
    assert first.escalation.level == Level.IMMINENT
    pages = await _pages(ctx)
    assert any(key.endswith(f":raised:{int(Level.IMMINENT)}") and alias == "dr-a" for key, alias, _ in pages)
    assert step_next is not None and step_next.due_at <= clock.now() + timedelta(minutes=5)


async def test_follow_ups_are_one_notice_per_interval(ctx: AppContext, clock: ManualClock) -> None:
    pid = await _program(ctx)
    await _flag(ctx, pid)
    for n in range(50):
        clock.advance(seconds=0.1)
        await _flag(ctx, pid, NOTHING, message_id=10 + n)
    async with ctx.sessionmaker() as s:
        notices = (await s.scalars(select(ScheduledAction).where(ScheduledAction.kind == "alert_follow_up"))).all()
        escalation = await s.scalar(select(Escalation))
    assert len(notices) == 1 and escalation is not None and escalation.follow_up_count == 50
    # Once that notice was sent, the next one waits for the interval (10 minutes by default).
    async with ctx.sessionmaker() as s:
        notice = await s.get(ScheduledAction, notices[0].id)
        escalation = await s.get(Escalation, escalation.id)
        assert notice is not None and escalation is not None
        notice.status = ActionStatus.SENT
        escalation.follow_up_notified, escalation.follow_up_notice_at = 50, clock.now()
        await s.commit()
    for n in range(3):
        await _flag(ctx, pid, NOTHING, message_id=100 + n)
    async with ctx.sessionmaker() as s:
        waiting = (await s.scalars(select(ScheduledAction).where(ScheduledAction.kind == "alert_follow_up",
                                                                 ScheduledAction.status == ActionStatus.PENDING))).all()
    assert len(waiting) == 1 and waiting[0].due_at == clock.now() + timedelta(minutes=10)


async def test_acknowledge_then_resolve_with_an_outcome_and_the_figures(ctx: AppContext, clock: ManualClock) -> None:
    pid = await _program(ctx)
    received = clock.now()
    record = await _flag(ctx, pid)
    assert record.escalation is not None
    async with ctx.sessionmaker() as s:
        escalation = await s.get(Escalation, record.escalation.id)
        staff = await s.scalar(select(Staff).where(Staff.alias == "dr-a"))
        assert escalation is not None and staff is not None
        escalation.first_alert_sent_at = received + timedelta(seconds=2)
        clock.advance(minutes=4)
        assert await acknowledge(s, ctx, escalation, staff)
        assert not await acknowledge(s, ctx, escalation, staff)  # once
        await s.commit()
        reminder = await s.scalar(select(ScheduledAction).where(ScheduledAction.kind == "alert_plan"))
        assert reminder is not None and reminder.due_at == clock.now() + timedelta(minutes=60)
        assert escalation.status == EscalationStatus.ACKNOWLEDGED
        assert await open_escalation(s, pid) is not None  # acknowledged is not the end of it
        clock.advance(minutes=20)
        assert await resolve(s, ctx, escalation, staff, AlertOutcome.SAFETY_PLAN)
        add_note(s, ctx, escalation, staff, "Called; reviewed the plan together.")
        await s.commit()
        await s.refresh(reminder)
        assert reminder.status == ActionStatus.CANCELLED
        assert await open_escalation(s, pid) is None
    assert [status for _, _, status in await _pages(ctx)] == [ActionStatus.CANCELLED]
    assert [k for k, _ in await _events(ctx)][-3:] == ["acknowledged", "resolved", "note"]
    async with ctx.sessionmaker() as s:
        times = await response_times(s)
        stored = await s.get(Escalation, record.escalation.id)
    assert stored is not None and stored.outcome_note == "Called; reviewed the plan together."
    assert times.count == 1 and times.acknowledged == 1 and times.resolved == 1
    assert times.to_alert_median == 2.0 and times.to_ack_median == 240.0 and times.to_resolution_median == 1440.0
    assert times.outcomes == {"safety_plan_reviewed": 1}
    report = format_report(times, "all time")
    assert "outcome recorded:       median 24.0 min" in report and "safety_plan_reviewed 1" in report
    assert "coverage failures (nobody in the paging chain could be reached): 0" in report


async def test_migration_closes_old_alerts_with_the_outcome_known_then(db_kind: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.db.engine import make_engine, upgrade_async
    from tests.support.databases import _in_thread

    url = create_postgres_database(migrated=False) if db_kind == "postgres" else sqlite_url(tmp_path)
    from bot.db.engine import upgrade

    _in_thread(upgrade, url, "0004")
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(
                "INSERT INTO staff (id, alias, role, locale, active, on_call, created_at) "
                "VALUES (1, 'dr-a', 'therapist', 'en', :t, :f, :at)"), {"t": True, "f": False, "at": at})
            await conn.execute(sa.text(
                "INSERT INTO participants (id, alias, status, locale, timezone, checkin_time, quiet_start, "
                "quiet_end, therapist_id, created_at) VALUES (1, 'P-1', 'active', 'en', 'America/New_York', "
                "'09:00', '22:00', '07:00', 1, :at)"), {"at": at})
            for n, status in enumerate(("open", "acknowledged", "contacted", "false_alarm"), start=1):
                await conn.execute(sa.text(
                    "INSERT INTO escalations (id, participant_id, level, categories, reasons, status, source, "
                    "message_received_at, acknowledged_at, acknowledged_by_id, follow_up_count, created_at) "
                    "VALUES (:id, 1, 2, '', '', :status, 'message', :at, :ack, :by, 0, :at)"),
                    {"id": n, "status": status, "at": at, "ack": None if status == "open" else at,
                     "by": None if status == "open" else 1})
        await upgrade_async(url)
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text(
                "SELECT status, outcome, resolved_by_id FROM escalations ORDER BY id"))).all()
    finally:
        await engine.dispose()
    assert [tuple(r) for r in rows] == [("open", None, None), ("resolved", "not_recorded", 1),
                                        ("resolved", "contacted", 1), ("resolved", "false_alarm", 1)]
