"""A flagged message in a cohort's group chat, after the safety gate has answered its writer in
private and the recorder has paged their clinician (exactly as for a private message):

- the cohort's facilitators get a notice (who, the level and what was found; never the words
  unless `[privacy] quote_in_alerts`) with a button that hides the message from the group;
- the bot never hides a message on its own at concern or urgent level; at imminent level it does
  when `[groups] delete_imminent = true`;
- a peer answering with worry ("you said you want to die, are you ok?", replying to someone
  else's message) is not about the writer: nothing happens to them (no crisis reply, no page); the
  facilitators are told it reads as worry about someone else.

Nothing about it is ever written in the group.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.group_models import GroupChat, GroupFlag
from bot.db.models import InboundMessage, Participant, ScheduledAction, Staff
from bot.safety.levels import Assessment, Level
from bot.services.audit import audit, disclose
from bot.services.groups import actions
from bot.services.groups.chats import facilitators, leads_cohort
from bot.services.scheduling.rows import enqueue

if TYPE_CHECKING:
    from bot.context import AppContext
    from bot.messaging import Keyboard, Messenger
    from bot.services.scheduling.outbox import Delivered

NOTICE = "group_flag_notice"
HIDE_PREFIX = "grp:hide:"

# Words that address someone else, and words a writer uses about themselves (English and Spanish).
_YOU = frozenset({"you", "your", "you're", "youre", "yourself", "u", "ur", "tú", "tu", "te", "ti", "contigo",
                  "estás", "quieres", "dijiste", "tienes", "usted"})
_ME = frozenset({"i", "i'm", "im", "me", "my", "mine", "myself", "i've", "ive", "i'll", "i'd", "id", "yo", "mí",
                 "mi", "mis", "conmigo", "estoy", "quiero", "voy", "tengo", "siento", "puedo", "necesito", "nos",
                 "we", "us", "our"})
_WORD = re.compile(r"[\w']+")


def is_peer_worry(text: str, *, replying_to_someone_else: bool) -> bool:
    """A reply to another member's message that speaks to them ("you", "tú") and not about the
    writer ("I", "me", "yo", a first-person verb): worry about a peer. Anything less clear is
    assessed as the writer's own words (when unsure, the higher level)."""
    if not replying_to_someone_else:
        return False
    words = set(_WORD.findall(text.lower().replace("’", "'")))
    return bool(words & _YOU) and not words & _ME


async def flag_in_group(session: AsyncSession, ctx: AppContext, chat: GroupChat, participant: Participant, *,
                        telegram_message_id: int, assessment: Assessment, inbound: InboundMessage | None,
                        about_other: bool, now: datetime) -> GroupFlag:
    """Record the flagged group message and tell the cohort's facilitators (rows due now)."""
    flag = GroupFlag(group_chat_id=chat.id, participant_id=participant.id, telegram_message_id=telegram_message_id,
                     inbound_message_id=inbound.id if inbound else None,
                     escalation_id=inbound.escalation_id if inbound else None, level=int(assessment.level),
                     about_other=about_other, at=now)
    session.add(flag)
    await session.flush()
    if (assessment.level >= Level.IMMINENT and ctx.settings.groups.delete_imminent and not about_other):
        flag.hidden_at = now
        await actions.request(session, now, actions.DELETE, chat.telegram_chat_id, message_id=telegram_message_id,
                              flag_id=flag.id, participant_id=participant.id)
    if chat.cohort_id is not None:
        for staff in await facilitators(session, chat.cohort_id):
            await enqueue(session, kind=NOTICE, key=f"{NOTICE}:{flag.id}:{staff.id}", due_at=now,
                          participant_id=participant.id, staff_id=staff.id, payload={"flag": flag.id}, now=now)
    return flag


def hide_button(ctx: AppContext, flag: GroupFlag, locale: str) -> Keyboard:
    from bot.messaging import keyboard

    return keyboard([[(ctx.t("groups.hide_button", locale), f"{HIDE_PREFIX}{flag.id}")]])


async def notice_text(session: AsyncSession, ctx: AppContext, flag: GroupFlag, staff: Staff) -> str:
    from bot.services.labels import constructs_text, level_text

    participant = await session.get(Participant, flag.participant_id)
    chat = await session.get(GroupChat, flag.group_chat_id)
    locale = staff.locale
    inbound = await session.get(InboundMessage, flag.inbound_message_id) if flag.inbound_message_id else None
    constructs = constructs_text(ctx, (inbound.reasons or "").split(","), locale) if inbound else ""
    what = ctx.t("groups.flag_about_other" if flag.about_other else
                 "groups.flag_paged" if flag.level >= Level.URGENT else "groups.flag_concern", locale)
    if flag.hidden_at is not None and flag.hidden_by_id is None:
        what += "\n" + ctx.t("groups.flag_hidden_auto", locale)
    text = ctx.t("groups.flag_notice", locale, cohort=chat.cohort.name if chat and chat.cohort else "-",
                 alias=participant.alias if participant else "-", level=level_text(ctx, flag.level, locale),
                 constructs=f": {constructs}" if constructs and constructs != "–" else "", what=what)
    if ctx.settings.privacy.quote_in_alerts and inbound is not None and inbound.text:
        text += "\n\n" + ctx.t("alert.quote", locale, words=inbound.text[:500])
    return text


async def send_notice(ctx: AppContext, messenger: Messenger, session: AsyncSession, row: ScheduledAction) -> Delivered:
    """The sender of `group_flag_notice` rows (a disclosure to that staff member)."""
    from bot.messaging import say
    from bot.services.scheduling.outbox import Delivered, Skip

    flag = await session.get(GroupFlag, int(row.payload["flag"]))
    staff = await session.get(Staff, row.staff_id) if row.staff_id else None
    if flag is None or staff is None or staff.chat_id is None or not staff.active:
        raise Skip("no staff chat for the group notice")
    text = await notice_text(session, ctx, flag, staff)
    button = hide_button(ctx, flag, staff.locale) if flag.hidden_at is None and not flag.about_other else None
    message = await say(messenger, staff.chat_id, text, button)
    disclose(session, ctx.clock.now(), flag.participant_id, f"staff:{staff.id}", "group_flag", str(flag.id))
    return Delivered(staff.chat_id, message.message_id)


async def hide(session: AsyncSession, ctx: AppContext, staff: Staff, flag_id: int) -> tuple[GroupFlag | None, bool]:
    """A facilitator's button: hide the flagged message from the group (deleteMessage, by the
    outbox). Only staff who lead the cohort (or leads). Returns (flag, allowed)."""
    now = ctx.clock.now()
    flag = await session.get(GroupFlag, flag_id)
    chat = await session.get(GroupChat, flag.group_chat_id) if flag else None
    if flag is None or chat is None or chat.cohort_id is None or not await leads_cohort(session, staff, chat.cohort_id):
        audit(session, now, f"staff:{staff.id}", f"refused:group_hide:{flag_id}"[:80],
              participant_id=flag.participant_id if flag else None, allowed=False)
        return flag, False
    if flag.hidden_at is None:
        flag.hidden_at, flag.hidden_by_id = now, staff.id
        await actions.request(session, now, actions.DELETE, chat.telegram_chat_id,
                              message_id=flag.telegram_message_id, flag_id=flag.id, staff_id=staff.id)
        audit(session, now, f"staff:{staff.id}", f"group_hide:{flag.id}", participant_id=flag.participant_id)
    return flag, True
