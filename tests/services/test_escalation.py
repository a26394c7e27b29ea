"""Escalation rules in-process, on SQLite and PostgreSQL: who is paged, raising, closing, figures."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.clock import ManualClock
from bot.db.models import ActionStatus, EscalationStatus, Participant, ScheduledAction, Staff
from bot.safety.levels import Assessment, Category, Level
from bot.services import enrollment
from bot.services import escalation as esc
from bot.services.context import AppContext

URGENT = Assessment(Level.URGENT, (Category.SUICIDE,), ("rule:test",))
IMMINENT = Assessment(Level.IMMINENT, (Category.SUICIDE,), ("rule:plan",))
CONCERN = Assessment(Level.CONCERN, (Category.SUICIDE,), ("rule:hopeless",))


async def _program(ctx: AppContext) -> int:
    now = ctx.clock.now()
    async with ctx.sessionmaker() as s:
        for alias, role, on_call in (("dr-a", "therapist", False), ("dr-oncall", "therapist", True),
                                     ("lead", "lead", False)):
            await enrollment.invite_staff(s, now, ctx.settings, alias, role, on_call=on_call)
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


async def test_chain_is_clinician_then_on_call_then_lead(ctx: AppContext) -> None:
    pid = await _program(ctx)
    async with ctx.sessionmaker() as s:
        p = await s.get(Participant, pid)
        assert p is not None
        chain = await esc.paging_chain(s, p)
        aliases = [(await s.get(Staff, i)).alias for i in chain]  # type: ignore[union-attr]
    assert aliases == ["dr-a", "dr-oncall", "lead"]


async def test_concern_pages_nobody_and_urgent_opens_one_escalation(ctx: AppContext, clock: ManualClock) -> None:
    pid = await _program(ctx)
    async with ctx.sessionmaker() as s:
        p = await s.get(Participant, pid)
        assert p is not None
        record = await esc.record_message(s, ctx, p, text="hopeless", telegram_message_id=1, assessment=CONCERN,
                                          received_at=clock.now(), crisis_reply_sent_at=None)
        assert record.escalation is None
        first = await esc.record_message(s, ctx, p, text="x", telegram_message_id=2, assessment=URGENT,
                                         received_at=clock.now(), crisis_reply_sent_at=clock.now())
        again = await esc.record_message(s, ctx, p, text="im fine jk", telegram_message_id=3,
                                         assessment=Assessment(), received_at=clock.now(),
                                         crisis_reply_sent_at=None)
        await s.commit()
    assert first.new_escalation and not again.new_escalation
    assert first.escalation is not None and again.escalation is not None
    assert again.escalation.id == first.escalation.id  # "I'm fine" attaches, never closes
    assert again.escalation.status == EscalationStatus.OPEN and again.escalation.follow_up_count == 1
    assert [(alias, status) for _, alias, status in await _pages(ctx)] == [("dr-a", ActionStatus.PENDING)]


async def test_a_worse_follow_up_raises_and_pages_again_sooner(ctx: AppContext, clock: ManualClock) -> None:
    pid = await _program(ctx)
    async with ctx.sessionmaker() as s:
        p = await s.get(Participant, pid)
        assert p is not None
        first = await esc.record_message(s, ctx, p, text="x", telegram_message_id=2, assessment=URGENT,
                                         received_at=clock.now(), crisis_reply_sent_at=clock.now())
        # The first page went out; the next one is due in 30 minutes.
        step1 = (await s.scalars(select(ScheduledAction))).one()
        step1.status = ActionStatus.SENT
        await esc._schedule_step(s, ctx, first.escalation, p, step=1,  # type: ignore[arg-type]
                                 due=clock.now() + timedelta(minutes=30))
        clock.advance(minutes=2)
        await esc.record_message(s, ctx, p, text="y", telegram_message_id=3, assessment=IMMINENT,
                                 received_at=clock.now(), crisis_reply_sent_at=clock.now())
        await s.commit()
        step_next = await s.scalar(select(ScheduledAction).where(ScheduledAction.key.like("%:step:1")))
    assert first.escalation is not None
    assert first.escalation.level == Level.IMMINENT
    keys = [key for key, _, _ in await _pages(ctx)]
    assert any(key.endswith(":step:101") for key in keys)  # an extra page to the clinician now
    assert step_next is not None and step_next.due_at <= clock.now() + timedelta(minutes=5)


async def test_acknowledging_cancels_pending_pages_and_response_times_are_reported(
    ctx: AppContext, clock: ManualClock
) -> None:
    pid = await _program(ctx)
    received = clock.now()
    async with ctx.sessionmaker() as s:
        p = await s.get(Participant, pid)
        assert p is not None
        record = await esc.record_message(s, ctx, p, text="x", telegram_message_id=2, assessment=URGENT,
                                          received_at=received, crisis_reply_sent_at=received)
        assert record.escalation is not None
        record.escalation.first_alert_sent_at = received + timedelta(seconds=2)
        clock.advance(minutes=4)
        staff = await s.scalar(select(Staff).where(Staff.alias == "dr-a"))
        assert staff is not None
        await esc.decide(s, ctx, record.escalation, staff, EscalationStatus.ACKNOWLEDGED)
        await s.commit()
    assert [status for _, _, status in await _pages(ctx)] == [ActionStatus.CANCELLED]
    async with ctx.sessionmaker() as s:
        times = await esc.response_times(s)
    assert times.count == 1 and times.acknowledged == 1
    assert times.to_alert_median == 2.0 and times.to_ack_median == 240.0
