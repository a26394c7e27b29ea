"""A worker killed at the worst moment loses no reply and no update, and says nothing twice.

Real `iopbot run` processes on one PostgreSQL, the local Bot API over HTTP, SIGKILL:

- webhook: a participant's message is committed (their note stored) and its reply is waiting out
  a 429 when the worker handling it is killed. Telegram's retry of the update (the webhook got no
  200) goes to the other worker and is a duplicate, skipped; the reply, written with the commit,
  is sent by the other worker's outbox once its lease runs out: exactly once.
- webhook, then: a reply that waits longer than its row's lease for its turn (a 429 whose
  retry_after outlasts the lease, as a long backlog would) is still sent once: its worker renews
  the lease while it waits, so no outbox (its own included) takes it over and sends it too.
- polling: the poller is killed with a batch in hand: one message committed with its reply
  waiting out a 429, two more of the same person fetched and waiting for it. aiogram's own
  polling had already confirmed the batch to Telegram (those two were lost); now the offset
  confirms a batch only once it is committed, so the next poller fetches it again: what was
  committed is skipped, the rest handled, every message answered once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from bot.db.engine import make_engine, make_sessionmaker
from bot.db.models import InboundMessage, Participant, ParticipantStatus, ScheduledAction, Staff
from bot.sandbox.botapi import BotAPIControl, FakeBotAPI, RateLimits
from tests.support.databases import create_postgres_database
from tests.support.e2e import Person
from tests.support.workers import WorkerBot, free_port, register_webhook, worker_rows

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

FIRST_USER = 72_000_000  # far from the ids other tests use
LEASE_SECONDS = 10.0
CONFIG = f"""
    [schedule]
    tick_seconds = 0.2
    lease_seconds = {LEASE_SECONDS}
"""
NOTE_SAVED = "saved this for your care team"


@pytest.fixture
async def botapi() -> AsyncIterator[FakeBotAPI]:
    api = FakeBotAPI(rate_limits=RateLimits(global_per_second=300.0, global_burst=300.0,
                                            per_chat_per_second=100.0, per_chat_burst=100.0))
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def control(botapi: FakeBotAPI) -> AsyncIterator[BotAPIControl]:
    assert botapi.base_url
    async with BotAPIControl(botapi.base_url) as c:
        yield c


async def _workers(tmp_path: Path, botapi: FakeBotAPI, mode: str, count: int) -> list[WorkerBot]:
    db_url = create_postgres_database()
    balancer = f"http://127.0.0.1:{free_port()}/telegram/webhook"
    bots = [WorkerBot(tmp_path / f"w{i}", botapi.base_url or "", db_url, mode, extra_config=CONFIG,
                      public_url=balancer) for i in range(count)]
    for bot in bots:
        bot.workdir.mkdir()
    await _participants(db_url, 8)
    return bots


async def _participants(db_url: str, count: int) -> None:
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    try:
        async with make_sessionmaker(engine)() as session:
            staff = Staff(alias="dr-durable", role="therapist", locale="en", active=True, on_call=False,
                          created_at=now, telegram_user_id=FIRST_USER - 1, chat_id=FIRST_USER - 1)
            session.add(staff)
            await session.flush()
            await session.execute(insert(Participant), [
                dict(alias=f"D-{i}", telegram_user_id=FIRST_USER + i, chat_id=FIRST_USER + i,
                     status=ParticipantStatus.ACTIVE, locale="en", timezone="UTC", checkin_time="23:59",
                     quiet_start="00:00", quiet_end="00:00", therapist_id=staff.id, consent_version="test",
                     consented_at=now, created_at=now)
                for i in range(count)])
            await session.commit()
    finally:
        await engine.dispose()


async def _scalar(db_url: str, query: Any) -> int:
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return int(await session.scalar(query) or 0)
    finally:
        await engine.dispose()


def _notes(user: int) -> Any:
    return (select(func.count()).select_from(InboundMessage).join(Participant)
            .where(Participant.telegram_user_id == user))


REPLY_ROWS = select(func.count()).select_from(ScheduledAction).where(ScheduledAction.kind == "reply")


async def _until(condition: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if await value if not isinstance(value, bool) else value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _equal(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


def _waiting_out_429(bots: list[WorkerBot], chat_id: int) -> WorkerBot | None:
    """The worker whose sender is waiting out the 429 of `chat_id` (its log says so)."""
    return next((b for b in bots if f"429 on sendMessage chat={chat_id}" in b.log_text()), None)


async def _texts(person: Person) -> list[str]:
    return [m.get("visible_text") or "" for m in await person.all_messages()]


async def test_a_reply_cut_by_sigkill_after_its_commit_is_sent_once(tmp_path: Path, botapi: FakeBotAPI,
                                                                      control: BotAPIControl) -> None:
    bots = await _workers(tmp_path, botapi, "webhook", 2)
    try:
        await register_webhook(bots[0], control, [b.url for b in bots])
        for bot in bots:
            bot.start()
        await asyncio.gather(*(b.wait_listening() for b in bots))
        await asyncio.gather(*(b.wait_running() for b in bots))
        victim_person, other = Person(control, FIRST_USER), Person(control, FIRST_USER + 1)
        # The reply to this person's next message will wait 3 s for Telegram's retry_after: the
        # update is committed by then, its reply not sent. That is when its worker dies.
        await control.add_fault("sendMessage", "retry_after", chat_id=victim_person.chat_id, retry_after=3)
        await victim_person.say("see you at group tomorrow")
        await _until(lambda: _waiting_out_429(bots, victim_person.chat_id) is not None, "the reply's 429")
        victim = _waiting_out_429(bots, victim_person.chat_id)
        assert victim is not None
        survivor = next(b for b in bots if b is not victim)
        victim.kill()
        # Telegram's retry of the update reaches the survivor: a duplicate, skipped (the note is not
        # stored twice), and the reply is not lost: it waits for its lease.
        await _until(lambda: "already handled; skipped" in survivor.log_text(), "the retried update skipped")
        assert await _scalar(survivor.db_url, _notes(victim_person.chat_id)) == 1
        assert await _texts(victim_person) == []
        assert await _scalar(survivor.db_url, REPLY_ROWS) == 1
        survivor.move_clock(seconds=LEASE_SECONDS + 1)  # the dead worker's lease on the reply runs out
        assert NOTE_SAVED in await victim_person.read_text(timeout=20)
        # Everything after goes as usual, once: the person's next message, someone else's.
        await victim_person.say("/help")
        assert "/checkin" in await victim_person.read_text()
        await other.say("see you at group tomorrow")
        assert NOTE_SAVED in await other.read_text()
        await asyncio.sleep(1.0)  # a second copy of anything would arrive now
        texts = await _texts(victim_person)
        assert len(texts) == 2 and sum(NOTE_SAVED in t for t in texts) == 1, texts
        assert len(await _texts(other)) == 1
        assert await _scalar(survivor.db_url, REPLY_ROWS) == 0  # sent replies leave no row (nor their text)
        assert "reply row" in survivor.log_text() and "sent: 1 message(s), 0 failed" in survivor.log_text()
        assert botapi.stats()["webhook"]["dropped"] == 0  # every delivery of the update got its 200 in the end

        # A reply that waits out a 429 longer than its lease (real seconds: the lease is renewed on
        # a timer while it waits) is sent once, not also by the outbox once the lease would have run out.
        await control.add_fault("sendMessage", "retry_after", chat_id=other.chat_id, retry_after=LEASE_SECONDS + 2)
        await other.say("a long wait for this one")
        assert NOTE_SAVED in await other.read_text(timeout=LEASE_SECONDS + 20)
        await asyncio.sleep(1.0)  # a second copy would arrive now
        assert len(await _texts(other)) == 2, await _texts(other)
        assert await _scalar(survivor.db_url, REPLY_ROWS) == 0
    finally:
        await asyncio.gather(*(b.stop_async() for b in bots))


async def _the_poller(bots: list[WorkerBot], timeout: float = 30.0) -> WorkerBot:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = {b.pid for b in bots}
        polling = [w for w in await worker_rows(bots[0].db_url) if w.polling and w.pid in pids]
        if len(polling) == 1:
            return next(b for b in bots if b.pid == polling[0].pid)
        await asyncio.sleep(0.1)
    raise AssertionError("no worker took the poller role")


async def test_a_poller_killed_mid_batch_loses_no_update(tmp_path: Path, botapi: FakeBotAPI,
                                                           control: BotAPIControl) -> None:
    bots = await _workers(tmp_path, botapi, "polling", 2)
    try:
        for bot in bots:
            bot.start()
        await asyncio.gather(*(b.wait_running() for b in bots))
        poller = await _the_poller(bots)
        first, others = Person(control, FIRST_USER), [Person(control, FIRST_USER + i) for i in range(1, 6)]
        await control.add_fault("sendMessage", "retry_after", chat_id=first.chat_id, retry_after=3)
        # A batch or two: the first person's three notes (the second and third wait in their lane for
        # the first's reply, which waits out the 429) and five other people's. No getUpdates confirms
        # the second and third before they commit.
        lines = ["see you at group tomorrow", "the bus was late again", "I made soup tonight"]
        await asyncio.gather(*(first.say(line) for line in lines), *(p.say("see you at group tomorrow")
                                                                      for p in others))
        await _until(lambda: _waiting_out_429([poller], first.chat_id) is not None, "the first reply's 429")
        # The others are answered and done (a kill between Telegram's 200 and the deletion of the
        # reply row, a few milliseconds, would repeat a reply: not what this test is about).
        for person in others:
            assert NOTE_SAVED in await person.read_text(timeout=30)
        await _until(lambda: _equal(_scalar(poller.db_url, REPLY_ROWS), 1), "only the cut reply's row left")
        poller.kill()
        survivor = next(b for b in bots if b is not poller)
        assert await _the_poller([survivor]) is survivor
        # The new poller fetches the batch again: the two notes the dead one had not committed are
        # handled now, the rest are duplicates (skipped, not stored twice).
        assert all(NOTE_SAVED in t for t in (await first.read_text(2, timeout=30)).split("\n---\n"))
        # The reply the dead poller had committed and not sent goes once its lease runs out.
        survivor.move_clock(seconds=LEASE_SECONDS + 1)
        assert NOTE_SAVED in await first.read_text(timeout=30)
        await asyncio.sleep(1.0)  # a second copy of anything would arrive now
        texts = await _texts(first)
        assert len(texts) == 3 and all(NOTE_SAVED in t for t in texts), texts
        for person in others:
            assert len(await _texts(person)) == 1
        db = survivor.db_url
        assert await _scalar(db, _notes(first.chat_id)) == 3  # each note stored once, none lost
        for person in others:
            assert await _scalar(db, _notes(person.chat_id)) == 1
        assert await _scalar(db, REPLY_ROWS) == 0
    finally:
        await asyncio.gather(*(b.stop_async() for b in bots))
