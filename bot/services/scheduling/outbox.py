"""The outbox and scheduler: due rows are claimed with a lease, sent, and only then marked sent.

Any number of worker processes may run this: on PostgreSQL rows are claimed with
`FOR UPDATE SKIP LOCKED`; on SQLite (one writer at a time) the same conditional UPDATE makes a
claim exclusive. A crash after Telegram's 200 and before "sent" is written yields at most one
duplicate once the lease runs out, never a loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, true, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import ActionStatus, ScheduledAction
from bot.messaging import Messenger, NotDelivered, Unreachable
from bot.services.scheduling.rows import enqueue  # noqa: F401 - re-exported for the services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivered:
    chat_id: int | None = None
    message_id: int | None = None
    # The sender wrote rows that are due now (e.g. the line to the participant after a page):
    # wake the scheduler once this transaction is committed.
    wake: bool = False


@dataclass(frozen=True)
class Handled:
    """The row is finished without a message of its own, and what the sender wrote is kept (unlike
    `Skip`, which rolls it back): a page to someone who cannot be reached, with the page to the
    next person in the same commit; a plan that added rows of its own. `retry`: the row is due
    again after a back-off (a delivery that may still work later); `status` is used otherwise."""

    status: str = ActionStatus.CANCELLED
    note: str = ""
    retry: bool = False
    wake: bool = True


# A kind's sender: render the row, send it, say what was delivered. Raise to fail or retry.
ActionSender = Callable[[AppContext, Messenger, AsyncSession, ScheduledAction], Awaitable[Delivered | Handled | None]]


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or is busy (down, restarting, connection cut, locked, pool
    exhausted), as opposed to a statement it refused: worth trying again, never a reason to drop."""
    if isinstance(exc, OSError | sa_exc.TimeoutError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and not isinstance(
        exc, sa_exc.IntegrityError | sa_exc.DataError | sa_exc.ProgrammingError | sa_exc.NotSupportedError)


class Skip(Exception):
    """The row no longer applies (e.g. the alert was acknowledged): cancel it, say why."""


def _claimable(now: datetime) -> Any:
    return or_(
        and_(ScheduledAction.status == ActionStatus.PENDING, ScheduledAction.due_at <= now),
        and_(ScheduledAction.status == ActionStatus.CLAIMED, ScheduledAction.lease_until < now),
    )


async def claim_due(session: AsyncSession, now: datetime, lease: timedelta, limit: int, *,
                    kinds: frozenset[str] | None = None, not_kinds: frozenset[str] | None = None,
                    not_ids: Collection[int] = ()) -> list[ScheduledAction]:
    """Claim up to `limit` due rows for this worker: of `kinds` (default any), not of `not_kinds`,
    not the rows `not_ids` this process is still sending. Commits, so the lease is visible to others."""
    of_kind = and_(ScheduledAction.kind.in_(kinds) if kinds else true(),
                   ScheduledAction.kind.not_in(not_kinds) if not_kinds else true(),
                   ScheduledAction.id.not_in(not_ids) if not_ids else true())
    # Two ordered index scans, not one query with OR: with the OR, SQLite (and PostgreSQL) read and
    # sorted every due row for each batch, so a wave of N rows cost O(N^2). Leases that ran out
    # (rows a crashed worker held) first, then pending rows by due time.
    ids: list[int] = []
    for status, due in ((ActionStatus.CLAIMED, ScheduledAction.lease_until < now),
                        (ActionStatus.PENDING, ScheduledAction.due_at <= now)):
        ids += (await session.scalars(
            select(ScheduledAction.id).where(ScheduledAction.status == status, due, of_kind)
            .order_by(ScheduledAction.due_at).limit(limit - len(ids)).with_for_update(skip_locked=True))).all()
        if len(ids) >= limit:
            break
    if not ids:
        await session.commit()
        return []
    token = uuid.uuid4().hex
    await session.execute(
        update(ScheduledAction)
        .where(ScheduledAction.id.in_(ids), _claimable(now))
        .values(status=ActionStatus.CLAIMED, lease_until=now + lease, claimed_by=token,
                attempts=ScheduledAction.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    rows = (await session.scalars(select(ScheduledAction).where(  # by primary key: claimed_by has no index
        ScheduledAction.id.in_(ids), ScheduledAction.claimed_by == token))).all()
    return list(rows)


# A planner: runs before each tick's claim (and at most once a tick in the running bot), e.g. to
# materialize the coming check-ins as rows. Its argument is the clock's "now".
Planner = Callable[[datetime], Awaitable[None]]
# A periodic job (housekeeping): its argument is the clock's "now"; what it returns is ignored.
PeriodicJob = Callable[[datetime], Awaitable[object]]


class OutboxWorker:
    """Runs the tick: claims due rows and sends them through the rate-limited sender.

    Features plug in through `register` (a kind of row and its sender) and `add_planner`; the
    composition root (bot/runtime.py `assemble`) calls their `install_*` functions once.

    The periodic tick is an interval job of an APScheduler `AsyncIOScheduler` (in-memory job store,
    started by `run_forever`): it only wakes the loop, so the rows in the database stay the one
    source of truth for what is due. A row due now (`ctx.wake_outbox()`) wakes the loop at once,
    and pages at once on a lane of their own, without waiting for the interval. Tests move a manual
    clock and call `tick()` themselves.
    """

    # A page that could not be delivered is tried again this soon (other rows back off 30 s a try).
    URGENT_RETRY_SECONDS = 5.0

    def __init__(self, ctx: AppContext, messenger: Messenger, *, concurrency: int = 64) -> None:
        self.ctx = ctx
        self.messenger = messenger
        self.concurrency = concurrency
        self.wakeup = asyncio.Event()
        self.urgent_wakeup = asyncio.Event()
        ctx.outbox_wakeups += [self.wakeup, self.urgent_wakeup]
        self._senders: dict[str, ActionSender] = {}
        self._planners: list[tuple[str, Planner]] = []
        self._periodic: list[tuple[str, float, PeriodicJob]] = []
        self._never_expire: set[str] = set()
        self._urgent: set[str] = set()
        self._plan_due = True
        self.stopping = False
        self._pages_in_flight: dict[int, asyncio.Task[None]] = {}

    def register(self, kind: str, sender: ActionSender, *, never_expire: bool = False, urgent: bool = False) -> None:
        """Rows of `kind` are sent by `sender`. `never_expire`: sent however late (a late alert to a
        clinician is still better than none), instead of expiring after the grace period.
        `urgent`: a lane of its own, ahead of everything else in the rate limit (a clinician's page
        must not wait behind a batch of 9:00 check-ins, which can take a minute to send)."""
        if kind in self._senders:
            raise ValueError(f"two senders registered for {kind!r} rows")
        self._senders[kind] = sender
        if never_expire:
            self._never_expire.add(kind)
        if urgent:
            self._urgent.add(kind)

    def add_planner(self, name: str, tick: Planner) -> None:
        """Run `tick(now)` before each tick's claim, in the order added (`name`: for the log)."""
        self._planners.append((name, tick))

    def add_periodic(self, name: str, every_seconds: float, job: PeriodicJob) -> None:
        """Run `job(now)` every `every_seconds` while the bot runs (housekeeping such as pruning,
        on its own APScheduler interval job rather than each tick). A job that fails is logged and
        runs again at its next interval; it never stops the outbox."""
        if every_seconds <= 0:
            raise ValueError(f"{name}: every_seconds must be positive, got {every_seconds}")
        self._periodic.append((name, every_seconds, job))

    async def run_periodic(self, name: str, job: PeriodicJob) -> None:
        try:
            await job(self.ctx.clock.now())
        except Exception:
            log.exception("periodic job %s failed; it runs again at its next interval", name)

    @property
    def urgent(self) -> frozenset[str]:
        """The kinds sent on the urgent lane (pages and what goes with them)."""
        return frozenset(self._urgent)

    @property
    def never_expire(self) -> frozenset[str]:
        """The kinds sent however late they are."""
        return frozenset(self._never_expire)

    async def run_forever(self) -> None:
        """Tick until `stop()`; pages go out on a lane of their own meanwhile."""
        # Imported here: only the running bot needs it (a tenth of a second for every CLI command).
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        scheduler = AsyncIOScheduler(timezone=UTC)  # in-memory job store: the rows are the schedule
        # Late or not, the tick runs once (coalesce) and never twice at a time; never skipped as
        # "missed" when the loop is busy (a check-in wave), as APScheduler would after 1 s by default.
        scheduler.add_job(self._interval_elapsed, IntervalTrigger(seconds=self.ctx.settings.schedule.tick_seconds),
                          id="outbox-tick", coalesce=True, max_instances=1, misfire_grace_time=None)
        for name, every, job in self._periodic:
            scheduler.add_job(self.run_periodic, IntervalTrigger(seconds=every), args=(name, job), id=name,
                              coalesce=True, max_instances=1, misfire_grace_time=None)
        scheduler.start()
        urgent = asyncio.create_task(self._run_urgent_lane(), name="scheduler-urgent")
        try:
            while not self.stopping:
                # The planners (every participant's coming check-ins) run once a tick, not on each
                # wake-up: a wake-up means "something is due now" and should cost only the claim.
                plan, self._plan_due = self._plan_due, False
                try:
                    await self.tick(plan=plan, pages=False)
                except Exception:
                    # The database may be restarting: log, wait a tick, try again. Nothing is lost.
                    log.exception("scheduler tick failed; retrying")
                    self._plan_due = self._plan_due or plan
                await self._wait(self.wakeup)
            await urgent  # stopping: pages already being sent finish
        finally:
            scheduler.shutdown(wait=False)
            urgent.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await urgent

    async def _interval_elapsed(self) -> None:
        """The scheduler's interval job: plan on the next pass, and look for rows that came due
        with time (nobody woke us for those)."""
        self._plan_due = True
        self.wakeup.set()
        self.urgent_wakeup.set()

    def stop(self) -> None:
        """Claim nothing more; rows claimed but not yet started go back to pending for the next
        process (instead of waiting out their lease); rows being sent finish."""
        self.stopping = True
        self.wakeup.set()
        self.urgent_wakeup.set()

    async def _run_urgent_lane(self) -> None:
        while not self.stopping:
            try:
                await self.send_pages(wait=False)
            except Exception:
                log.exception("urgent lane failed; retrying")
            await self._wait(self.urgent_wakeup)
        await asyncio.gather(*self._pages_in_flight.values(), return_exceptions=True)

    @staticmethod
    async def _wait(wakeup: asyncio.Event) -> None:
        """Until woken: by a row due now, by `stop()`, or by the scheduler's interval job."""
        await wakeup.wait()
        wakeup.clear()

    async def send_pages(self, *, wait: bool = True) -> int:
        """Claim the due pages and send each on its own task: a page stuck on retries holds up no
        other page. Rows still being sent by this process are not claimed again."""
        if not self._urgent:  # no kinds means any kind to `claim_due`
            return 0
        s = self.ctx.settings.schedule
        async with self.ctx.sessionmaker() as session:
            rows = await claim_due(session, self.ctx.clock.now(), timedelta(seconds=s.lease_seconds), s.batch_size,
                                   kinds=self.urgent, not_ids=list(self._pages_in_flight))
        tasks = []
        for row in rows:
            task = asyncio.create_task(self._process(row), name=f"page-{row.id}")
            self._pages_in_flight[row.id] = task
            task.add_done_callback(functools.partial(self._page_done, row.id))
            tasks.append(task)
        if wait:
            await asyncio.gather(*tasks)
        return len(rows)

    def _page_done(self, row_id: int, _task: asyncio.Task[None]) -> None:
        self._pages_in_flight.pop(row_id, None)

    async def tick(self, plan: bool = True, pages: bool = True) -> int:
        """One pass: run the planners, then send everything due (`pages`: the pages too, as tests
        and the sandbox clock want; the running bot sends them on their own lane). Returns how many
        rows it handled."""
        now = self.ctx.clock.now()
        if plan:
            for name, planner in self._planners:
                try:
                    await planner(now)
                except Exception as exc:
                    exc.add_note(f"in the {name} planner")
                    raise
        s = self.ctx.settings.schedule
        handled = 0
        while pages:
            # A page to someone unreachable adds the next person's page, due now: send it too.
            sent = await self.send_pages()
            handled += sent
            if not sent or self.stopping:
                break
        # Sends run concurrently so the rate limiter, not one slow chat, sets the pace.
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(row: ScheduledAction) -> None:
            async with semaphore:
                await self._process(row)

        # Never claim more than the sender can send in half a lease: a row still queued behind the
        # rate limit when its lease runs out would be claimed and sent again by another worker.
        sendable = int(self.ctx.settings.sender.messages_per_second * s.lease_seconds / 2)
        limit = max(1, min(s.batch_size, sendable))
        while not self.stopping:
            async with self.ctx.sessionmaker() as session:
                rows = await claim_due(session, self.ctx.clock.now(), timedelta(seconds=s.lease_seconds), limit,
                                       not_kinds=self.urgent)
            if not rows:
                break
            await asyncio.gather(*(one(row) for row in rows))
            handled += len(rows)
        return handled

    async def _handed_back(self, row: ScheduledAction) -> bool:
        """When stopping, a row not started yet goes back to pending at once, so that the next
        process sends it without waiting out the lease. Pages are always sent."""
        if not self.stopping or row.kind in self._urgent:
            return False
        await self._finish(row.id, row.claimed_by, status=ActionStatus.PENDING)
        return True

    async def _still_ours(self, row: ScheduledAction) -> bool:
        """Just before sending: renew the lease if this worker still holds the row. False when the
        lease ran out while it waited and another worker took it (sending would duplicate it)."""
        lease = timedelta(seconds=self.ctx.settings.schedule.lease_seconds)
        async with self.ctx.sessionmaker() as session:
            result = await session.execute(
                update(ScheduledAction)
                .where(ScheduledAction.id == row.id, ScheduledAction.claimed_by == row.claimed_by,
                       ScheduledAction.status == ActionStatus.CLAIMED)
                .values(lease_until=self.ctx.clock.now() + lease))
            await session.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _finish(self, row_id: int, token: str | None, **values: Any) -> None:
        async with self.ctx.sessionmaker() as session:
            await session.execute(
                update(ScheduledAction)
                .where(ScheduledAction.id == row_id, ScheduledAction.claimed_by == token)
                .values(lease_until=None, **values)
            )
            await session.commit()

    def _handled_values(self, row: ScheduledAction, handled: Handled, now: datetime) -> dict[str, Any]:
        if not handled.retry:
            return dict(status=handled.status, last_error=handled.note[:300] or None)
        if row.attempts >= 5:
            return dict(status=ActionStatus.FAILED, last_error=handled.note[:300] or None)
        wait = self.URGENT_RETRY_SECONDS if row.kind in self._urgent else 30.0
        return dict(status=ActionStatus.PENDING, last_error=handled.note[:300] or None,
                    due_at=now + timedelta(seconds=wait * row.attempts))

    async def _process(self, row: ScheduledAction) -> None:
        now = self.ctx.clock.now()
        grace = timedelta(minutes=self.ctx.settings.schedule.grace_minutes)
        if row.kind not in self._never_expire and row.due_at < now - grace:
            # Due while we were down for longer than the grace period: visible, never silently dropped.
            await self._finish(row.id, row.claimed_by, status=ActionStatus.EXPIRED,
                               last_error="missed its grace period")
            return
        sender = self._senders.get(row.kind)
        if sender is None:
            await self._finish(row.id, row.claimed_by, status=ActionStatus.FAILED,
                               last_error=f"no sender for {row.kind}")
            return
        if await self._handed_back(row):
            return
        try:
            # A row waits for the rate limit before its transaction opens (Messenger.turn).
            async with self.messenger.turn(urgent=row.kind in self._urgent):
                if await self._handed_back(row):
                    return
                if not await self._still_ours(row):
                    log.warning("%s row %s was taken over by another worker; not sent here", row.kind, row.id)
                    return
                async with self.ctx.sessionmaker() as session:
                    delivered = await sender(self.ctx, self.messenger, session, row)
                    # "Sent" is written with whatever the sender recorded, in one transaction.
                    if isinstance(delivered, Handled):
                        values = self._handled_values(row, delivered, now)
                    else:
                        values = dict(status=ActionStatus.SENT, sent_at=self.ctx.clock.now(),
                                      chat_id=delivered.chat_id if delivered else None,
                                      telegram_message_id=delivered.message_id if delivered else None)
                    await session.execute(
                        update(ScheduledAction)
                        .where(ScheduledAction.id == row.id, ScheduledAction.claimed_by == row.claimed_by)
                        .values(lease_until=None, **values)
                    )
                    await session.commit()
                if delivered is not None and delivered.wake:
                    self.ctx.wake_outbox()
        except Skip as why:
            await self._finish(row.id, row.claimed_by, status=ActionStatus.CANCELLED, last_error=str(why)[:300])
            return
        except Unreachable:
            await self._finish(row.id, row.claimed_by, status=ActionStatus.FAILED, last_error="blocked by the user")
            return
        except (NotDelivered, OSError) as exc:
            # The sender already retried; leave it for a later tick unless it keeps failing.
            reason = (str(exc) if isinstance(exc, NotDelivered) else f"{type(exc).__name__}: {exc}")[:300]
            if row.attempts >= 5:
                await self._finish(row.id, row.claimed_by, status=ActionStatus.FAILED, last_error=reason)
            else:
                await self._finish(row.id, row.claimed_by, status=ActionStatus.PENDING, last_error=reason,
                                   due_at=now + timedelta(seconds=30 * row.attempts))
            return
        except Exception as exc:
            if database_unavailable(exc):
                # Not the row's fault: due again in a moment (or, if even that cannot be written,
                # still claimed: tried again when its lease runs out). Never marked failed for it.
                log.warning("sending %s row %s: database unavailable (%s)", row.kind, row.id, type(exc).__name__)
                with contextlib.suppress(Exception):
                    await self._finish(row.id, row.claimed_by, status=ActionStatus.PENDING,
                                       last_error=f"database unavailable: {type(exc).__name__}"[:300],
                                       due_at=now + timedelta(seconds=5))
                return
            log.exception("sending %s row %s failed", row.kind, row.id)
            await self._finish(row.id, row.claimed_by, status=ActionStatus.FAILED,
                               last_error=f"{type(exc).__name__}"[:300])
            return
