"""Enrollment rules on SQLite and PostgreSQL: single-use, expiring, hashed invite tokens."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.clock import ManualClock
from bot.context import AppContext
from bot.db.models import Invite, Participant, ParticipantStatus
from bot.services import enrollment


async def _invite_pair(ctx: AppContext) -> tuple[str, str]:
    async with ctx.sessionmaker() as s:
        staff = await enrollment.invite_staff(s, ctx.clock.now(), ctx.settings, "dr-lee", "therapist")
        part = await enrollment.invite_participant(s, ctx.clock.now(), ctx.settings, "P-101", "dr-lee",
                                                   timezone="Chicago")
        await s.commit()
    return staff.token, part.token


async def test_tokens_are_stored_hashed_and_work_once(ctx: AppContext) -> None:
    _, token = await _invite_pair(ctx)
    async with ctx.sessionmaker() as s:
        hashes = (await s.scalars(select(Invite.token_hash))).all()
        assert token not in hashes and enrollment.hash_token(token) in hashes
        result, who = await enrollment.redeem_invite(s, ctx.clock.now(), token, 555, 555, "en")
        assert result is enrollment.Redeemed.PARTICIPANT
        assert isinstance(who, Participant) and who.timezone == "America/Chicago"
        assert who.status == ParticipantStatus.CONSENT_PENDING
        await s.commit()
    async with ctx.sessionmaker() as s:
        again, _ = await enrollment.redeem_invite(s, ctx.clock.now(), token, 777, 777, "en")
        assert again is enrollment.Redeemed.INVALID


async def test_expired_and_unknown_tokens_do_nothing(ctx: AppContext, clock: ManualClock) -> None:
    _, token = await _invite_pair(ctx)
    clock.advance(days=ctx.settings.enrollment.invite_ttl_days, seconds=1)
    async with ctx.sessionmaker() as s:
        expired, _ = await enrollment.redeem_invite(s, clock.now(), token, 555, 555, None)
        unknown, _ = await enrollment.redeem_invite(s, clock.now(), "nope", 555, 555, None)
    assert expired is unknown is enrollment.Redeemed.INVALID


async def test_one_telegram_account_cannot_hold_two_roles(ctx: AppContext) -> None:
    staff_token, part_token = await _invite_pair(ctx)
    async with ctx.sessionmaker() as s:
        assert (await enrollment.redeem_invite(s, ctx.clock.now(), staff_token, 9, 9, None))[0] is enrollment.Redeemed.STAFF
        await s.commit()
    async with ctx.sessionmaker() as s:
        result, _ = await enrollment.redeem_invite(s, ctx.clock.now(), part_token, 9, 9, None)
        assert result is enrollment.Redeemed.ALREADY_ENROLLED
        await s.commit()
    async with ctx.sessionmaker() as s:  # the link is still good for the right person
        result, _ = await enrollment.redeem_invite(s, ctx.clock.now(), part_token, 10, 10, None)
        assert result is enrollment.Redeemed.PARTICIPANT


async def test_operator_mistakes_get_clear_messages(ctx: AppContext) -> None:
    async with ctx.sessionmaker() as s:
        with pytest.raises(enrollment.EnrollmentError, match="invite them first"):
            await enrollment.invite_participant(s, ctx.clock.now(), ctx.settings, "P-1", "nobody")
        with pytest.raises(enrollment.EnrollmentError, match="unknown role"):
            await enrollment.invite_staff(s, ctx.clock.now(), ctx.settings, "x", "wizard")
        await enrollment.invite_staff(s, ctx.clock.now(), ctx.settings, "dr-lee", "therapist")
        with pytest.raises(enrollment.EnrollmentError, match="not a time zone"):
            await enrollment.invite_participant(s, ctx.clock.now(), ctx.settings, "P-1", "dr-lee", timezone="Mars")


async def test_declining_keeps_only_the_refusal(ctx: AppContext) -> None:
    _, token = await _invite_pair(ctx)
    async with ctx.sessionmaker() as s:
        _, who = await enrollment.redeem_invite(s, ctx.clock.now(), token, 555, 555, None)
        assert isinstance(who, Participant)
        enrollment.record_refusal(who, ctx.clock.now() + timedelta(minutes=1))
        await s.commit()
    async with ctx.sessionmaker() as s:
        p = await s.scalar(select(Participant).where(Participant.alias == "P-101"))
        assert p is not None
        assert p.status == ParticipantStatus.DECLINED and p.telegram_user_id is None and p.chat_id is None
        assert p.declined_at is not None and p.consented_at is None
