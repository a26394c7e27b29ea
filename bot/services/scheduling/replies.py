"""An update's replies, durable with its commit: a `reply` row of the outbox, written in the
update's own transaction and removed once the replies went out.

Without it, a worker killed (SIGKILL, OOM, a lost machine) after an update's commit and before its
replies were sent lost them for good: the update was marked handled, so Telegram's redelivery (the
webhook got no 200) or the next poller skipped it as a duplicate, and the participant heard
nothing. Now the unit of work writes what it will say as one `scheduled_actions` row (kind
`reply`), already claimed by this worker with a lease, in the same transaction as everything the
update changed. After the commit the worker sends the replies itself at once and deletes the row
(`ReplyLedger`: one DELETE for every reply finished meanwhile, so under load many rows cost one
statement). If it dies first, the row's lease runs out and whichever worker's outbox claims it
next sends the replies (`send_cut_replies`, registered as the `reply` kind): once, since the claim
is exclusive and a worker still sending renews its lease before it runs out.

What remains is the moment between Telegram's 200 for a message and the row's deletion (a few
milliseconds): a kill exactly then repeats that message once, as for any outbox row. A reply of
several messages records how far it got after each message with another one after it, so a cut
reply resumes where it stopped. Edits are not counted (repeating one changes nothing).

The texts are kept encrypted like a participant's own words when a data key is set (they can hold
a person's goals, notes or an export), and only until they are sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, insert, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.context import AppContext
from bot.db.models import ActionStatus, ScheduledAction
from bot.db.types import EncryptedText
from bot.messaging import (
    Button,
    Document,
    Edit,
    Keyboard,
    Messenger,
    NotDelivered,
    Outgoing,
    Photo,
    Text,
    Unreachable,
)
from bot.services.scheduling.outbox import Handled

log = logging.getLogger(__name__)

REPLY_KIND = "reply"
_TEXT = EncryptedText()


def reply_key(update_id: int) -> str:
    return f"reply:{update_id}"


def _keyboard(keyboard: Keyboard | None) -> list[list[list[str | None]]] | None:
    if keyboard is None:
        return None
    return [[[b.text, b.callback_data, b.url] for b in row] for row in keyboard.inline_keyboard]


def _unkeyboard(rows: list[list[list[str | None]]] | None) -> Keyboard | None:
    if rows is None:
        return None
    return Keyboard(tuple(tuple(Button(str(t), callback_data=c, url=u) for t, c, u in row) for row in rows))


def encode(items: Sequence[Outgoing]) -> str:
    """The replies as JSON (files as base64)."""
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, Text):
            out.append({"t": "text", "chat": item.chat_id, "text": item.text, "kb": _keyboard(item.keyboard),
                        "urgent": item.urgent})
        elif isinstance(item, Edit):
            out.append({"t": "edit", "chat": item.chat_id, "msg": item.message_id, "text": item.text,
                        "kb": _keyboard(item.keyboard)})
        else:
            out.append({"t": "photo" if isinstance(item, Photo) else "document", "chat": item.chat_id,
                        "name": item.filename, "data": base64.b64encode(item.content).decode(),
                        "caption": item.caption})
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


def decode(raw: str) -> list[Outgoing]:
    items: list[Outgoing] = []
    for d in json.loads(raw):
        kind = d["t"]
        if kind == "text":
            items.append(Text(d["chat"], d["text"], _unkeyboard(d["kb"]), bool(d["urgent"])))
        elif kind == "edit":
            items.append(Edit(d["chat"], d["msg"], d["text"], _unkeyboard(d["kb"])))
        else:
            kind_of = Photo if kind == "photo" else Document
            items.append(kind_of(d["chat"], d["name"], base64.b64decode(d["data"]), d["caption"]))
    return items


def _repeats_harmlessly(item: Outgoing) -> bool:
    return isinstance(item, Edit)  # the same text again: "message is not modified"


@dataclass
class DurableReplies:
    """The reply row of one update, written by its unit of work: who holds it and until when."""

    key: str
    token: str
    written_at: datetime
    lease: timedelta
    sent: int = 0  # items already sent (a cut reply resumes after them)


async def write_replies(session: AsyncSession, update_id: int, items: Sequence[Outgoing], *, now: datetime,
                        lease: timedelta, token: str) -> DurableReplies:
    """Write `items` as the update's reply row in `session`'s transaction, claimed by `token` until
    `now + lease` (the worker sends them itself after the commit; after the lease anyone may)."""
    dialect = session.get_bind().dialect
    key = reply_key(update_id)
    await session.execute(_INSERT_REPLY, dict(
        kind=REPLY_KIND, key=key, due_at=now, intended_at=now, status=ActionStatus.CLAIMED,
        lease_until=now + lease, claimed_by=token, attempts=1, chat_id=getattr(items[0], "chat_id", None),
        created_at=now, payload={"items": _TEXT.process_bind_param(encode(items), dialect), "sent": 0}))
    return DurableReplies(key, token, now, lease)


# One statement object: compiled once, then only its parameters change (building it per update cost
# as much as running it). On the table, not the mapped class: the ORM's bulk-insert path around it
# cost more than the insert itself, and the row is never read back as an object here.
_INSERT_REPLY = insert(cast(Table, ScheduledAction.__table__))


async def still_ours(ctx: AppContext, durable: DurableReplies) -> bool:
    """Before a reply that waited long (half its lease) is sent: renew the lease while this worker
    still holds the row; False when it ran out and another worker took the replies over."""
    now = ctx.clock.now()
    async with ctx.sessionmaker() as session:
        result = await session.execute(
            update(ScheduledAction)
            .where(ScheduledAction.key == durable.key, ScheduledAction.claimed_by == durable.token,
                   ScheduledAction.status == ActionStatus.CLAIMED)
            .values(lease_until=now + durable.lease))
        await session.commit()
    if result.rowcount:  # type: ignore[attr-defined]
        durable.written_at = now
        return True
    return False


async def record_progress(ctx: AppContext, durable: DurableReplies, items: Sequence[Outgoing]) -> None:
    """After a message of a reply with another message to come: how far it got, so a cut reply
    resumes after it instead of repeating it."""
    async with ctx.sessionmaker() as session:
        dialect = session.get_bind().dialect
        await session.execute(
            update(ScheduledAction)
            .where(ScheduledAction.key == durable.key, ScheduledAction.claimed_by == durable.token)
            .values(payload={"items": _TEXT.process_bind_param(encode(items), dialect), "sent": durable.sent}))
        await session.commit()


def worth_recording(items: Sequence[Outgoing], sent: int) -> bool:
    """A message was just sent as item `sent - 1`: is a repeat of it still possible to cause, i.e.
    does a message that is not an edit come after it, and was it one itself?"""
    return not _repeats_harmlessly(items[sent - 1]) and any(not _repeats_harmlessly(i) for i in items[sent:])


async def send_cut_replies(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                           row: ScheduledAction) -> Handled:
    """The outbox's sender for a `reply` row whose lease ran out: the worker that wrote it died
    (or could not send) before the replies went out. Sends what was not sent yet, then deletes the
    row (the outbox's "sent" update then finds nothing to change)."""
    payload = row.payload or {}
    raw = _TEXT.process_result_value(payload.get("items"), session.get_bind().dialect) or "[]"
    items = decode(raw)[int(payload.get("sent", 0)):]
    failed = 0
    for item in items:
        try:
            await messenger.send(item)
        except Unreachable:
            failed += 1
            break  # blocked or left: the rest cannot arrive either
        except NotDelivered as exc:
            failed += 1
            log.warning("a cut reply's %s was not delivered: %s", type(item).__name__, str(exc)[:120])
    await session.execute(delete(ScheduledAction).where(ScheduledAction.id == row.id))
    log.info("reply row %s (written by a worker that stopped before sending it) sent: %d message(s), %d failed",
             row.id, len(items) - failed, failed)
    return Handled(status=ActionStatus.SENT, wake=False)


class ReplyLedger:
    """Deletes the reply rows of replies sent, in one statement for every reply finished since the
    last (group commit): idle, each goes at once; under load, many rows cost one statement.
    `done` returns once its row is deleted, so a finished update leaves nothing to recover."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self._pending: list[tuple[str, asyncio.Future[None]]] = []
        self._running: asyncio.Task[None] | None = None
        self.statements = 0

    async def done(self, key: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((key, future))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._flush(), name="reply-ledger")
        await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._delete(key for key, _ in batch)
            except Exception as exc:  # the rows stay: sent again after their lease (a repeat, never a loss)
                log.warning("could not delete %d sent reply row(s) (%s)", len(batch), type(exc).__name__)
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def _delete(self, keys: Iterable[str]) -> None:
        self.statements += 1
        async with self.sessionmaker() as session:
            await session.execute(delete(ScheduledAction).where(ScheduledAction.key.in_(list(keys)))
                                  .execution_options(synchronize_session=False))
            await session.commit()

    async def close(self) -> None:
        """Wait for the deletions in progress (a clean stop)."""
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)
