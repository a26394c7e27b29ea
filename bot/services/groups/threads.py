"""Peer-led threads in a cohort's group chat (a Telegram forum supergroup: Topics turned on).

- A member opens one with `/thread TITLE` in the group: the bot makes a forum topic with that
  title (createForumTopic, by the edge). The title is what the member wrote, so it was assessed by
  the safety gate like any message: a flagged title opens no thread (the writer got the crisis or
  supportive reply in private, the facilitators the usual notice). Titles are one line of at most
  `TITLE_MAX` characters; a member opens at most `PER_DAY` threads a day (so the group's list of
  topics stays readable and the group's ~20 messages a minute are not spent on it).
- The cohort's facilitators are told in private (who opened it, and the title), with a button that
  closes it; `/closethread` inside the topic does the same. Closing is an outbox row (actions.py).
- A group without Topics: `/thread` is answered in the writer's private chat, saying what a
  facilitator must turn on. Nothing about it is posted in the group, and nothing the bot writes in
  the group names anyone.

Opening and closing are audit rows (`group_thread_open:<chat>:<topic>`, `group_thread_close:...`),
which are also what the daily count reads: no title is stored.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.group_models import GroupChat, MemberStatus
from bot.db.models import AuditEntry, Participant, Staff
from bot.services.audit import actor_label, audit
from bot.services.groups import actions
from bot.services.groups.chats import leads_cohort
from bot.services.groups.membership import member_row

TITLE_MAX = 64  # Telegram allows 128; a topic list is read on a phone
PER_DAY = 3
CLOSE_PREFIX = "grp:close:"  # + group chat id + ":" + topic id
OPEN, CLOSE = "group_thread_open", "group_thread_close"


class ThreadRefused(Exception):
    """`/thread` or `/closethread` cannot be done; `key` is the groups.* text that says why (sent in private)."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key, self.values = key, values


def clean_title(args: str) -> str:
    """The topic's title: one line, 1..TITLE_MAX characters, not a command."""
    title = " ".join(args.split())
    if not title or title.startswith("/"):
        raise ThreadRefused("groups.thread_usage", max=TITLE_MAX)
    if len(title) > TITLE_MAX:
        raise ThreadRefused("groups.thread_title_long", max=TITLE_MAX, length=len(title))
    return title


async def may_open(session: AsyncSession, chat: GroupChat, actor: Staff | Participant | None, telegram_user_id: int,
                   now: datetime, *, is_forum: bool, flagged: bool) -> None:
    """Refused (and audited) unless the writer is a member on record of a linked forum group, under
    today's count, and the title was not flagged by the safety layer."""
    label = actor_label(actor, telegram_user_id)
    participant_id = actor.id if isinstance(actor, Participant) else None

    def refuse(why: str, key: str, **values: object) -> ThreadRefused:
        audit(session, now, label, f"refused:{OPEN}:{why}"[:80], participant_id=participant_id, allowed=False)
        return ThreadRefused(key, **values)

    if not is_forum:
        raise refuse("no_topics", "groups.thread_no_topics")
    staff = isinstance(actor, Staff) and chat.cohort_id is not None and await leads_cohort(session, actor,
                                                                                          chat.cohort_id)
    if not staff:
        row = await member_row(session, chat, telegram_user_id)
        if not isinstance(actor, Participant) or row is None or row.status != MemberStatus.MEMBER:
            raise refuse("not_member", "groups.thread_not_member")
    if flagged:
        raise refuse("flagged", "groups.thread_flagged")
    if not staff:
        opened = int(await session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.actor == label, AuditEntry.action.like(f"{OPEN}:%"), AuditEntry.allowed.is_(True),
            AuditEntry.at > now - timedelta(days=1))) or 0)
        if opened >= PER_DAY:
            raise refuse("per_day", "groups.thread_too_many", count=PER_DAY)


def opened(session: AsyncSession, chat: GroupChat, actor: Staff | Participant | None, telegram_user_id: int,
           topic_id: int, now: datetime) -> None:
    audit(session, now, actor_label(actor, telegram_user_id), f"{OPEN}:{chat.id}:{topic_id}",
          participant_id=actor.id if isinstance(actor, Participant) else None)


def close_data(chat: GroupChat, topic_id: int) -> str:
    return f"{CLOSE_PREFIX}{chat.id}:{topic_id}"


def parse_close_data(data: str) -> tuple[int, int] | None:
    try:
        chat_id, topic_id = (int(part) for part in data.removeprefix(CLOSE_PREFIX).split(":"))
    except ValueError:
        return None
    return chat_id, topic_id


async def close(session: AsyncSession, staff: Staff, chat: GroupChat | None, topic_id: int, now: datetime) -> bool:
    """A facilitator closes a peer-led thread (no one but admins can write in it afterwards; it
    stays readable). Only staff who lead the cohort (or leads); audited either way. Closing twice
    asks Telegram once."""
    if chat is None or chat.cohort_id is None or topic_id <= 1 or not await leads_cohort(session, staff,
                                                                                         chat.cohort_id):
        audit(session, now, actor_label(staff), f"refused:{CLOSE}:{chat.id if chat else 0}:{topic_id}"[:80],
              allowed=False)
        return False
    action = f"{CLOSE}:{chat.id}:{topic_id}"
    done = await session.scalar(select(AuditEntry.id).where(AuditEntry.action == action).limit(1))
    audit(session, now, actor_label(staff), action)
    if done is None:
        await actions.request(session, now, actions.CLOSE_TOPIC, chat.telegram_chat_id, message_id=topic_id,
                              staff_id=staff.id)
    return True
