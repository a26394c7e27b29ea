"""Outer middlewares: one unit of work per update, and who is asking.

Order (outermost first, after aiogram's own): SafetyGate (no database: the crisis reply must go
out even when the database is down) → UnitOfWork (dedup by update_id and the person's lock in one
statement, one session, one commit with the replies written into it, replies sent after the commit)
→ Actor (staff, participant or unknown; locale).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject, Update
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.content.i18n import locale_for
from bot.context import AppContext
from bot.db.models import Participant, Staff
from bot.db.types import UTCDateTime
from bot.messaging import NotDelivered, Replies
from bot.services.delivery import wrote_again
from bot.services.inbound import who_is_writing
from bot.services.scheduling.outbox import database_unavailable
from bot.services.scheduling.replies import (
    DurableReplies,
    ReplyLedger,
    record_progress,
    still_ours,
    worth_recording,
    write_replies,
)
from bot.services.scheduling.workers import PARTICIPANT_LOCK_NAMESPACE, participant_lock_key
from bot.telegram.filters import is_private
from bot.telegram.lanes import DEFAULT_DATABASE_SLOTS, Ticket, UpdateLanes
from bot.telegram.messenger import TelegramMessenger
from bot.telegram.polling import SETTLED
from bot.telegram.storage import current_session, preloaded, private_chat_key

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

# After a unit of work wrote a page due now, ordinary updates wait to start theirs until a page is
# sent, this long at most: the outbox claims and sends a page in a few tens of milliseconds when
# nothing else writes meanwhile (on an overloaded machine, up to a second or two).
PAGE_HOLD_SECONDS = 2.0


async def claim_update(session: AsyncSession, update_id: int, telegram_user_id: int | None, now: datetime) -> bool:
    """An update's first statement, before any dialog state is read: on PostgreSQL, the sender's
    transaction-level advisory lock, then the update's id, in one statement (one round trip). Two
    updates of one person handled on two workers run one after the other, each reading the dialog
    state the other left (the lock is released at commit); a duplicate (Telegram's redelivery, or
    the same update on another worker) waits for that lock, finds its id and is skipped (False:
    nothing done). SQLite has one process, where DatabaseRetryMiddleware's per-person lanes already
    order a person's updates; there the statement is only the insert."""
    values = {"update_id": update_id, "received_at": now}
    if telegram_user_id is not None and session.get_bind().dialect.name == "postgresql":
        result = await session.execute(_CLAIM_LOCKED, {**values, "namespace": PARTICIPANT_LOCK_NAMESPACE,
                                                       "key": participant_lock_key(telegram_user_id)})
    else:
        result = await session.execute(_CLAIM, values)
    return bool(result.rowcount)  # type: ignore[attr-defined]


# The lock is taken as the SELECT produces the row, before the insert meets a duplicate's id.
_CLAIM_LOCKED = text(
    "INSERT INTO processed_updates (update_id, received_at) "
    "SELECT :update_id, :received_at FROM (SELECT pg_advisory_xact_lock(:namespace, :key)) AS person "
    "ON CONFLICT (update_id) DO NOTHING").bindparams(bindparam("received_at", type_=UTCDateTime()))
_CLAIM = text("INSERT INTO processed_updates (update_id, received_at) VALUES (:update_id, :received_at) "
              "ON CONFLICT (update_id) DO NOTHING").bindparams(bindparam("received_at", type_=UTCDateTime()))


class UnitOfWorkMiddleware(BaseMiddleware):
    """One session, one transaction, one commit per update; then its replies are sent.

    The replies are written with the commit (bot/services/scheduling/replies.py): a reply row
    claimed by this worker, sent right after the commit and then deleted. A worker killed in
    between leaves the row, and the outbox of any worker sends it once its lease runs out: the
    update's redelivery is a skipped duplicate, and the reply still arrives, once."""

    def __init__(self, ctx: AppContext, ledger: ReplyLedger | None = None) -> None:
        self.ctx = ctx
        self.ledger = ledger or ReplyLedger(ctx.sessionmaker)
        self.token = f"replies:{secrets.token_hex(8)}"  # this process's claim on the reply rows it writes

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        messenger = TelegramMessenger(data["bot"])
        replies = Replies(callback_query_id=event.callback_query.id if event.callback_query else None)
        data["replies"] = replies
        ticket: Ticket | None = data.get("lane")
        durable: DurableReplies | None = None
        try:
            # A slot for the database work (DatabaseRetryMiddleware's lanes; flagged updates first),
            # held until the commit and not while the replies wait for the sender.
            async with (ticket.database() if ticket is not None else contextlib.nullcontext(),
                        self.ctx.sessionmaker() as session):
                token = current_session.set(session)
                try:
                    user = data.get("event_from_user")
                    if not await claim_update(session, event.update_id, user.id if user else None,
                                              self.ctx.clock.now()):
                        log.info("update %s already handled; skipped", event.update_id)
                        replies.clear()
                        # Handled by a worker that may have died before sending the replies: the
                        # outbox sends them once their lease runs out (now, if it has).
                        self.ctx.wake_outbox()
                        return None
                    data["session"] = session
                    result = await handler(event, data)
                    if replies.items:
                        durable = await write_replies(
                            session, event.update_id, replies.items, now=self.ctx.clock.now(),
                            lease=timedelta(seconds=self.ctx.settings.schedule.lease_seconds), token=self.token)
                    await session.commit()
                finally:
                    current_session.reset(token)
        except BaseException:
            # Whatever failed, the participant's button must stop spinning.
            await messenger.answer_callback(replies)
            raise
        if ticket is not None:
            ticket.committed()  # the person's flagged next update may start its database work
        settled = data.get(SETTLED)
        if settled is not None:
            settled()  # committed, replies with it: the poller may confirm it to Telegram
        if replies.outbox_due:
            # Before the replies: a clinician's page written in this unit of work must not wait
            # until this update's ordinary replies got through the sender's queue, nor behind the
            # backlog's transactions while it is claimed and sent.
            if ticket is not None and ticket.page_due:
                ticket.hold_others(PAGE_HOLD_SECONDS)
            self.ctx.wake_outbox()
        await self._deliver(messenger, replies, durable)
        return result

    async def _deliver(self, messenger: TelegramMessenger, replies: Replies, durable: DurableReplies | None) -> None:
        """Answer the button, then send every reply in order. A failure is logged (the sender already
        retried and recorded it) and the rest still go. Then the reply row goes."""
        await messenger.answer_callback(replies)
        items, replies.items = list(replies.items), []
        # Under a backlog a reply may wait longer than its row's lease for its turn of the send rate;
        # the lease is renewed meanwhile, or another worker's outbox would send it too.
        keeper = _LeaseKeeper(self, durable) if durable is not None else None
        try:
            for item in items:
                if durable is not None and keeper is not None and (keeper.lost or (
                        self.ctx.clock.now() - durable.written_at > durable.lease / 2
                        and not await self._still_ours(durable))):
                    log.warning("replies of %s were taken over by another worker (their lease ran out); "
                                "not sent here", durable.key)
                    return
                try:
                    await messenger.send(item)
                except NotDelivered as exc:
                    log.warning("reply not delivered (%s): %s", type(item).__name__, str(exc)[:120])
                if durable is not None:
                    durable.sent += 1
                    if worth_recording(items, durable.sent):
                        with contextlib.suppress(Exception):  # only narrows a repeat after a crash
                            await record_progress(self.ctx, durable, items)
            if durable is not None:
                await self.ledger.done(durable.key)
        finally:
            if keeper is not None:
                keeper.stop()

    async def _still_ours(self, durable: DurableReplies) -> bool:
        try:
            return await still_ours(self.ctx, durable)
        except Exception as exc:  # the database is away: send (a repeat at worst, never a loss)
            log.warning("could not renew the lease of %s (%s); sending", durable.key, type(exc).__name__)
            return True


class _LeaseKeeper:
    """Renews a reply row's lease every third of it (in real seconds) while its replies are being
    delivered: a timer per update, which under no backlog is cancelled before it fires."""

    def __init__(self, unit: UnitOfWorkMiddleware, durable: DurableReplies) -> None:
        self.unit, self.durable = unit, durable
        self.every = durable.lease.total_seconds() / 3
        self.lost = False
        self._stopped = False
        self._task: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(self.every, self._renew)

    def _renew(self) -> None:
        self._task = asyncio.create_task(self._run(), name="reply-lease")

    async def _run(self) -> None:
        if not self._stopped:
            self.lost = not await self.unit._still_ours(self.durable)
        if not self._stopped and not self.lost:
            self._timer = asyncio.get_running_loop().call_later(self.every, self._renew)

    def stop(self) -> None:
        self._stopped = True
        self._timer.cancel()


class DatabaseRetryMiddleware(BaseMiddleware):
    """Holds an update and tries it again while the database cannot be reached (down, restarting,
    locked, pool exhausted), instead of dropping it: polling has already confirmed it to Telegram,
    so a dropped update is lost (a crisis message would have had its reply, but never reach a
    clinician). Register it after the safety gate and before aiogram's FSM middleware (the first
    to read the database); one person's updates stay in order while they wait.

    It also puts each update in its lane (bot/telegram/lanes.py): one update at a time per person,
    at most `lanes.limit` in their database work at a time, and one the safety gate flagged ahead
    of the backlog, so its page is written and sent at once however many updates are waiting."""

    def __init__(self, retry_for_seconds: float = 600.0, lanes: UpdateLanes | None = None) -> None:
        self.retry_for_seconds = retry_for_seconds
        self.lanes = lanes or UpdateLanes(limit=DEFAULT_DATABASE_SLOTS)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        chat, user = data.get("event_chat"), data.get("event_from_user")
        key = (chat.id if chat else None, user.id if user else None)
        # A flagged message (crisis reply already sent) goes first, and is never given up: dropping
        # it would mean no clinician is ever paged for it.
        flagged = bool(getattr(data.get("assessment"), "flagged", False))
        loop = asyncio.get_running_loop()
        give_up_at, delay = loop.time() + self.retry_for_seconds, 0.5
        ticket = self.lanes.ticket(key, urgent=flagged)
        try:
            await ticket.turn()
            while True:
                try:
                    # A failed attempt's additions stay behind.
                    return await handler(event, {**data, "lane": ticket})
                except Exception as exc:
                    if not database_unavailable(exc):
                        raise
                    if loop.time() + delay > give_up_at and not flagged:
                        log.error("update %s dropped: the database was unavailable for %.0f s",
                                  getattr(event, "update_id", "?"), self.retry_for_seconds)
                        raise
                    log.warning("update %s: database unavailable (%s); trying again in %.1f s",
                                getattr(event, "update_id", "?"), type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        finally:
            ticket.finish()


class ActorMiddleware(BaseMiddleware):
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        chat = data.get("event_chat")
        if chat is not None and not is_private(chat) and chat.type not in ("group", "supergroup"):
            # Private chats and groups only (a channel is ignored). A group's updates reach only the
            # groups router (bot/telegram/handlers/groups.py, first), which never answers in the
            # group: a person's export, notes or caseload must not go to everyone there.
            log.info("update %s from a %s chat ignored", getattr(event, "update_id", "?"), chat.type)
            return None
        user = data.get("event_from_user")
        actor: Staff | Participant | None = None
        if user is not None:
            session = data["session"]
            key = private_chat_key(data["bot"].id, chat.id, user.id) if chat is not None else None
            writer = await who_is_writing(session, user.id, key)
            if key is not None:
                preloaded(session, key, writer.dialog_state)  # aiogram's FSM reads it next, at no cost
            actor = writer.actor
            data["open_alert"] = writer.open_alert
            data["open_flow"] = writer.open_flow  # the flow router's typed-text filter reads this
            # The safety gate's memory of who is who (it runs before any database) follows what the
            # database says now: a staff member deactivated, or someone who left, is forgotten.
            if actor is None:
                self.ctx.directory.forget(user.id)
            else:
                self.ctx.directory.remember(user.id, actor)
        data["actor"] = actor
        if (isinstance(actor, Staff | Participant) and actor.unreachable_at is not None and chat is not None
                and is_private(chat)
                and isinstance(event.event if isinstance(event, Update) else event, Message | CallbackQuery)):
            await wrote_again(data["session"], self.ctx, actor)  # they unblocked the bot: page, plan again
        if isinstance(actor, Staff | Participant):
            data["locale"] = actor.locale
        else:
            data["locale"] = locale_for(user.language_code if user else None, self.ctx.settings.program.default_locale)
        data["ctx"] = self.ctx
        return await handler(event, data)
