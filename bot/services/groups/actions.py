"""Telegram's group operations as outbox rows: approve or decline a join request, take someone out,
mute them, delete a message, make a person's join link. Written in the transaction that decided
them (so a decision is never lost, and the operator's `iopbot participant discharge` can ask for
one without a running bot), carried out by the running bot through the `GroupAdmin` port."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.group_models import GroupChat, GroupFlag, GroupInvite
from bot.db.models import ActionStatus, Participant, ScheduledAction, Staff
from bot.services.groups.port import GroupActionFailed, GroupAdmin
from bot.services.scheduling.rows import enqueue

if TYPE_CHECKING:
    from bot.context import AppContext
    from bot.messaging import Messenger
    from bot.services.scheduling.outbox import ActionSender, Delivered, Handled

ACTION = "group_action"
INVITE = "group_invite"
# What a `group_action` row asks for.
APPROVE, DECLINE, KICK, REVOKE = "approve", "decline", "kick", "revoke"
MUTE, UNMUTE, DELETE = "mute", "unmute", "delete"
CLOSE_TOPIC = "close_topic"  # a peer-led thread (threads.py); `message` is the topic's id


async def request(session: AsyncSession, now: datetime, action: str, chat_id: int, *, user_id: int | None = None,
                  message_id: int | None = None, until: datetime | None = None, participant_id: int | None = None,
                  link: str | None = None, flag_id: int | None = None, staff_id: int | None = None) -> None:
    """Ask the running bot to do `action` in the Telegram group `chat_id` (due now)."""
    target = user_id if user_id is not None else message_id if message_id is not None else link
    payload: dict[str, Any] = {"action": action, "chat": chat_id}
    payload.update({k: v for k, v in (("user", user_id), ("message", message_id), ("link", link),
                                      ("flag", flag_id), ("until", until.isoformat() if until else None))
                    if v is not None})
    await enqueue(session, kind=ACTION, key=f"{ACTION}:{action}:{chat_id}:{target}:{now:%Y%m%dT%H%M%S%f}",
                  due_at=now, participant_id=participant_id, staff_id=staff_id, payload=payload, now=now)


async def request_invite(session: AsyncSession, now: datetime, chat: GroupChat, *, user_id: int, private_chat_id: int,
                         locale: str, participant_id: int | None = None, staff_id: int | None = None) -> None:
    """A join link for one person, made by the running bot and sent to their private chat."""
    await enqueue(session, kind=INVITE, key=f"{INVITE}:{chat.id}:{user_id}:{now:%Y%m%dT%H%M%S%f}", due_at=now,
                  participant_id=participant_id, staff_id=staff_id,
                  payload={"group": chat.id, "user": user_id, "to": private_chat_id, "locale": locale}, now=now)


def _done(note: str = "") -> Handled:
    from bot.services.scheduling.outbox import Handled

    return Handled(status=ActionStatus.SENT, note=note, wake=False)


def action_sender(admin: GroupAdmin) -> ActionSender:
    """The sender of `group_action` rows, over the edge's `GroupAdmin`."""
    from bot.services.scheduling.outbox import Handled

    async def send(ctx: AppContext, messenger: Messenger, session: AsyncSession, row: ScheduledAction) -> Handled:
        p = row.payload
        action, chat = str(p["action"]), int(p["chat"])
        try:
            if action == APPROVE:
                await admin.approve_join(chat, int(p["user"]))
            elif action == DECLINE:
                await admin.decline_join(chat, int(p["user"]))
            elif action == KICK:
                await admin.kick(chat, int(p["user"]))
            elif action in (MUTE, UNMUTE):
                until = datetime.fromisoformat(p["until"]) if action == MUTE else None
                await admin.mute(chat, int(p["user"]), until)
            elif action == DELETE:
                await admin.delete_message(chat, int(p["message"]))
            elif action == REVOKE:
                await admin.revoke_invite(chat, str(p["link"]))
            elif action == CLOSE_TOPIC:
                await admin.close_topic(chat, int(p["message"]))
            else:
                return Handled(status=ActionStatus.FAILED, note=f"unknown group action {action!r}")
        except GroupActionFailed as exc:
            if not exc.final and row.attempts < 5:
                return Handled(retry=True, note=str(exc)[:300])
            if action == DELETE and p.get("flag"):
                await _hide_failed(ctx, messenger, session, int(p["flag"]), row.staff_id)
            return Handled(status=ActionStatus.FAILED, note=str(exc)[:300])
        return _done()

    return send


async def _hide_failed(ctx: AppContext, messenger: Messenger, session: AsyncSession, flag_id: int,
                       staff_id: int | None) -> None:
    """The message could not be hidden: it shows again as not hidden, and whoever asked is told."""
    from bot.messaging import NotDelivered, say

    flag = await session.get(GroupFlag, flag_id)
    if flag is not None:
        flag.hidden_at, flag.hidden_by_id = None, None
    staff = await session.get(Staff, staff_id) if staff_id else None
    if staff is not None and staff.chat_id is not None:
        with contextlib.suppress(NotDelivered):
            await say(messenger, staff.chat_id, ctx.t("groups.hide_failed", staff.locale))


def invite_sender(admin: GroupAdmin) -> ActionSender:
    """The sender of `group_invite` rows: make the person's own link (it asks to join; the bot lets
    only them in) and send it to their private chat, with the button that opens it."""
    from bot.messaging import link_row, say
    from bot.services.scheduling.outbox import Delivered, Skip

    async def send(ctx: AppContext, messenger: Messenger, session: AsyncSession, row: ScheduledAction) -> Delivered:
        p = row.payload
        chat = await session.get(GroupChat, int(p["group"]))
        if chat is None or chat.cohort_id is None:
            raise Skip("the group is no longer linked")
        if row.participant_id is not None:
            participant = await session.get(Participant, row.participant_id)
            if participant is None or participant.unreachable_at is not None:
                raise Skip("participant gone or unreachable")
        now = ctx.clock.now()
        hours = ctx.settings.groups.invite_hours
        expires = now + timedelta(hours=hours)
        locale = str(p.get("locale") or chat.locale)
        # Revoke this person's earlier links first: one working link per person.
        for old in (await session.scalars(select(GroupInvite).where(
                GroupInvite.group_chat_id == chat.id, GroupInvite.telegram_user_id == int(p["user"]),
                GroupInvite.used_at.is_(None), GroupInvite.revoked_at.is_(None)))).all():
            old.revoked_at = now
            if old.invite_link:
                await request(session, now, REVOKE, chat.telegram_chat_id, link=old.invite_link)
        try:
            # The link's name is visible to the group's admins: an id, never a name or alias.
            link = await admin.create_invite(chat.telegram_chat_id, f"iopbot-{row.id}", expires)
        except GroupActionFailed as exc:
            if not exc.final and row.attempts < 5:
                raise  # the outbox tries again later
            await say(messenger, int(p["to"]), ctx.t("groups.link_failed", locale))
            raise Skip(f"no link: {exc}"[:200]) from exc
        session.add(GroupInvite(group_chat_id=chat.id, telegram_user_id=int(p["user"]), invite_link=link,
                                created_at=now, expires_at=expires))
        shown_hours = int(hours) if float(hours).is_integer() else hours
        message = await say(messenger, int(p["to"]), ctx.t("groups.link", locale, hours=shown_hours),
                            link_row(ctx.t("groups.open_button", locale), link))
        return Delivered(message.chat_id, message.message_id, wake=True)

    return send
