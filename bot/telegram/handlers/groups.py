"""Cohort group chats, at the edge (the logic: bot/services/groups/).

In a group: `/linkgroup COHORT` by staff who lead the cohort; join requests (approved, declined,
or held for the agreement); members coming and going; the bot being added or promoted. Every
other group message was assessed by the safety gate and recorded (bot/telegram/safety_gate.py)
and needs nothing more; a writer who may not be in the group is taken out. The bot never answers
in a group: its words there are the outbox's paced posts (services/groups/posting.py), and
answers to one person go to their private chat. Unlinked groups: the bot says once, when added,
that it must be linked, and otherwise ignores them (it stays, so staff can link it).

Peer-led threads (services/groups/threads.py): `/thread TITLE` by a member in a group with
Topics makes a forum topic (its title was assessed by the safety gate like any message: a flagged
one opens nothing); the facilitators are told in private with a "Close it" button, and
`/closethread` in the topic closes it. Every answer about it goes to the writer's private chat.

In private: /group (a participant's agreement and own link; staff's links to the cohorts they
lead), the agreement's buttons, the facilitator's "Hide it from the group" and "Close the thread"
buttons, /linkgroup's usage, and the facilitators' /mute, /unmute, /remove, /readmit.

This router comes first: no other router ever sees a group's update.
"""

from __future__ import annotations

import logging
import re

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, ChatJoinRequest, ChatMemberUpdated, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import LOCALES
from bot.context import AppContext
from bot.db.group_models import GroupChat, GroupPost, MemberStatus
from bot.db.models import Participant, Staff
from bot.messaging import Keyboard, Replies, keyboard
from bot.safety.levels import Assessment
from bot.services.audit import actor_label, audit
from bot.services.groups import actions, membership, posting, threads, watch
from bot.services.groups.chats import IN_GROUP as MAY_BE_INSIDE
from bot.services.groups.chats import (
    LinkedGroups,
    LinkRefused,
    cohort_names,
    facilitators,
    led_cohort_ids,
    link_group,
    seen_group,
)
from bot.services.groups.port import GroupActionFailed
from bot.services.staff_time import staff_clock_text
from bot.services.visibility import example_alias
from bot.telegram.filters import IsEnrolledParticipant, IsParticipant, IsStaff
from bot.telegram.group_admin import TelegramGroupAdmin

log = logging.getLogger(__name__)

router = Router(name="groups")
GROUPS = frozenset({"group", "supergroup"})
IN_GROUP = F.chat.type.in_(GROUPS)
INSIDE = frozenset({"member", "administrator", "creator", "restricted"})
AGREE, NOT_NOW = "grp:agree", "grp:notnow"
_COMMAND = re.compile(r"^/([A-Za-z0-9_]+)(?:@\w+)?(?:\s+(.*))?$", re.S)


def _command(text: str | None) -> tuple[str, str] | None:
    match = _COMMAND.match(text or "")
    return (match.group(1).lower(), (match.group(2) or "").strip()) if match else None


def _linked(ctx: AppContext) -> LinkedGroups | None:
    return ctx.parts.find(LinkedGroups)


# --- in a group ------------------------------------------------------------------------------------

@router.message(IN_GROUP)
async def group_message(message: Message, bot: Bot, actor: Staff | Participant | None, session: AsyncSession,
                        replies: Replies, ctx: AppContext, group_chat: GroupChat | None = None,
                        assessment: Assessment | None = None) -> None:
    if message.from_user is None or message.from_user.is_bot:
        return
    now = ctx.clock.now()
    command = _command(message.text)
    if command is not None and command[0] == "linkgroup":
        await _link(message, bot, actor, session, replies, ctx, command[1])
        return
    if group_chat is None or group_chat.cohort_id is None:
        return  # an unlinked group: ignored (the bot said once, when added, that it must be linked)
    # Someone writing who is not (or no longer) a member on record: let them stay only if they may.
    row = await membership.member_row(session, group_chat, message.from_user.id)
    if row is None or row.status != MemberStatus.MEMBER:
        await membership.member_joined(session, ctx.settings, group_chat, message.from_user.id, now)
        replies.outbox_due = True
    if command is not None and command[0] == "thread":
        await _open_thread(message, bot, actor, session, replies, ctx, group_chat, command[1],
                           flagged=assessment is not None and assessment.flagged)
    elif command is not None and command[0] == "closethread":
        await _close_thread_here(message, actor, session, replies, ctx, group_chat)


def _private_chat(actor: Staff | Participant | None) -> int | None:
    """Where an answer to someone writing in the group goes: their private chat with the bot (never
    the group); None for someone the bot does not know (it never writes first to a stranger)."""
    if isinstance(actor, Staff | Participant):
        return actor.chat_id or actor.telegram_user_id
    return None


async def _open_thread(message: Message, bot: Bot, actor: Staff | Participant | None, session: AsyncSession,
                       replies: Replies, ctx: AppContext, chat: GroupChat, args: str, *, flagged: bool) -> None:
    assert message.from_user is not None
    now, user_id = ctx.clock.now(), message.from_user.id
    to = _private_chat(actor)
    locale = actor.locale if actor is not None else ctx.settings.program.default_locale
    try:
        title = threads.clean_title(args)
        await threads.may_open(session, chat, actor, user_id, now, is_forum=bool(message.chat.is_forum),
                               flagged=flagged)
        topic_id = await TelegramGroupAdmin(bot).create_topic(chat.telegram_chat_id, title)
    except threads.ThreadRefused as refused:
        if to is not None:
            replies.text(to, ctx.t(refused.key, locale, **refused.values))
        return
    except GroupActionFailed as exc:
        log.info("could not open a forum topic: %s", str(exc)[:120])
        audit(session, now, actor_label(actor, user_id), "refused:group_thread_open:telegram", allowed=False)
        if to is not None:
            replies.text(to, ctx.t("groups.thread_failed", locale))
        return
    threads.opened(session, chat, actor, user_id, topic_id, now)
    session.add(GroupPost(group_chat_id=chat.id, kind="thread", sent_at=now))  # counts toward the group's pace
    if to is not None:
        replies.text(to, ctx.t("groups.thread_opened", locale, title=title))
    who = actor.alias if isinstance(actor, Participant | Staff) else "-"
    for staff in await facilitators(session, chat.cohort_id or 0):
        if staff.chat_id is None or staff.telegram_user_id == user_id:
            continue
        replies.text(staff.chat_id, ctx.t("groups.thread_notice", staff.locale,
                                          cohort=chat.cohort.name if chat.cohort else "-", alias=who, title=title),
                     keyboard([[(ctx.t("groups.close_thread_button", staff.locale),
                                 threads.close_data(chat, topic_id))]]))


async def _close_thread_here(message: Message, actor: Staff | Participant | None, session: AsyncSession,
                             replies: Replies, ctx: AppContext, chat: GroupChat) -> None:
    """`/closethread` written inside a peer-led thread by one of the cohort's facilitators."""
    now, to = ctx.clock.now(), _private_chat(actor)
    topic_id = message.message_thread_id if message.is_topic_message else None
    if not isinstance(actor, Staff):
        audit(session, now, actor_label(actor, message.from_user.id if message.from_user else None),
              "refused:/closethread", participant_id=actor.id if isinstance(actor, Participant) else None,
              allowed=False)
        if to is not None and actor is not None:
            replies.text(to, ctx.t("groups.close_thread_staff_only", actor.locale))
        return
    if topic_id is None:
        replies.text(to or 0, ctx.t("groups.close_thread_usage", actor.locale))
        return
    if not await threads.close(session, actor, chat, topic_id, now):
        replies.text(to or 0, ctx.t("groups.close_thread_not_yours", actor.locale))
        return
    replies.outbox_due = True
    replies.text(to or 0, ctx.t("groups.thread_closed", actor.locale, alias=actor.alias))


@router.edited_message(IN_GROUP)
async def group_edit(message: Message) -> None:
    """Assessed and recorded by the middlewares like a new message; nothing more."""


async def _link(message: Message, bot: Bot, actor: Staff | Participant | None, session: AsyncSession,
                replies: Replies, ctx: AppContext, args: str) -> None:
    now = ctx.clock.now()
    if not isinstance(actor, Staff):
        # Never answered in the group; audited like any refused command.
        audit(session, now, actor_label(actor, message.from_user.id if message.from_user else None),
              "refused:/linkgroup", participant_id=actor.id if isinstance(actor, Participant) else None,
              allowed=False)
        return
    to = actor.chat_id or actor.telegram_user_id or 0
    words = args.split()
    locale = words.pop() if len(words) > 1 and words[-1].lower() in LOCALES else ctx.settings.program.default_locale
    name = " ".join(words)
    if not name:
        led = await cohort_names(session, await led_cohort_ids(session, actor))
        replies.text(to, ctx.t("groups.link_usage", actor.locale,
                               cohorts=", ".join(led) or ctx.t("groups.no_cohorts", actor.locale)))
        return
    chat = await seen_group(session, message.chat.id, now, locale.lower())
    if chat.bot_status != "administrator":
        try:  # the my_chat_member update may have been missed: ask Telegram
            member = await bot.get_chat_member(message.chat.id, bot.id)
            chat.bot_status = member.status
        except TelegramAPIError as exc:
            log.info("could not read the bot's rights in a group: %s", exc.message[:80])
    if chat.bot_status != "administrator":
        audit(session, now, actor_label(actor), "refused:linkgroup:bot_not_admin", allowed=False)
        replies.text(to, ctx.t("groups.link_not_admin", actor.locale))
        return
    try:
        linked = await link_group(session, actor, message.chat.id, name, now, locale=locale.lower())
    except LinkRefused as refused:
        replies.text(to, ctx.t(refused.key, actor.locale, **refused.values))
        return
    memory = _linked(ctx)
    if memory is not None:
        memory.add(message.chat.id)
        if linked.moved_from is not None:
            memory.discard(linked.moved_from.telegram_chat_id)
    # The one who linked it is in the group already: a member on record.
    await membership.member_joined(session, ctx.settings, linked.chat, message.from_user.id, now)  # type: ignore[union-attr]
    await posting.post(session, ctx.settings, linked.chat, "groups.linked_notice", now)
    replies.outbox_due = True
    replies.text(to, ctx.t("groups.linked", actor.locale, cohort=linked.cohort.name, count=linked.active_members))
    if linked.moved_from is not None:
        replies.text(to, ctx.t("groups.link_moved", actor.locale, cohort=linked.cohort.name))


@router.chat_join_request()
async def join_request(request: ChatJoinRequest, session: AsyncSession, replies: Replies, ctx: AppContext) -> None:
    now = ctx.clock.now()
    chat = await seen_group(session, request.chat.id, now, ctx.settings.program.default_locale)
    link = request.invite_link.invite_link if request.invite_link else None
    decision, participant = await membership.decide_join(session, ctx.settings, chat, request.from_user.id, link, now)
    replies.outbox_due = True
    if decision == membership.Decision.WAITING and participant is not None:
        # Telegram lets the bot write to them (user_chat_id) while the request is open.
        locale = participant.locale
        replies.text(request.user_chat_id, ctx.t("groups.join_after_agreement", locale))
        replies.text(request.user_chat_id, ctx.t("groups.agreement", locale), _agreement_buttons(ctx, locale))


@router.chat_member(F.chat.type.in_(GROUPS))
async def member_update(update: ChatMemberUpdated, bot: Bot, session: AsyncSession, replies: Replies,
                        ctx: AppContext) -> None:
    user = update.new_chat_member.user
    if user.id == bot.id or user.is_bot:
        return
    now = ctx.clock.now()
    chat = await seen_group(session, update.chat.id, now, ctx.settings.program.default_locale)
    was_in, now_in = update.old_chat_member.status in INSIDE, update.new_chat_member.status in INSIDE
    if now_in and not was_in:
        welcome = await membership.member_joined(session, ctx.settings, chat, user.id, now)
        if welcome:
            await posting.post(session, ctx.settings, chat, "groups.welcome", now)
        replies.outbox_due = True
    elif was_in and not now_in:
        await membership.member_left(session, chat, user.id, now)


@router.my_chat_member(F.chat.type.in_(GROUPS))
async def bot_membership(update: ChatMemberUpdated, session: AsyncSession, replies: Replies,
                         ctx: AppContext) -> None:
    now = ctx.clock.now()
    chat = await seen_group(session, update.chat.id, now, ctx.settings.program.default_locale)
    status = update.new_chat_member.status
    added = update.old_chat_member.status not in INSIDE and status in INSIDE
    chat.bot_status = str(status)
    if status not in INSIDE:
        memory = _linked(ctx)
        if memory is not None:
            memory.discard(update.chat.id)
        return
    if added and chat.cohort_id is None:
        await posting.post(session, ctx.settings, chat, "groups.unlinked_notice", now)
        replies.outbox_due = True


# --- in private ------------------------------------------------------------------------------------

def _agreement_buttons(ctx: AppContext, locale: str) -> Keyboard:
    return keyboard([[(ctx.t("groups.agree_button", locale), AGREE),
                      (ctx.t("groups.not_now_button", locale), NOT_NOW)]])


@router.message(Command("group"), IsEnrolledParticipant())
async def group_command(message: Message, actor: Participant, session: AsyncSession, replies: Replies,
                        ctx: AppContext) -> None:
    now = ctx.clock.now()
    offer = await membership.offer(session, ctx.settings, actor)
    audit(session, now, actor_label(actor), f"group:{offer.key.rsplit('.', 1)[-1]}", participant_id=actor.id)
    if offer.key == "groups.agreement":
        replies.text(message.chat.id, ctx.t(offer.key, actor.locale), _agreement_buttons(ctx, actor.locale))
        return
    if offer.key == "groups.link":
        for chat in offer.chats:
            await actions.request_invite(session, now, chat, user_id=actor.telegram_user_id or 0,
                                         private_chat_id=message.chat.id, locale=actor.locale, participant_id=actor.id)
        replies.outbox_due = True
        return
    replies.text(message.chat.id, ctx.t(offer.key, actor.locale))


@router.callback_query(F.data.in_({AGREE, NOT_NOW}), IsParticipant())
async def agreement_answer(query: CallbackQuery, actor: Participant, session: AsyncSession, replies: Replies,
                           ctx: AppContext) -> None:
    now, to = ctx.clock.now(), query.from_user.id
    if query.message is not None:
        replies.edit(query.message.chat.id, query.message.message_id, ctx.t("groups.agreement", actor.locale), None)
    if query.data == NOT_NOW:
        replies.text(to, ctx.t("groups.not_now", actor.locale))
        return
    if actor.status not in MAY_BE_INSIDE:
        replies.text(to, ctx.t("groups.not_active", actor.locale))
        return
    need_link = await membership.accept_agreement(session, ctx.settings, actor, now)
    replies.text(to, ctx.t("groups.agreed", actor.locale))
    for chat in need_link:
        await actions.request_invite(session, now, chat, user_id=actor.telegram_user_id or 0, private_chat_id=to,
                                     locale=actor.locale, participant_id=actor.id)
    replies.outbox_due = True


@router.callback_query(F.data.startswith(watch.HIDE_PREFIX), IsStaff())
async def hide_pressed(query: CallbackQuery, actor: Staff, session: AsyncSession, replies: Replies,
                       ctx: AppContext) -> None:
    try:
        flag_id = int((query.data or "").removeprefix(watch.HIDE_PREFIX))
    except ValueError:
        flag_id = 0
    flag, allowed = await watch.hide(session, ctx, actor, flag_id)
    if not allowed or flag is None:
        replies.notice(ctx.t("common.button_expired", actor.locale))
        return
    replies.outbox_due = True
    if query.message is not None:
        text = await watch.notice_text(session, ctx, flag, actor)
        replies.edit(query.message.chat.id, query.message.message_id,
                     text + "\n" + ctx.t("groups.hidden", actor.locale, alias=actor.alias), None)


@router.callback_query(F.data.startswith(threads.CLOSE_PREFIX), IsStaff())
async def close_thread_pressed(query: CallbackQuery, actor: Staff, session: AsyncSession, replies: Replies,
                               ctx: AppContext) -> None:
    parsed = threads.parse_close_data(query.data or "")
    chat = await session.get(GroupChat, parsed[0]) if parsed is not None else None
    if parsed is None or not await threads.close(session, actor, chat, parsed[1], ctx.clock.now()):
        replies.notice(ctx.t("common.button_expired", actor.locale))
        return
    replies.outbox_due = True
    replies.text(query.from_user.id, ctx.t("groups.thread_closed", actor.locale, alias=actor.alias))


@router.message(Command("group"), IsStaff())
async def staff_group_command(message: Message, actor: Staff, session: AsyncSession, replies: Replies,
                              ctx: AppContext) -> None:
    """Staff's own links to the group chats of the cohorts they lead (they are let in like members)."""
    from bot.services.groups.chats import chats_of_cohorts

    now = ctx.clock.now()
    chats = await chats_of_cohorts(session, await led_cohort_ids(session, actor))
    if not chats:
        replies.text(message.chat.id, ctx.t("groups.staff_no_groups", actor.locale))
        return
    hours = ctx.settings.groups.invite_hours
    replies.text(message.chat.id, ctx.t("groups.staff_links", actor.locale,
                                        hours=int(hours) if float(hours).is_integer() else hours))
    for chat in chats:
        await actions.request_invite(session, now, chat, user_id=actor.telegram_user_id or 0,
                                     private_chat_id=message.chat.id, locale=actor.locale, staff_id=actor.id)
    audit(session, now, actor_label(actor), "group:staff_links")
    replies.outbox_due = True


@router.message(Command("linkgroup"), IsStaff())
async def linkgroup_private(message: Message, actor: Staff, session: AsyncSession, replies: Replies,
                            ctx: AppContext) -> None:
    led = await cohort_names(session, await led_cohort_ids(session, actor))
    replies.text(message.chat.id, ctx.t("groups.link_usage", actor.locale,
                                        cohorts=", ".join(led) or ctx.t("groups.no_cohorts", actor.locale)))


@router.message(Command("mute", "unmute", "remove", "readmit"), IsStaff())
async def facilitator_command(message: Message, command: CommandObject, actor: Staff, session: AsyncSession,
                              replies: Replies, ctx: AppContext) -> None:
    now, locale, to = ctx.clock.now(), actor.locale, message.chat.id
    name = command.command.lower()
    words = (command.args or "").split()
    usage = {"mute": "groups.mute_usage", "unmute": "groups.mute_usage", "remove": "groups.remove_usage",
             "readmit": "groups.readmit_usage"}[name]
    hours = ctx.settings.groups.mute_hours
    if not words:
        replies.text(to, ctx.t(usage, locale, example=await example_alias(session, actor),
                               hours=int(hours) if float(hours).is_integer() else hours))
        return
    alias = words[0][:80]
    try:
        if name == "mute":
            if len(words) > 1:
                try:
                    hours = float(words[1].replace(",", "."))
                except ValueError:
                    hours = -1
                if not 0 < hours <= 24 * 365:
                    replies.text(to, ctx.t(usage, locale, example=alias, hours=int(ctx.settings.groups.mute_hours)))
                    return
            participant, until = await membership.mute(session, actor, alias, hours, now)
            replies.text(to, ctx.t("groups.muted", locale, alias=participant.alias,
                                   until=staff_clock_text(ctx, actor, until)))
        elif name == "unmute":
            participant = await membership.unmute(session, actor, alias, now)
            replies.text(to, ctx.t("groups.unmuted", locale, alias=participant.alias))
        elif name == "remove":
            participant = await membership.remove(session, actor, alias, now)
            replies.text(to, ctx.t("groups.removed_staff", locale, alias=participant.alias))
        else:
            participant = await membership.readmit(session, actor, alias, now)
            replies.text(to, ctx.t("groups.readmitted", locale, alias=participant.alias))
    except membership.NotAllowed as refused:
        replies.text(to, ctx.t(refused.key, locale, alias=alias))
        return
    replies.outbox_due = True
