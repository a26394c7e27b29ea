"""Who goes next into the database: one update at a time per person, a bounded number at a time in
all, and a flagged update first.

Under a backlog (more updates arrive than the database work keeps up with) every update used to
wait for a database connection in arrival order, so a crisis message's alert waited behind
seconds of everyday chatter. Here the backlog waits in a queue instead, and an update the safety
gate flagged (its crisis reply already sent) goes to the head of it, so its page is written and
sent at once; the connections left over are the outbox's, which sends the page.

Per person, order is kept: an update starts its database work only after the person's earlier
update has committed. An ordinary update also waits until the earlier one's replies were sent (so
replies come in the order of the messages); a flagged one does not wait for those (its crisis reply
went out before any of them anyway), and while it waits, the person's earlier updates jump the
queue with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Hashable
from typing import Any

# Without a pool size to go by (SQLAlchemy's default pool is 5 connections).
DEFAULT_DATABASE_SLOTS = 4


def database_slots(sessionmaker: Any) -> int:
    """Updates in their database work at a time: the connection pool less two, left for the outbox
    (a page's claim and its send) and the scheduler, so a page never waits for a connection."""
    pool = getattr(sessionmaker.kw.get("bind"), "pool", None)
    size = getattr(pool, "size", None)
    return max(1, size() - 2) if callable(size) else DEFAULT_DATABASE_SLOTS


class _Person:
    __slots__ = ("last", "reserved", "tickets", "urgent")

    def __init__(self) -> None:
        self.last: Ticket | None = None  # the newest ticket: the next one waits for it
        self.urgent = 0  # flagged updates of this person waiting or running
        self.tickets = 0
        # A slot kept for this person's flagged update, handed on by their earlier one as it finished
        # its database work (the backlog must not take it in between).
        self.reserved = False


class Ticket:
    """One update's place: `turn()` (after the person's earlier update), `database()` (a slot; the
    database work inside it), `committed()`, `finish()`."""

    def __init__(self, lanes: UpdateLanes, key: Hashable, person: _Person, previous: Ticket | None,
                 urgent: bool) -> None:
        loop = asyncio.get_running_loop()
        self._lanes, self._key, self._person, self._previous = lanes, key, person, previous
        self.urgent = urgent
        # Set in order: a ticket's `committed_in_order` implies every earlier one's; same for done.
        self.committed_in_order: asyncio.Future[None] = loop.create_future()
        self.done_in_order: asyncio.Future[None] = loop.create_future()
        self._committed = self._finished = False
        # Set when this update opened an alert (its first page due now): once committed, the
        # backlog waits for that page (UnitOfWorkMiddleware calls `hold_others`).
        self.page_due = False

    async def turn(self) -> None:
        """Wait until the person's earlier update has committed (flagged) or is done (ordinary)."""
        previous = self._previous
        if previous is not None:
            await asyncio.shield(previous.committed_in_order if self.urgent else previous.done_in_order)

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[None]:
        """A slot for the database work (one of `limit`); flagged first."""
        await self._lanes._acquire(self)
        try:
            yield
        finally:
            self._lanes._release(self)

    def committed(self) -> None:
        """The database work is over (committed, or given up): a flagged later update may start."""
        if not self._committed:
            self._committed = True
            _after(self._previous, "committed_in_order", self.committed_in_order)

    def finish(self) -> None:
        """Everything is over, replies sent: the person's next update may start."""
        if self._finished:
            return
        self.committed()
        self._finished = True
        _after(self._previous, "done_in_order", self.done_in_order)
        person = self._person
        if self.urgent:
            person.urgent -= 1
        person.tickets -= 1
        if person.reserved and person.urgent == 0:
            person.reserved = False  # the flagged update it was kept for went without it
            self._lanes._release(None)
        if person.tickets == 0:
            self._lanes._people.pop(self._key, None)
        self._previous = None  # no chain of finished tickets kept alive

    def hold_others(self, seconds: float) -> None:
        """This update's page was just committed: ordinary updates wait until a page is sent, for
        `seconds` at most (UpdateLanes.hold_ordinary)."""
        self._lanes.hold_ordinary(seconds)

    @property
    def jumps_the_queue(self) -> bool:
        return self.urgent or self._person.urgent > 0


def _after(previous: Ticket | None, name: str, mine: asyncio.Future[None]) -> None:
    """Resolve `mine` once the previous ticket's future of the same name is resolved."""
    if mine.done():
        return
    theirs: asyncio.Future[None] | None = getattr(previous, name) if previous is not None else None
    if theirs is None or theirs.done():
        _resolve(mine)
    else:
        theirs.add_done_callback(lambda _: _resolve(mine))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Waiter:
    __slots__ = ("future", "ticket")

    def __init__(self, future: asyncio.Future[None], ticket: Ticket) -> None:
        self.future, self.ticket = future, ticket


class UpdateLanes:
    """At most `limit` updates in their database work at a time; flagged updates (and the earlier
    updates of the same person) are let in ahead of the others, the rest in arrival order."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self.running = 0
        self._people: dict[Hashable, _Person] = {}
        self._queue: list[tuple[int, int, _Waiter]] = []  # (0 urgent | 1 ordinary, arrival, waiter)
        self._arrival = itertools.count()
        self._waiting: dict[int, _Waiter] = {}  # id(person) -> its waiter in the queue
        self._held_until = 0.0  # loop time: no ordinary update starts its database work before it
        self._holds = 0  # pages committed and not sent yet, each holding the ordinary updates back

    def ticket(self, key: Hashable, *, urgent: bool = False) -> Ticket:
        """The next place in `key`'s line (a person: chat and user). Call `finish()` when done."""
        person = self._people.get(key)
        if person is None:
            person = self._people[key] = _Person()
        ticket = Ticket(self, key, person, person.last, urgent)
        person.last = ticket
        person.tickets += 1
        if urgent:
            person.urgent += 1
            # An earlier update of this person already queued for a slot goes ahead too.
            waiter = self._waiting.get(id(person))
            if waiter is not None and not waiter.future.done():
                heapq.heappush(self._queue, (0, next(self._arrival), waiter))
        return ticket

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def hold_ordinary(self, seconds: float) -> None:
        """Let no ordinary update start its database work (flagged ones still do) until a page is
        sent (`page_sent`, once for each hold) or for `seconds` at most, so that a page just
        committed is claimed and sent without the backlog's transactions in its way (SQLite has
        one writer; any database, one event loop)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        self._holds += 1
        if until > self._held_until:
            self._held_until = until
            loop.call_at(until, self._wake)

    def page_sent(self) -> None:
        """A page reached its clinician: one hold less; none left, the backlog goes on at once."""
        if self._holds > 0:
            self._holds -= 1
            if self._holds == 0:
                self._held_until = 0.0
                self._wake()

    def _held(self) -> bool:
        if self._held_until <= 0:
            return False
        if self._held_until > asyncio.get_running_loop().time():
            return True
        self._held_until, self._holds = 0.0, 0  # the longest hold ran out: whatever was not sent
        return False

    async def _acquire(self, ticket: Ticket) -> None:
        if ticket._person.reserved:
            ticket._person.reserved = False  # kept for it by the person's earlier update
            return
        if self.running < self.limit and not self._waiting and (ticket.jumps_the_queue or not self._held()):
            self.running += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(future, ticket)
        person_id = id(ticket._person)
        self._waiting[person_id] = waiter
        heapq.heappush(self._queue, (0 if ticket.jumps_the_queue else 1, next(self._arrival), waiter))
        self._wake()  # a slot may be free with only stale entries ahead
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self._release(None)  # let in and cancelled at the same moment: hand the slot on
            raise
        finally:
            if self._waiting.get(person_id) is waiter:
                del self._waiting[person_id]

    def _release(self, ticket: Ticket | None) -> None:
        if ticket is not None and ticket._person.urgent > (1 if ticket.urgent else 0):
            ticket._person.reserved = True  # their flagged update is next: it keeps this slot
            return
        self.running -= 1
        self._wake()

    def _wake(self) -> None:
        held = self._held()
        while self.running < self.limit and self._queue:
            if held and self._queue[0][0] == 1:
                break  # only flagged updates until the hold ends (then this runs again)
            _, _, waiter = heapq.heappop(self._queue)
            if waiter.future.done():
                continue  # cancelled, or an older entry of a waiter since moved ahead
            self.running += 1
            waiter.future.set_result(None)
