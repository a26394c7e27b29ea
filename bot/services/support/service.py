"""Support persons: inviting, opening the link, both consents, what is shared, revoking, leaving.

The participant decides. They invite someone (a first name or "mom" is enough; stored encrypted,
never logged), choose what that person sees (nothing by default; attendance and/or "checked in this
week"; never answers, messages, scores or alerts) and consent to it; the decision is a row with its
version, time and author, and every change is a new row. Revoking ends everything at once: the
support person's pending messages are cancelled and they are told plainly, without detail.

The support person consents on their own screen, in their language; then they get family-session
reminders, family reads and a weekly check-in of their own, and the weekly line the participant
chose to share. One Telegram account is one role: a staff member or a participant cannot also be
a support person, and a support person supports one participant at a time.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.content.i18n import locale_for
from bot.db.models import ActionStatus, Participant, ParticipantStatus, ScheduledAction, Staff
from bot.db.support_models import (
    BOUND,
    SHAREABLE,
    SupportPerson,
    SupportShare,
    SupportStatus,
)
from bot.services.audit import audit
from bot.services.enrollment import IssuedInvite, hash_token
from bot.services.scheduling.rows import enqueue

# The version of both consent texts (content/<locale>/ui/support.toml): stored with each consent.
CONSENT_VERSION = "2026-12-01"
NAME_MAX = 40
# Who may invite: participants in the program (not someone who left or has not finished enrolling).
MAY_INVITE = (ParticipantStatus.ACTIVE, ParticipantStatus.PAUSED)
# A participant who left the program (/stop, discharged, alumni): their support persons' sharing ends.
LEFT_PROGRAM = (ParticipantStatus.OPTED_OUT, ParticipantStatus.DISCHARGED, ParticipantStatus.ALUMNI)
# Still someone the participant has: shown in /support, counts against the limit.
CURRENT = (SupportStatus.INVITED, SupportStatus.CONSENT_PENDING, SupportStatus.ACTIVE)
OPERATOR = "operator"

NOTICE_KIND = "support_notice"  # a short line to the participant or the support person


class SupportError(Exception):
    """A request that cannot be done as asked; the message says why and what to do."""


def person_key(support_person_id: int, rest: str) -> str:
    """Every scheduled row for a support person starts with this, so revoking can cancel them all."""
    return f"sp:{support_person_id}:{rest}"


_SPACES = re.compile(r"\s+")


def clean_name(text: str) -> str | None:
    """Who the support person is, as the participant typed it ("mom", "Ana"): one line, 1-40
    characters. None when it cannot be a name (empty, too long, a command)."""
    name = _SPACES.sub(" ", text).strip()
    if not name or len(name) > NAME_MAX or name.startswith("/"):
        return None
    return name


def parse_shares(value: str) -> frozenset[str]:
    """`--share attendance,checkins` (or "none", or ""): what the participant shares."""
    items = {part.strip().lower() for part in value.split(",") if part.strip()}
    items.discard("none")
    unknown = sorted(items - set(SHAREABLE))
    if unknown:
        raise SupportError(f"cannot share {unknown[0]!r}: use {', '.join(SHAREABLE)} (comma-separated), or none")
    return frozenset(items)


def shares_text(items: frozenset[str]) -> str:
    """For storage: in a fixed order."""
    return ",".join(s for s in SHAREABLE if s in items)


# --- reading -------------------------------------------------------------------------------------------

async def supports_of(session: AsyncSession, participant_id: int) -> list[SupportPerson]:
    """The participant's current support persons (invited, opening the link, or active), oldest first."""
    return list((await session.scalars(
        select(SupportPerson).where(SupportPerson.participant_id == participant_id,
                                    SupportPerson.status.in_(CURRENT))
        .order_by(SupportPerson.id))).unique().all())


async def current_share(session: AsyncSession, support_person_id: int) -> SupportShare | None:
    return await session.scalar(
        select(SupportShare).where(SupportShare.support_person_id == support_person_id,
                                   SupportShare.ended_at.is_(None))
        .order_by(SupportShare.id.desc()).limit(1))


async def shares_of(session: AsyncSession, support_person_id: int) -> frozenset[str]:
    """What the participant shares with this person now (nothing once revoked)."""
    share = await current_share(session, support_person_id)
    return share.items if share is not None else frozenset()


async def find_by_telegram(session: AsyncSession, telegram_user_id: int) -> SupportPerson | None:
    """The support person writing from this Telegram account: their current record, or (after a
    revocation or leaving) the last one, so that what they write still reaches somebody."""
    return await session.scalar(
        select(SupportPerson).where(SupportPerson.telegram_user_id == telegram_user_id,
                                    SupportPerson.status.in_([*BOUND, SupportStatus.REVOKED, SupportStatus.LEFT]))
        .order_by(SupportPerson.id.desc()).limit(1))


async def by_alias(session: AsyncSession, alias: str) -> SupportPerson | None:
    return await session.scalar(select(SupportPerson).where(func.lower(SupportPerson.alias) == alias.lower()))


# --- inviting ------------------------------------------------------------------------------------------

async def _next_alias(session: AsyncSession, participant: Participant) -> str:
    count = await session.scalar(select(func.count()).select_from(SupportPerson)
                                 .where(SupportPerson.participant_id == participant.id)) or 0
    return f"{participant.alias[:70]}-S{count + 1}"


def _record_share(session: AsyncSession, support_person: SupportPerson, items: frozenset[str], now: datetime,
                  by: str) -> SupportShare:
    share = SupportShare(support_person_id=support_person.id, participant_id=support_person.participant_id,
                         shares=shares_text(items), consent_version=CONSENT_VERSION, decided_at=now, decided_by=by)
    session.add(share)
    return share


async def invite(session: AsyncSession, now: datetime, settings: Settings, participant: Participant,
                 name: str | None, shares: frozenset[str], *, by: str) -> tuple[SupportPerson, IssuedInvite]:
    """A new support person with a single-use link, and the participant's consent about what they
    see (`by`: "participant:<id>", or OPERATOR when staff set it up with the participant)."""
    if participant.status not in MAY_INVITE:
        raise SupportError(f"participant {participant.alias!r} is {participant.status}; only someone in the "
                           "program can invite a support person")
    cleaned = clean_name(name) if name is not None else None
    if name is not None and cleaned is None:
        raise SupportError(f"the support person's name must be one line of 1-{NAME_MAX} characters, "
                           "like \"mom\" or a first name")
    most = settings.support.max_per_participant
    if len(await supports_of(session, participant.id)) >= most:
        raise SupportError(f"participant {participant.alias!r} already has {most} support persons "
                           "([support] max_per_participant); "
                           "revoke one first")
    token = secrets.token_urlsafe(24)  # 32 characters, the shape of every invite (the safety gate skips it)
    expires = now + timedelta(days=settings.support.invite_days)
    person = SupportPerson(
        participant_id=participant.id, alias=await _next_alias(session, participant), name=cleaned,
        status=SupportStatus.INVITED, token_hash=hash_token(token), invite_expires_at=expires, invited_by=by,
        locale=participant.locale, timezone=participant.timezone, created_at=now)
    session.add(person)
    await session.flush()
    _record_share(session, person, shares, now, by)
    audit(session, now, by, f"support_invited:{person.id}:share:{shares_text(shares) or 'none'}",
          participant_id=participant.id)
    return person, IssuedInvite(token, expires)


class Opened(StrEnum):
    CONSENT = "consent"  # a valid link: show the support person's consent screen
    INVALID = "invalid"  # unknown, used, expired or revoked: nothing happens
    ALREADY = "already"  # this Telegram account has a role already (staff, participant, supporter)


@dataclass(frozen=True)
class Redemption:
    result: Opened
    person: SupportPerson | None = None


async def redeem(session: AsyncSession, now: datetime, settings: Settings, token: str, telegram_user_id: int,
                 chat_id: int, locale_hint: str | None) -> Redemption:
    """Bind a Telegram account to the support invite behind `token`. Single use."""
    person = await session.scalar(select(SupportPerson).where(SupportPerson.token_hash == hash_token(token))
                                  .with_for_update(of=SupportPerson))
    if (person is None or person.status != SupportStatus.INVITED or person.invite_expires_at is None
            or person.invite_expires_at <= now or person.participant.status not in MAY_INVITE):
        return Redemption(Opened.INVALID)
    taken = (await session.scalar(select(Staff.id).where(Staff.telegram_user_id == telegram_user_id))
             or await session.scalar(select(Participant.id).where(Participant.telegram_user_id == telegram_user_id))
             or await session.scalar(select(SupportPerson.id).where(SupportPerson.telegram_user_id == telegram_user_id,
                                                                   SupportPerson.status.in_(BOUND))))
    if taken:
        return Redemption(Opened.ALREADY)
    claimed = await session.execute(
        update(SupportPerson).where(SupportPerson.id == person.id, SupportPerson.status == SupportStatus.INVITED)
        .values(status=SupportStatus.CONSENT_PENDING, token_hash=None, telegram_user_id=telegram_user_id,
                chat_id=chat_id, locale=locale_for(locale_hint, settings.program.default_locale))
        .execution_options(synchronize_session="fetch"))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return Redemption(Opened.INVALID)
    await session.refresh(person)
    audit(session, now, f"support:{person.id}", "support_link_opened", participant_id=person.participant_id)
    return Redemption(Opened.CONSENT, person)


async def agree(session: AsyncSession, now: datetime, person: SupportPerson) -> None:
    """The support person's own consent: active from now; the participant is told they joined."""
    person.status = SupportStatus.ACTIVE
    person.consent_version = CONSENT_VERSION
    person.consented_at = now
    audit(session, now, f"support:{person.id}", f"support_consent:{CONSENT_VERSION}",
          participant_id=person.participant_id)
    await notify_participant(session, person, "joined", now)


async def decline(session: AsyncSession, now: datetime, person: SupportPerson) -> None:
    """Said no: nothing is kept beyond the refusal; the Telegram account is forgotten."""
    person.status = SupportStatus.DECLINED
    person.declined_at = now
    person.telegram_user_id = None
    person.chat_id = None
    audit(session, now, f"support:{person.id}", "support_declined", participant_id=person.participant_id)
    await notify_participant(session, person, "declined", now)


# --- changing and ending -------------------------------------------------------------------------------

async def change_shares(session: AsyncSession, now: datetime, person: SupportPerson, items: frozenset[str], *,
                        by: str) -> None:
    """A new decision about what this person sees, in force from now (the old one is kept, ended)."""
    if person.status not in CURRENT:
        raise SupportError(f"{person.alias} is {person.status}; nothing is shared with them")
    current = await current_share(session, person.id)
    if current is not None and current.items == items:
        return
    if current is not None:
        current.ended_at = now
    _record_share(session, person, items, now, by)
    audit(session, now, by, f"support_share:{person.id}:{shares_text(items) or 'none'}",
          participant_id=person.participant_id)


async def _cancel_pending(session: AsyncSession, person: SupportPerson, why: str) -> int:
    result = await session.execute(
        update(ScheduledAction)
        .where(ScheduledAction.key.like(person_key(person.id, "%")),
               ScheduledAction.status == ActionStatus.PENDING, ScheduledAction.escalation_id.is_(None))
        .values(status=ActionStatus.CANCELLED, last_error=why)
        .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def _end(session: AsyncSession, now: datetime, person: SupportPerson, why: str) -> None:
    current = await current_share(session, person.id)
    if current is not None:
        current.ended_at = now
    person.token_hash = None  # an unopened link stops working
    await _cancel_pending(session, person, why)


async def revoke(session: AsyncSession, now: datetime, person: SupportPerson, *, by: str,
                 why: str = "revoked by the participant") -> bool:
    """The participant (or staff) stops it: nothing is shared or sent from now, the link stops
    working, and a support person who had joined is told plainly, without detail. False if it was
    already over."""
    if person.status not in CURRENT:
        return False
    was_active = person.status == SupportStatus.ACTIVE
    person.status = SupportStatus.REVOKED
    person.revoked_at = now
    await _end(session, now, person, why)
    audit(session, now, by, f"support_revoked:{person.id}", participant_id=person.participant_id)
    if was_active and person.chat_id is not None:
        await notify_support_person(session, person, "revoked", now)
    return True


async def end_with_participant(session: AsyncSession, now: datetime, participant: Participant, *, by: str) -> int:
    """The participant left the program (discharged, alumni, or /stop): each of their support
    persons' sharing ends as if revoked, and whoever had joined is told plainly, without detail
    (nothing says why). An alert a support person's words opened goes on to its outcome. Returns
    how many were ended."""
    # Locked: every worker's planner may look at once; the second finds them ended and does nothing.
    persons = (await session.scalars(
        select(SupportPerson).where(SupportPerson.participant_id == participant.id, SupportPerson.status.in_(CURRENT))
        .order_by(SupportPerson.id).with_for_update(of=SupportPerson))).unique().all()
    ended = 0
    for person in persons:
        ended += await revoke(session, now, person, by=by, why=f"participant {participant.status}")
    return ended


async def end_where_participant_left(session: AsyncSession, now: datetime) -> int:
    """Every support person still current whose participant has left the program (a /stop, or a
    discharge that did not end them): ended as `end_with_participant` does. Run by the planner."""
    ids = (await session.scalars(
        select(SupportPerson.participant_id).join(Participant, SupportPerson.participant_id == Participant.id)
        .where(Participant.status.in_(LEFT_PROGRAM), SupportPerson.status.in_(CURRENT)).distinct())).all()
    ended = 0
    for participant_id in ids:
        participant = await session.get(Participant, participant_id)
        if participant is None:
            continue
        by = f"participant:{participant.id}" if participant.status == ParticipantStatus.OPTED_OUT else OPERATOR
        ended += await end_with_participant(session, now, participant, by=by)
    return ended


async def leave(session: AsyncSession, now: datetime, person: SupportPerson) -> None:
    """The support person stops it themselves (/stop): nothing more is sent; the participant is told."""
    if person.status != SupportStatus.ACTIVE:
        return
    person.status = SupportStatus.LEFT
    person.left_at = now
    await _end(session, now, person, "the support person stopped")
    audit(session, now, f"support:{person.id}", "support_left", participant_id=person.participant_id)
    await notify_participant(session, person, "left", now)


# --- short notices, sent by the outbox -----------------------------------------------------------------

async def notify_participant(session: AsyncSession, person: SupportPerson, notice: str, now: datetime) -> None:
    """A line to the participant about one of their support persons (joined, declined, left)."""
    await enqueue(session, kind=NOTICE_KIND, key=f"spn:{person.id}:{notice}:{now:%Y%m%dT%H%M%S}", due_at=now,
                  participant_id=person.participant_id,
                  payload={"to": "participant", "notice": notice, "support_person_id": person.id}, now=now)


async def notify_support_person(session: AsyncSession, person: SupportPerson, notice: str, now: datetime) -> None:
    """A line to the support person (revoked). Not under `person_key`: revoking must not cancel it."""
    await enqueue(session, kind=NOTICE_KIND, key=f"spn:{person.id}:{notice}:{now:%Y%m%dT%H%M%S}", due_at=now,
                  payload={"to": "support", "notice": notice, "support_person_id": person.id}, now=now)
