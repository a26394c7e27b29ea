"""Who is in a cohort's group chat, and how they get in and out.

- In: the cohort's participants who are in the program now (active or paused), and staff who lead
  the cohort. A participant first accepts the group's confidentiality agreement in private chat
  (stored with its version and time); `/group` then sends them a join link of their own, which
  asks to join: the bot approves the request only for that person, only after the agreement,
  and revokes the link once used. A join request through any other link is decided the same way
  (someone else's link: declined). Someone let in by another admin who may not be there is taken
  out again.
- Out: discharge (also to alumni) and /stop take the person out at once (`leave_groups`, called
  by those paths); a facilitator's /remove does too and keeps them out until /readmit; a periodic
  check takes out anyone no longer in the cohort or the program, whatever the path.

Every decision is a row in the audit log; Telegram's side is done by the outbox (actions.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.db.calendar_models import GroupMembership
from bot.db.group_models import GroupAgreement, GroupChat, GroupInvite, GroupMember, MemberStatus
from bot.db.models import Participant, Staff
from bot.services.audit import audit
from bot.services.groups import actions
from bot.services.groups.chats import (
    IN_GROUP,
    chats_of_cohorts,
    cohorts_of,
    led_cohort_ids,
    participant_in_cohort,
    staff_in_cohort,
)

INSIDE = (MemberStatus.MEMBER, MemberStatus.REQUESTED)


async def agreement_accepted(session: AsyncSession, participant_id: int, version: str) -> bool:
    return await session.scalar(select(GroupAgreement.id).where(
        GroupAgreement.participant_id == participant_id, GroupAgreement.version == version)) is not None


async def member_row(session: AsyncSession, chat: GroupChat, telegram_user_id: int) -> GroupMember | None:
    return await session.scalar(select(GroupMember).where(GroupMember.group_chat_id == chat.id,
                                                          GroupMember.telegram_user_id == telegram_user_id))


async def _member(session: AsyncSession, chat: GroupChat, telegram_user_id: int, *,
                  participant_id: int | None = None, staff_id: int | None = None) -> GroupMember:
    row = await member_row(session, chat, telegram_user_id)
    if row is None:
        row = GroupMember(group_chat_id=chat.id, telegram_user_id=telegram_user_id, participant_id=participant_id,
                          staff_id=staff_id, status=MemberStatus.LEFT)
        session.add(row)
        await session.flush()
    return row


@dataclass
class Offer:
    """What /group answers a participant: `key` (a groups.* text) and the chats to send links for."""

    key: str
    chats: list[GroupChat] = field(default_factory=list)


async def offer(session: AsyncSession, settings: Settings, participant: Participant) -> Offer:
    """What a participant's /group leads to: not yet (and why), the agreement, or their links."""
    if participant.status not in IN_GROUP:
        return Offer("groups.not_active")
    cohorts = await cohorts_of(session, participant.id)
    if not cohorts:
        return Offer("groups.not_in_cohort")
    chats = await chats_of_cohorts(session, cohorts)
    if not chats:
        return Offer("groups.no_chat")
    outside: list[GroupChat] = []
    for chat in chats:
        row = await member_row(session, chat, participant.telegram_user_id or 0)
        if row is not None and row.status == MemberStatus.REMOVED:
            return Offer("groups.removed")
        if row is None or row.status != MemberStatus.MEMBER:
            outside.append(chat)
    if not outside:
        return Offer("groups.already_member")
    if not await agreement_accepted(session, participant.id, settings.groups.agreement_version):
        return Offer("groups.agreement", outside)
    return Offer("groups.link", outside)


async def accept_agreement(session: AsyncSession, settings: Settings, participant: Participant,
                           now: datetime) -> list[GroupChat]:
    """Store the acceptance (version, time) once, and let in at once any join request of theirs
    that was waiting for it. Returns the chats that still need a link (no request waiting)."""
    version = settings.groups.agreement_version
    if not await agreement_accepted(session, participant.id, version):
        session.add(GroupAgreement(participant_id=participant.id, version=version, accepted_at=now))
        audit(session, now, f"participant:{participant.id}", f"group_agreement:{version}"[:80],
              participant_id=participant.id)
    need_link: list[GroupChat] = []
    result = await offer(session, settings, participant)
    for chat in result.chats:
        row = await member_row(session, chat, participant.telegram_user_id or 0)
        if row is not None and row.status == MemberStatus.REQUESTED:
            await _approve(session, chat, row, now, participant_id=participant.id)
        else:
            need_link.append(chat)
    return need_link


async def _approve(session: AsyncSession, chat: GroupChat, row: GroupMember, now: datetime, *,
                   participant_id: int | None) -> None:
    row.status, row.requested_at, row.joined_at, row.left_at = MemberStatus.MEMBER, None, now, None
    audit(session, now, f"telegram:{row.telegram_user_id}", f"group_join_approved:{chat.id}",
          participant_id=participant_id)
    await actions.request(session, now, actions.APPROVE, chat.telegram_chat_id, user_id=row.telegram_user_id,
                          participant_id=participant_id)


class Decision:
    APPROVED = "approved"
    DECLINED = "declined"
    WAITING = "waiting_for_agreement"  # send them the agreement in private; approved once accepted


async def decide_join(session: AsyncSession, settings: Settings, chat: GroupChat, telegram_user_id: int,
                      invite_link: str | None, now: datetime) -> tuple[str, Participant | None]:
    """A join request (`chat_join_request`): approve, decline, or wait for the agreement."""

    async def decline(why: str, participant_id: int | None = None) -> tuple[str, Participant | None]:
        audit(session, now, f"telegram:{telegram_user_id}", f"refused:group_join:{why}"[:80],
              participant_id=participant_id, allowed=False)
        await actions.request(session, now, actions.DECLINE, chat.telegram_chat_id, user_id=telegram_user_id,
                              participant_id=participant_id)
        return Decision.DECLINED, None

    if chat.cohort_id is None:
        return await decline("not_linked")
    ours = await session.scalar(select(GroupInvite).where(GroupInvite.group_chat_id == chat.id,
                                                          GroupInvite.invite_link == invite_link)) \
        if invite_link else None
    if ours is not None and ours.telegram_user_id != telegram_user_id:
        return await decline("someone_elses_link")
    if ours is not None:
        # Used: it opens the door for nobody else (a forwarded link would have been declined anyway).
        ours.used_at = ours.used_at or now
        if ours.revoked_at is None and ours.invite_link:
            ours.revoked_at = now
            await actions.request(session, now, actions.REVOKE, chat.telegram_chat_id, link=ours.invite_link)
    staff = await staff_in_cohort(session, telegram_user_id, chat.cohort_id)
    if staff is not None:
        row = await _member(session, chat, telegram_user_id, staff_id=staff.id)
        await _approve(session, chat, row, now, participant_id=None)
        return Decision.APPROVED, None
    participant = await participant_in_cohort(session, telegram_user_id, chat.cohort_id)
    if participant is None:
        return await decline("not_in_cohort")
    if participant.status not in IN_GROUP:
        return await decline(f"status_{participant.status}", participant.id)
    row = await _member(session, chat, telegram_user_id, participant_id=participant.id)
    if row.status == MemberStatus.REMOVED:
        return await decline("removed_by_facilitator", participant.id)
    if not await agreement_accepted(session, participant.id, settings.groups.agreement_version):
        row.status, row.requested_at = MemberStatus.REQUESTED, now
        audit(session, now, f"participant:{participant.id}", f"group_join_waits_agreement:{chat.id}",
              participant_id=participant.id)
        return Decision.WAITING, participant
    await _approve(session, chat, row, now, participant_id=participant.id)
    return Decision.APPROVED, participant


async def member_joined(session: AsyncSession, settings: Settings, chat: GroupChat, telegram_user_id: int,
                        now: datetime) -> bool:
    """Telegram says someone is now in the group (`chat_member`). True when they may be there (the
    caller welcomes a participant); otherwise they are taken out again, and it is audited."""
    if chat.cohort_id is None:
        return False
    staff = await staff_in_cohort(session, telegram_user_id, chat.cohort_id)
    participant = None if staff is not None else await participant_in_cohort(session, telegram_user_id,
                                                                                chat.cohort_id)
    row = await member_row(session, chat, telegram_user_id)
    allowed = staff is not None or (
        participant is not None and participant.status in IN_GROUP
        and await agreement_accepted(session, participant.id, settings.groups.agreement_version)
        and (row is None or row.status != MemberStatus.REMOVED))
    if not allowed:
        audit(session, now, f"telegram:{telegram_user_id}", f"refused:group_member:{chat.id}",
              participant_id=participant.id if participant else None, allowed=False)
        await actions.request(session, now, actions.KICK, chat.telegram_chat_id, user_id=telegram_user_id,
                              participant_id=participant.id if participant else None)
        return False
    row = row or await _member(session, chat, telegram_user_id, participant_id=participant.id if participant else None,
                               staff_id=staff.id if staff else None)
    row.status, row.requested_at, row.left_at = MemberStatus.MEMBER, None, None
    row.joined_at = row.joined_at or now
    return participant is not None


async def member_left(session: AsyncSession, chat: GroupChat, telegram_user_id: int, now: datetime) -> None:
    row = await member_row(session, chat, telegram_user_id)
    if row is not None and row.status in INSIDE:
        row.status, row.left_at = MemberStatus.LEFT, now


async def leave_groups(session: AsyncSession, participant: Participant, now: datetime, why: str) -> int:
    """Take a participant out of every group chat (discharge, /stop): their place ends now, Telegram
    removes them as soon as the running bot gets to it, and their unused links stop working.
    Returns in how many chats they were."""
    rows = (await session.scalars(select(GroupMember).where(
        GroupMember.participant_id == participant.id, GroupMember.status.in_(list(INSIDE))))).all()
    for row in rows:
        chat = await session.get(GroupChat, row.group_chat_id)
        if chat is None:
            continue
        action = actions.DECLINE if row.status == MemberStatus.REQUESTED else actions.KICK
        row.status, row.left_at = MemberStatus.LEFT, now
        await actions.request(session, now, action, chat.telegram_chat_id, user_id=row.telegram_user_id,
                              participant_id=participant.id)
        audit(session, now, "bot", f"group_removed:{chat.id}:{why}"[:80], participant_id=participant.id)
    await _revoke_links(session, participant.telegram_user_id, now)
    return len(rows)


async def _revoke_links(session: AsyncSession, telegram_user_id: int | None, now: datetime) -> None:
    if telegram_user_id is None:
        return
    for invite in (await session.scalars(select(GroupInvite).where(
            GroupInvite.telegram_user_id == telegram_user_id, GroupInvite.used_at.is_(None),
            GroupInvite.revoked_at.is_(None)))).all():
        invite.revoked_at = now
        chat = await session.get(GroupChat, invite.group_chat_id)
        if chat is not None and invite.invite_link:
            await actions.request(session, now, actions.REVOKE, chat.telegram_chat_id, link=invite.invite_link)


async def check_members(session: AsyncSession, now: datetime) -> int:
    """Take out anyone who may no longer be in a group chat, whatever changed it (discharged by the
    operator, taken off the cohort, a staff member deactivated or no longer leading it, the chat
    linked to another cohort). Returns how many were taken out."""
    removed = 0
    rows = (await session.scalars(select(GroupMember).where(GroupMember.status.in_(list(INSIDE))))).all()
    for row in rows:
        chat = await session.get(GroupChat, row.group_chat_id)
        if chat is None:
            continue
        still = False
        if chat.cohort_id is not None:
            if row.staff_id is not None:
                still = await staff_in_cohort(session, row.telegram_user_id, chat.cohort_id) is not None
            elif row.participant_id is not None:
                participant = await session.get(Participant, row.participant_id)
                in_cohort = await session.scalar(select(GroupMembership.id).where(
                    GroupMembership.group_id == chat.cohort_id, GroupMembership.participant_id == row.participant_id))
                still = participant is not None and participant.status in IN_GROUP and in_cohort is not None
        if still:
            continue
        action = actions.DECLINE if row.status == MemberStatus.REQUESTED else actions.KICK
        row.status, row.left_at = MemberStatus.LEFT, now
        await actions.request(session, now, action, chat.telegram_chat_id, user_id=row.telegram_user_id,
                              participant_id=row.participant_id)
        audit(session, now, "bot", f"group_removed:{chat.id}:no_longer_eligible", participant_id=row.participant_id)
        removed += 1
    return removed


# --- the facilitators' tools ---------------------------------------------------------------------

class NotAllowed(Exception):
    """A facilitator's request cannot be done; `key` is the groups.* text that says why."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


async def target(session: AsyncSession, staff: Staff, alias: str, now: datetime,
                 action: str) -> tuple[Participant, list[GroupMember], list[GroupChat]]:
    """The participant `alias` and their places in the group chats of cohorts `staff` leads;
    refused (and audited) when the alias is unknown or not in one of their cohorts."""
    participant = await session.scalar(select(Participant).where(Participant.alias.ilike(
        alias.replace("%", r"\%").replace("_", r"\_"), escape="\\")))
    if participant is None:
        raise NotAllowed("groups.unknown_alias")
    cohorts = set(await cohorts_of(session, participant.id))
    chats = await chats_of_cohorts(session, cohorts)
    if not chats:
        raise NotAllowed("groups.not_in_group")
    led = await led_cohort_ids(session, staff)
    mine = [c for c in chats if c.cohort_id in led]
    if not mine:
        audit(session, now, f"staff:{staff.id}", f"refused:{action}", participant_id=participant.id, allowed=False)
        raise NotAllowed("groups.not_yours")
    rows = []
    for chat in mine:
        if participant.telegram_user_id is not None:
            rows.append(await _member(session, chat, participant.telegram_user_id, participant_id=participant.id))
    return participant, rows, mine


async def mute(session: AsyncSession, staff: Staff, alias: str, hours: float, now: datetime) -> tuple[Participant,
                                                                                                      datetime]:
    participant, rows, chats = await target(session, staff, alias, now, "mute")
    until = now + timedelta(hours=hours)
    by_chat = {c.id: c for c in chats}
    for row in rows:
        row.muted_until = until
        await actions.request(session, now, actions.MUTE, by_chat[row.group_chat_id].telegram_chat_id,
                              user_id=row.telegram_user_id, until=until, participant_id=participant.id)
    audit(session, now, f"staff:{staff.id}", f"group_mute:{hours:g}h", participant_id=participant.id)
    return participant, until


async def unmute(session: AsyncSession, staff: Staff, alias: str, now: datetime) -> Participant:
    participant, rows, chats = await target(session, staff, alias, now, "unmute")
    by_chat = {c.id: c for c in chats}
    for row in rows:
        row.muted_until = None
        await actions.request(session, now, actions.UNMUTE, by_chat[row.group_chat_id].telegram_chat_id,
                              user_id=row.telegram_user_id, participant_id=participant.id)
    audit(session, now, f"staff:{staff.id}", "group_unmute", participant_id=participant.id)
    return participant


async def remove(session: AsyncSession, staff: Staff, alias: str, now: datetime) -> Participant:
    """/remove: out of the group chats of cohorts `staff` leads, and kept out until /readmit."""
    participant, rows, chats = await target(session, staff, alias, now, "remove")
    by_chat = {c.id: c for c in chats}
    for row in rows:
        was = row.status
        row.status, row.left_at, row.removed_by_id = MemberStatus.REMOVED, now, staff.id
        action = actions.DECLINE if was == MemberStatus.REQUESTED else actions.KICK
        await actions.request(session, now, action, by_chat[row.group_chat_id].telegram_chat_id,
                              user_id=row.telegram_user_id, participant_id=participant.id)
    await _revoke_links(session, participant.telegram_user_id, now)
    audit(session, now, f"staff:{staff.id}", "group_remove", participant_id=participant.id)
    return participant


async def readmit(session: AsyncSession, staff: Staff, alias: str, now: datetime) -> Participant:
    participant, rows, _ = await target(session, staff, alias, now, "readmit")
    for row in rows:
        if row.status == MemberStatus.REMOVED:
            row.status, row.removed_by_id = MemberStatus.LEFT, None
    audit(session, now, f"staff:{staff.id}", "group_readmit", participant_id=participant.id)
    return participant
