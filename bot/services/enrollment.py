"""Enrollment: invite links, binding a Telegram account, consent, and a participant's settings."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.content.i18n import locale_for
from bot.db.models import (
    ActionStatus,
    Invite,
    Participant,
    ParticipantEvent,
    ParticipantStatus,
    ScheduledAction,
    Staff,
    StaffRole,
)
from bot.db.support_models import BOUND as SUPPORT_BOUND
from bot.db.support_models import SupportPerson
from bot.services.scheduling.rows import enqueue


class EnrollmentError(Exception):
    """An operator's request cannot be done; the message says why and what to do."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedInvite:
    token: str
    expires_at: datetime

    def link(self, bot_username: str) -> str:
        return f"https://t.me/{bot_username}?start={self.token}"


def _new_invite(now: datetime, settings: Settings) -> tuple[str, Invite]:
    token = secrets.token_urlsafe(24)  # 32 URL-safe characters: fits Telegram's 64-char start payload
    invite = Invite(
        token_hash=hash_token(token),
        created_at=now,
        expires_at=now + timedelta(days=settings.enrollment.invite_ttl_days),
    )
    return token, invite


async def staff_by_alias(session: AsyncSession, alias: str) -> Staff | None:
    return await session.scalar(select(Staff).where(Staff.alias == alias))


async def invite_staff(
    session: AsyncSession, now: datetime, settings: Settings, alias: str, role: str, *, on_call: bool = False
) -> IssuedInvite:
    """Create (or re-invite) a staff member and return a single-use link.

    The link grants exactly `role`, whatever happens to the staff record before it is opened, and a
    new invite revokes the person's earlier unused links (a therapist's old link must not become an
    admin's because the alias was re-invited as admin)."""
    if role not in set(StaffRole):
        raise EnrollmentError(f"unknown role {role!r}; use therapist, coach, lead or admin")
    alias = alias.strip()
    if not alias:
        raise EnrollmentError("--alias must not be empty")
    staff = await staff_by_alias(session, alias)
    if staff is None:
        staff = Staff(alias=alias, role=role, created_at=now, on_call=on_call)
        session.add(staff)
        await session.flush()
    elif not staff.active:
        raise EnrollmentError(f"staff {alias!r} was deactivated; pick another alias")
    elif staff.telegram_user_id is not None:
        raise EnrollmentError(f"staff {alias!r} is already enrolled; pick another alias")
    else:
        staff.role = role
        staff.on_call = on_call
    await _revoke_earlier(session, now, Invite.staff_id == staff.id)
    token, invite = _new_invite(now, settings)
    invite.staff_id = staff.id
    invite.role = role
    session.add(invite)
    return IssuedInvite(token, invite.expires_at)


async def _revoke_earlier(session: AsyncSession, now: datetime, owner: Any) -> None:
    """A newer invite for the same person: their earlier unused links stop working."""
    await session.execute(update(Invite).where(owner, Invite.used_at.is_(None), Invite.revoked_at.is_(None))
                          .values(revoked_at=now).execution_options(synchronize_session=False))


async def invite_participant(
    session: AsyncSession,
    now: datetime,
    settings: Settings,
    alias: str,
    therapist_alias: str,
    *,
    backup_alias: str | None = None,
    timezone: str | None = None,
    language: str | None = None,
) -> IssuedInvite:
    """Create a participant assigned to a clinician and return a single-use link (earlier unused
    links of the same alias stop working). `language` fixes the bot's language for them; without
    it, their Telegram's language decides (they can switch on the first screen)."""
    from bot.config import LOCALES
    from bot.services.timeparse import find_timezone

    alias = alias.strip()
    if not alias:
        raise EnrollmentError("--alias must not be empty")
    if language is not None and language not in LOCALES:
        raise EnrollmentError(f"--language {language!r}: use one of {', '.join(LOCALES)}")
    therapist = await staff_by_alias(session, therapist_alias)
    if therapist is None:
        raise EnrollmentError(
            f"no staff member with alias {therapist_alias!r}; invite them first with "
            f"`iopbot invite staff --alias {therapist_alias} --role therapist`"
        )
    if not therapist.active:
        raise EnrollmentError(f"staff {therapist_alias!r} was deactivated; assign an active clinician")
    backup = None
    if backup_alias:
        backup = await staff_by_alias(session, backup_alias)
        if backup is None:
            raise EnrollmentError(f"no staff member with alias {backup_alias!r} for --backup")
        if not backup.active:
            raise EnrollmentError(f"staff {backup_alias!r} was deactivated; name an active --backup")
    tz = settings.program.default_timezone
    if timezone:
        found = find_timezone(timezone)
        if found is None:
            raise EnrollmentError(f"{timezone!r} is not a time zone; use an IANA name like America/Chicago")
        tz = found
    participant = await session.scalar(select(Participant).where(Participant.alias == alias))
    if participant is not None and participant.status not in (ParticipantStatus.INVITED, ParticipantStatus.DECLINED):
        raise EnrollmentError(f"participant {alias!r} is already enrolled; pick another alias")
    if participant is None:
        e = settings.enrollment
        participant = Participant(
            alias=alias, timezone=tz, checkin_time=e.default_checkin_time, quiet_start=e.default_quiet_start,
            quiet_end=e.default_quiet_end, therapist_id=therapist.id, locale=settings.program.default_locale,
            created_at=now, status=ParticipantStatus.INVITED,
        )
        session.add(participant)
        await session.flush()
    else:
        participant.status = ParticipantStatus.INVITED
        participant.therapist_id = therapist.id
        participant.timezone = tz
    participant.backup_id = backup.id if backup else None
    if language is not None:
        participant.locale = language
    await _revoke_earlier(session, now, Invite.participant_id == participant.id)
    token, invite = _new_invite(now, settings)
    invite.participant_id = participant.id
    invite.locale = language
    session.add(invite)
    return IssuedInvite(token, invite.expires_at)


class Redeemed(StrEnum):
    STAFF = "staff"
    PARTICIPANT = "participant"
    INVALID = "invalid"  # unknown, used or expired: the person is told the same thing in each case
    ALREADY_ENROLLED = "already_enrolled"


async def redeem_invite(
    session: AsyncSession, now: datetime, token: str, telegram_user_id: int, chat_id: int, locale_hint: str | None
) -> tuple[Redeemed, Staff | Participant | None]:
    """Bind a Telegram account to the invite behind `token`. Single use; expired, revoked and
    superseded links do nothing; a staff link grants the role it was issued for, no more."""
    invite = await session.scalar(
        select(Invite).where(Invite.token_hash == hash_token(token)).with_for_update()
    )
    if invite is None or invite.used_at is not None or invite.revoked_at is not None or invite.expires_at <= now:
        return Redeemed.INVALID, None
    taken_staff = await session.scalar(select(Staff).where(Staff.telegram_user_id == telegram_user_id))
    taken_participant = await session.scalar(
        select(Participant).where(Participant.telegram_user_id == telegram_user_id)
    )
    taken_support = await session.scalar(  # a family member or friend already supporting someone (#17)
        select(SupportPerson.id).where(SupportPerson.telegram_user_id == telegram_user_id,
                                       SupportPerson.status.in_(SUPPORT_BOUND)).limit(1))
    if taken_staff is not None or taken_participant is not None or taken_support is not None:
        # One Telegram account, one role: a staff member's personal chat must never hold a caseload
        # and a participant record at once. The link stays unused for the right person.
        return Redeemed.ALREADY_ENROLLED, taken_staff or taken_participant
    # Claim the invite with a conditional update so two concurrent /start calls cannot both win.
    claimed = await session.execute(
        update(Invite).where(Invite.id == invite.id, Invite.used_at.is_(None)).values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return Redeemed.INVALID, None
    if invite.staff_id is not None:
        staff = await session.get(Staff, invite.staff_id)
        assert staff is not None
        if not staff.active:
            return Redeemed.INVALID, None
        if invite.role is not None:
            staff.role = invite.role  # what this link was issued for, whatever the record says now
        staff.telegram_user_id, staff.chat_id = telegram_user_id, chat_id
        return Redeemed.STAFF, staff
    participant = await session.get(Participant, invite.participant_id)
    assert participant is not None
    if participant.status not in (ParticipantStatus.INVITED, ParticipantStatus.DECLINED):
        return Redeemed.INVALID, None  # discharged, or enrolled with another link meanwhile
    participant.telegram_user_id, participant.chat_id = telegram_user_id, chat_id
    participant.status = ParticipantStatus.CONSENT_PENDING
    if invite.locale:
        participant.locale = invite.locale  # the program chose it (`--language`)
    else:
        participant.locale = locale_for(locale_hint, participant.locale)
    return Redeemed.PARTICIPANT, participant


def record_consent(participant: Participant, now: datetime, settings: Settings) -> None:
    participant.consent_version = settings.program.consent_version
    participant.consent_scope = settings.program.consent_scope
    participant.consented_at = now
    participant.declined_at = None
    participant.status = ParticipantStatus.ONBOARDING


def record_refusal(participant: Participant, now: datetime) -> None:
    """Declined: keep only the refusal and its time; forget the Telegram account."""
    participant.status = ParticipantStatus.DECLINED
    participant.declined_at = now
    participant.telegram_user_id = None
    participant.chat_id = None


def finish_onboarding(participant: Participant) -> None:
    participant.status = ParticipantStatus.ACTIVE


async def cancel_future_actions(session: AsyncSession, participant_id: int, now: datetime) -> int:
    """Cancel a participant's pending check-ins and reminders (paused, stopped or rescheduled)."""
    result = await session.execute(
        update(ScheduledAction)
        .where(
            ScheduledAction.participant_id == participant_id,
            ScheduledAction.status == ActionStatus.PENDING,
            ScheduledAction.escalation_id.is_(None),  # alerts to staff are never cancelled this way
            ScheduledAction.staff_id.is_(None),
        )
        .values(status=ActionStatus.CANCELLED, last_error="participant paused or stopped")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def tell_clinician(session: AsyncSession, participant: Participant, notice: str, now: datetime) -> None:
    """A `staff_notice` to the assigned clinician, now (ids only; the text comes from ui.toml)."""
    await enqueue(session, kind="staff_notice", key=f"{notice}:{participant.id}:{now:%Y%m%dT%H%M%S}",
                  due_at=now, participant_id=participant.id, staff_id=participant.therapist_id,
                  payload={"notice": notice}, now=now)


async def pause(session: AsyncSession, participant: Participant, now: datetime) -> None:
    """/pause: no check-ins, reminders or daily reads until /resume; the clinician is told."""
    participant.status = ParticipantStatus.PAUSED
    participant.paused_at = now
    await cancel_future_actions(session, participant.id, now)
    session.add(ParticipantEvent(participant_id=participant.id, kind="paused", at=now))
    await tell_clinician(session, participant, "paused", now)


async def resume(session: AsyncSession, participant: Participant, now: datetime) -> None:
    """/resume: everything comes back from the next due time; the clinician is told. An alumnus
    goes back to alumni check-ins, not to the program."""
    participant.status = ParticipantStatus.ALUMNI if participant.discharged_at else ParticipantStatus.ACTIVE
    participant.paused_at = None
    session.add(ParticipantEvent(participant_id=participant.id, kind="resumed", at=now))
    await tell_clinician(session, participant, "resumed", now)


async def opt_out(session: AsyncSession, participant: Participant, now: datetime) -> None:
    participant.status = ParticipantStatus.OPTED_OUT
    participant.opted_out_at = now
    await cancel_future_actions(session, participant.id, now)
    session.add(ParticipantEvent(participant_id=participant.id, kind="opted_out", at=now))
    await tell_clinician(session, participant, "opted_out", now)
