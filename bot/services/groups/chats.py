"""Which Telegram groups are linked to which cohort, who leads a cohort, and the memory of linked
groups that the safety gate reads before any database work."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.calendar_models import GroupMembership, ParticipantGroup, ProgramSession
from bot.db.group_models import GroupChat
from bot.db.models import Participant, ParticipantStatus, Staff, StaffRole
from bot.services.audit import audit

# Participants who may be in their cohort's group chat: in the program now. A paused participant
# stays (a break from messages is not leaving the group); discharged, stopped or alumni leave it.
IN_GROUP = frozenset({ParticipantStatus.ACTIVE, ParticipantStatus.PAUSED})


class LinkedGroups:
    """The Telegram chat ids of the linked groups, in memory, for the safety gate (which touches no
    database). Refreshed from the database every `max_age` seconds by a planner, and at once on this
    worker when a group is linked; a group linked on another worker is seen within `max_age` (until
    then the recorder asks the database, so no message of a linked group goes unassessed)."""

    def __init__(self, max_age: float = 30.0) -> None:
        self.ids: frozenset[int] = frozenset()
        self.max_age = max_age
        self._loaded_at = -float("inf")

    def __contains__(self, chat_id: object) -> bool:
        return chat_id in self.ids

    def add(self, chat_id: int) -> None:
        self.ids = self.ids | {chat_id}

    def discard(self, chat_id: int) -> None:
        self.ids = self.ids - {chat_id}

    async def refresh(self, sessionmaker: async_sessionmaker[AsyncSession], *, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded_at < self.max_age:
            return
        async with sessionmaker() as session:
            rows = await session.scalars(select(GroupChat.telegram_chat_id).where(GroupChat.cohort_id.is_not(None)))
            self.ids = frozenset(rows.all())
        self._loaded_at = time.monotonic()


async def group_chat(session: AsyncSession, telegram_chat_id: int) -> GroupChat | None:
    return await session.scalar(select(GroupChat).where(GroupChat.telegram_chat_id == telegram_chat_id))


async def seen_group(session: AsyncSession, telegram_chat_id: int, now: datetime, locale: str) -> GroupChat:
    """The group's row, created the first time the bot hears of the group (not linked yet)."""
    chat = await group_chat(session, telegram_chat_id)
    if chat is None:
        chat = GroupChat(telegram_chat_id=telegram_chat_id, locale=locale, bot_status="member", prompts_posted=0,
                         created_at=now)
        session.add(chat)
        await session.flush()
    return chat


async def chats_of_cohorts(session: AsyncSession, cohort_ids: Iterable[int]) -> list[GroupChat]:
    ids = list(set(cohort_ids))
    if not ids:
        return []
    return list((await session.scalars(select(GroupChat).where(GroupChat.cohort_id.in_(ids))
                                       .order_by(GroupChat.id))).unique().all())


async def cohorts_of(session: AsyncSession, participant_id: int) -> list[int]:
    return list((await session.scalars(select(GroupMembership.group_id)
                                       .where(GroupMembership.participant_id == participant_id))).all())


async def led_cohort_ids(session: AsyncSession, staff: Staff) -> set[int]:
    """The cohorts whose sessions this person leads (every cohort for a lead or an admin)."""
    if staff.role in (StaffRole.LEAD, StaffRole.ADMIN):
        return set((await session.scalars(select(ParticipantGroup.id))).all())
    found = (await session.scalars(
        select(ProgramSession.group_id).where(ProgramSession.facilitator_id == staff.id,
                                              ProgramSession.group_id.is_not(None),
                                              ProgramSession.cancelled_at.is_(None)))).all()
    return {cohort for cohort in found if cohort is not None}


async def leads_cohort(session: AsyncSession, staff: Staff, cohort_id: int) -> bool:
    return staff.active and cohort_id in await led_cohort_ids(session, staff)


async def cohort_names(session: AsyncSession, cohort_ids: Iterable[int]) -> list[str]:
    ids = list(cohort_ids)
    if not ids:
        return []
    return list((await session.scalars(select(ParticipantGroup.name).where(ParticipantGroup.id.in_(ids))
                                       .order_by(ParticipantGroup.name))).all())


async def facilitators(session: AsyncSession, cohort_id: int) -> list[Staff]:
    """Who hears about a flagged message in the cohort's chat: those who lead its sessions, else
    the program's leads (someone always does)."""
    staff = list((await session.scalars(
        select(Staff).join(ProgramSession, ProgramSession.facilitator_id == Staff.id)
        .where(ProgramSession.group_id == cohort_id, ProgramSession.cancelled_at.is_(None), Staff.active.is_(True))
        .distinct().order_by(Staff.id))).unique().all())
    if staff:
        return staff
    return list((await session.scalars(select(Staff).where(
        Staff.role.in_([StaffRole.LEAD, StaffRole.ADMIN]), Staff.active.is_(True)).order_by(Staff.id))).all())


@dataclass(frozen=True)
class Linked:
    chat: GroupChat
    cohort: ParticipantGroup
    active_members: int
    moved_from: GroupChat | None  # the cohort's earlier chat, no longer linked


class LinkRefused(Exception):
    """`/linkgroup` cannot be done: `key` is the text to show, `values` its placeholders."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key, self.values = key, values


async def link_group(session: AsyncSession, staff: Staff, telegram_chat_id: int, cohort_name: str, now: datetime,
                     *, locale: str) -> Linked:
    """`/linkgroup COHORT` in a group: only staff who lead that cohort (or leads); audited either way.
    A cohort has one chat: linking another moves it."""
    cohort = await session.scalar(select(ParticipantGroup).where(ParticipantGroup.name == cohort_name))
    led = await led_cohort_ids(session, staff)
    if cohort is None:
        # Names are matched exactly first, then without regard to case ("tue-thu" for "Tue-Thu").
        cohort = await session.scalar(select(ParticipantGroup).where(
            ParticipantGroup.name.ilike(cohort_name.replace("%", r"\%").replace("_", r"\_"), escape="\\")))
    if cohort is None:
        audit(session, now, f"staff:{staff.id}", "refused:linkgroup:unknown_cohort", allowed=False)
        raise LinkRefused("groups.link_unknown_cohort", name=cohort_name,
                          cohorts=", ".join(await cohort_names(session, led)))
    if cohort.id not in led:
        audit(session, now, f"staff:{staff.id}", f"refused:linkgroup:{cohort.id}", allowed=False)
        raise LinkRefused("groups.link_no_rights", name=cohort.name)
    chat = await seen_group(session, telegram_chat_id, now, locale)
    moved = None
    for other in await chats_of_cohorts(session, [cohort.id]):
        if other.id != chat.id:
            other.cohort_id = None
            moved = other
    chat.cohort_id, chat.linked_by_id, chat.linked_at, chat.locale = cohort.id, staff.id, now, locale
    await session.flush()
    audit(session, now, f"staff:{staff.id}", f"linkgroup:{cohort.id}:{chat.id}")
    count = len((await session.scalars(
        select(Participant.id).join(GroupMembership, GroupMembership.participant_id == Participant.id)
        .where(GroupMembership.group_id == cohort.id, Participant.status.in_(list(IN_GROUP))))).all())
    return Linked(chat, cohort, count, moved)


async def staff_in_cohort(session: AsyncSession, telegram_user_id: int, cohort_id: int) -> Staff | None:
    """An active staff member who leads this cohort, by their Telegram id."""
    staff = await session.scalar(select(Staff).where(Staff.telegram_user_id == telegram_user_id,
                                                     Staff.active.is_(True)))
    if staff is not None and await leads_cohort(session, staff, cohort_id):
        return staff
    return None


async def participant_in_cohort(session: AsyncSession, telegram_user_id: int, cohort_id: int) -> Participant | None:
    """The participant with this Telegram id, if they are a member of the cohort (any status)."""
    return await session.scalar(
        select(Participant).join(GroupMembership, GroupMembership.participant_id == Participant.id)
        .where(Participant.telegram_user_id == telegram_user_id, GroupMembership.group_id == cohort_id))

