"""Everything the bot writes IN a group chat, as `group_post` rows of the outbox.

- Telegram allows a bot about 20 messages a minute in one group (429 beyond). Before each post the
  sender counts the group's posts of the last 60 seconds (`group_posts`, in the database, so every
  worker counts the same ones; the group's row is locked while it sends, so two workers never both
  take the last place) and, when `[groups] messages_per_minute` are used up, puts the row back until
  the oldest of them is a minute old. Nothing else posts in a group.
- Quiet hours (`[groups] quiet_start`..`quiet_end`, the program's time zone): a post due then waits
  for their end. Crisis replies never wait: they go to the writer's private chat.
- The discussion prompt: daily or weekly at `prompt_time` (`[groups] prompt_every`, `prompt_day`),
  the next file of content/<locale>/group_prompts/ in order, one row per group and date.

Texts come from content/<locale>/ui/groups.toml in the group's language; none names a person.
"""

from __future__ import annotations

import asyncio
import weakref
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import WEEKDAYS, Settings
from bot.content.group_prompts import GroupPrompt, load_group_prompts, prompt_for
from bot.db.group_models import GroupChat, GroupPost
from bot.db.models import ActionStatus, ScheduledAction
from bot.services.local_time import in_quiet_hours, parse_hhmm, quiet_hours_end, wall_time_to_utc
from bot.services.scheduling.rows import enqueue

if TYPE_CHECKING:
    from bot.context import AppContext
    from bot.messaging import Messenger
    from bot.services.scheduling.outbox import Delivered, Handled

POST = "group_post"
PROMPT = "prompt"  # the payload's key for a discussion prompt (its text comes from content)
WINDOW = timedelta(seconds=60)
# Posts of the same group wait for each other in this process (SQLite has no row locks).
_locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()


def _zone(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.program.default_timezone)


def quiet_until(settings: Settings, moment: datetime) -> datetime | None:
    """The end of the group's quiet hours when `moment` falls in them, else None."""
    g, zone = settings.groups, _zone(settings)
    start, end = parse_hhmm(g.quiet_start), parse_hhmm(g.quiet_end)
    if not in_quiet_hours(moment.astimezone(zone).time(), start, end):
        return None
    return quiet_hours_end(moment, zone, start, end)


async def post(session: AsyncSession, settings: Settings, chat: GroupChat, key: str, now: datetime, *,
               unique: str | None = None, values: dict[str, Any] | None = None) -> bool:
    """Queue a text for the group: `key` is a groups.* text (or PROMPT), sent in the group's
    language; after quiet hours if now is in them. `unique` makes it once only (a prompt per day)."""
    due = quiet_until(settings, now) or now
    name = unique or f"{key}:{now:%Y%m%dT%H%M%S%f}"
    return await enqueue(session, kind=POST, key=f"{POST}:{chat.id}:{name}",
                         due_at=due, intended_at=now, payload={"group": chat.id, "text": key, **(values or {})},
                         now=now)


class PromptLibrary:
    """The discussion prompts, loaded from the content folder (again when its files change)."""

    def __init__(self, settings: Settings) -> None:
        self.directory = settings.content_dir
        self._stamp: tuple[tuple[str, float], ...] | None = None
        self.prompts: dict[str, list[GroupPrompt]] = {}

    def current(self) -> dict[str, list[GroupPrompt]]:
        files = sorted(self.directory.glob("*/group_prompts/*.md"))
        stamp = tuple((str(p), p.stat().st_mtime) for p in files)
        if stamp != self._stamp:
            self.prompts, _ = load_group_prompts(self.directory)
            self._stamp = stamp
        return self.prompts


def post_sender(prompts: PromptLibrary) -> Any:
    """The sender of `group_post` rows: quiet hours, the group's rate, the text, the send."""
    from bot.messaging import say
    from bot.services.scheduling.outbox import Delivered, Handled, Skip

    async def send(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                   row: ScheduledAction) -> Delivered | Handled:
        lock = _locks.get(int(row.payload["group"]))
        if lock is None:
            lock = _locks[int(row.payload["group"])] = asyncio.Lock()
        async with lock:
            chat = await session.scalar(select(GroupChat).where(GroupChat.id == int(row.payload["group"]))
                                        .with_for_update(of=GroupChat))  # not its cohort (an outer join)
            key = str(row.payload["text"])
            if chat is None or chat.bot_status in ("left", "kicked"):
                raise Skip("the bot is not in the group")
            if chat.cohort_id is None and key != "groups.unlinked_notice":
                raise Skip("the group is no longer linked")
            now = ctx.clock.now()
            later = quiet_until(ctx.settings, now)
            if later is None:
                recent = (await session.scalars(
                    select(GroupPost.sent_at).where(GroupPost.group_chat_id == chat.id,
                                                    GroupPost.sent_at > now - WINDOW)
                    .order_by(GroupPost.sent_at))).all()
                limit = ctx.settings.groups.messages_per_minute
                if len(recent) >= limit:
                    later = recent[len(recent) - limit] + WINDOW  # when the oldest that counts is a minute old
            if later is not None:
                await session.execute(update(ScheduledAction).where(ScheduledAction.id == row.id)
                                      .values(due_at=later, attempts=0))
                return Handled(status=ActionStatus.PENDING, note=f"waits until {later:%H:%M:%S} UTC", wake=False)
            if key == PROMPT:
                prompt = prompt_for(prompts.current(), chat.locale, chat.prompts_posted)
                if prompt is None:
                    raise Skip("no reviewed discussion prompt in content/<locale>/group_prompts/")
                text = ctx.t("groups.prompt", chat.locale, text=prompt.text)
                chat.prompts_posted += 1
            else:
                text = ctx.t(key, chat.locale, **{k: v for k, v in row.payload.items() if k not in ("group", "text")})
            message = await say(messenger, chat.telegram_chat_id, text)
            session.add(GroupPost(group_chat_id=chat.id, kind=key[:40], sent_at=ctx.clock.now()))
            return Delivered(message.chat_id, message.message_id)

    return send


def next_prompt_at(settings: Settings, now: datetime) -> datetime | None:
    """When the next discussion prompt is due (after `now`), or None when they are off."""
    g, zone = settings.groups, _zone(settings)
    if g.prompt_every == "off":
        return None
    at = parse_hhmm(g.prompt_time)
    day = now.astimezone(zone).date()
    for offset in range(0, 8):
        candidate = day + timedelta(days=offset)
        if g.prompt_every == "weekly" and WEEKDAYS[candidate.weekday()] != g.prompt_day:
            continue
        due = wall_time_to_utc(candidate, at, zone)
        if due > now:
            return due
    return None


async def plan_prompts(session: AsyncSession, settings: Settings, now: datetime) -> int:
    """One prompt row per linked group for the next prompt time (idempotent: keyed by group and
    local date). Returns how many rows were added."""
    due = next_prompt_at(settings, now)
    if due is None:
        return 0
    local_day = due.astimezone(_zone(settings)).date()
    added = 0
    for chat in (await session.scalars(select(GroupChat).where(GroupChat.cohort_id.is_not(None),
                                                              GroupChat.bot_status.not_in(["left", "kicked"])))).all():
        later = quiet_until(settings, due) or due
        added += await enqueue(session, kind=POST, key=f"{POST}:{chat.id}:prompt:{local_day.isoformat()}",
                               due_at=later, intended_at=due, payload={"group": chat.id, "text": PROMPT}, now=now)
    return added


async def prune_posts(session: AsyncSession, now: datetime) -> int:
    """Posts older than a day are no longer counted for anything."""
    result = await session.execute(delete(GroupPost).where(GroupPost.sent_at < now - timedelta(days=1)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def posts_in_window(session: AsyncSession, chat: GroupChat, now: datetime) -> int:
    return int(await session.scalar(select(func.count()).select_from(GroupPost).where(
        GroupPost.group_chat_id == chat.id, GroupPost.sent_at > now - WINDOW)) or 0)
