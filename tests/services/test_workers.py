"""Worker processes on one database: the poller election (one PostgreSQL advisory lock, handed over
when its holder's connection drops), the worker_processes rows a health check reads, update
deduplication across sessions, and a participant's updates serialized across workers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot.db.engine import make_engine, make_sessionmaker
from bot.db.models import Participant, ParticipantStatus, ProcessedUpdate, Staff
from bot.db.worker_models import WorkerMode
from bot.services.scheduling.workers import (
    PARTICIPANT_LOCK_NAMESPACE,
    PollerElection,
    WorkerRegistry,
    last_tick_age,
    lock_participant,
    participant_lock_key,
    workers,
)
from tests.support.databases import create_postgres_database, create_sqlite_database

NOW = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)


async def test_worker_rows_say_who_polls_and_when_each_scheduler_ticked(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    try:
        first = WorkerRegistry(sessions, WorkerMode.POLLING, worker_id="host-a:101:aaaaaa")
        second = WorkerRegistry(sessions, WorkerMode.WORKER, worker_id="host-b:202:bbbbbb")
        await first.register(NOW)
        await second.register(NOW)
        async with sessions() as s:
            assert await last_tick_age(s, NOW) is None  # nobody ticked yet
        await first.ticked(NOW + timedelta(seconds=5))
        await second.ticked(NOW + timedelta(seconds=8))
        await first.set_polling(True, NOW + timedelta(seconds=9))
        async with sessions() as s:
            later = NOW + timedelta(seconds=10)
            assert await last_tick_age(s, later) == timedelta(seconds=2)
            assert await last_tick_age(s, later, worker_id=first.id) == timedelta(seconds=5)
            rows = {w.id: w for w in await workers(s, later)}
        assert rows[first.id].polling and not rows[second.id].polling
        assert (rows[first.id].host, rows[first.id].pid, rows[first.id].mode) == ("host-a", 101, "polling")
        assert rows[second.id].last_tick_age == timedelta(seconds=2)

        # The poller dies (SIGKILL: its row stays, still saying "polling"); the next one takes the
        # role and the report shows one poller, not two.
        await second.set_polling(True, NOW + timedelta(seconds=20))
        async with sessions() as s:
            assert [w.id for w in await workers(s, NOW + timedelta(seconds=21)) if w.polling] == [second.id]
        await second.unregister()
        async with sessions() as s:
            assert [w.id for w in await workers(s, NOW + timedelta(seconds=21))] == [first.id]
            # A day later the dead worker's row is gone from the report, and pruned at the next start.
            assert await workers(s, NOW + timedelta(days=2)) == []
        await WorkerRegistry(sessions, WorkerMode.WEBHOOK).register(NOW + timedelta(days=2))
        async with sessions() as s:
            assert [w.mode for w in await workers(s, NOW + timedelta(days=2))] == ["webhook"]
    finally:
        await engine.dispose()


async def test_one_poller_at_a_time_and_the_next_takes_over_when_it_dies() -> None:
    url = create_postgres_database()
    engine = make_engine(url)
    elections = [PollerElection(engine, retry_seconds=0.05, check_seconds=0.05) for _ in range(3)]
    stop = asyncio.Event()
    try:
        assert await asyncio.wait_for(elections[0].acquire(stop), 10)
        waiting = [asyncio.create_task(e.acquire(stop)) for e in elections[1:]]
        await asyncio.sleep(0.5)
        assert not any(t.done() for t in waiting)  # the lock is held: nobody else polls

        # The poller's connection dies (what SIGKILL or a network cut does): the lock goes with it.
        assert elections[0]._conn is not None
        lost = asyncio.create_task(elections[0].wait_lost())
        raw = await elections[0]._conn.get_raw_connection()
        await raw.driver_connection.close()  # type: ignore[union-attr]
        await asyncio.wait_for(lost, 10)
        assert not elections[0].held
        done, pending = await asyncio.wait(waiting, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1 and len(pending) == 1  # exactly one successor
        await asyncio.sleep(0.3)
        assert not next(iter(pending)).done()
        stop.set()  # the last one gives up waiting when the bot stops
        assert await asyncio.wait_for(next(iter(pending)), 10) is False
    finally:
        stop.set()
        for election in elections:
            await election.release()
        await engine.dispose()


async def test_on_sqlite_the_only_process_polls(tmp_path: Path) -> None:
    engine = make_engine(create_sqlite_database(tmp_path))
    try:
        election = PollerElection(engine)
        assert await election.acquire(asyncio.Event())
        await election.release()
    finally:
        await engine.dispose()


async def test_a_duplicate_update_on_another_worker_waits_then_is_skipped() -> None:
    """Two workers get the same update at once: the second insert waits for the first transaction
    and fails with the unique key once it commits (claim_update then skips the update)."""
    from bot.telegram.middlewares import claim_update

    url = create_postgres_database()
    one, two = make_engine(url), make_engine(url)
    try:
        async with make_sessionmaker(one)() as first, make_sessionmaker(two)() as second:
            assert await claim_update(first, 501, 42, NOW)
            duplicate = asyncio.create_task(claim_update(second, 501, 42, NOW))
            await asyncio.sleep(0.3)
            assert not duplicate.done()  # waits: the first may still roll back
            await first.commit()
            assert await asyncio.wait_for(duplicate, 10) is False
        async with make_sessionmaker(one)() as session:  # a rolled-back first leaves the id free
            session.add(ProcessedUpdate(update_id=502, received_at=NOW))
            await session.flush()
            await session.rollback()
            assert await claim_update(session, 502, 42, NOW)
            await session.commit()
            session.add(ProcessedUpdate(update_id=502, received_at=NOW))
            with pytest.raises(IntegrityError):
                await session.flush()
    finally:
        await one.dispose()
        await two.dispose()


async def test_one_persons_updates_on_two_workers_run_one_after_the_other() -> None:
    from bot.telegram.middlewares import claim_update

    url = create_postgres_database()
    one, two = make_engine(url), make_engine(url)
    big_id = 7_123_456_789  # Telegram ids pass 2^31: folded into the lock's 32-bit key
    try:
        async with make_sessionmaker(one)() as first, make_sessionmaker(two)() as second, \
                make_sessionmaker(two)() as other_person:
            assert await claim_update(first, 601, big_id, NOW)
            same_person = asyncio.create_task(claim_update(second, 602, big_id, NOW))
            assert await asyncio.wait_for(claim_update(other_person, 603, big_id + 1, NOW), 5)  # not held up
            await asyncio.sleep(0.3)
            assert not same_person.done()
            await first.commit()  # the first update's dialog state is written: the second may read it
            assert await asyncio.wait_for(same_person, 10)
            held = await second.scalar(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :ns AND objid = :key "
                "AND pid = pg_backend_pid()"),
                {"ns": PARTICIPANT_LOCK_NAMESPACE, "key": participant_lock_key(big_id) & 0xFFFFFFFF})
            assert held == 1
            await second.commit()
            await other_person.commit()
    finally:
        await one.dispose()
        await two.dispose()


def test_the_lock_key_folds_telegram_ids_into_32_bits_like_the_sql() -> None:
    for user in (0, 5, 2**31 - 1, 2**31, 2**31 + 1, 2**32 + 7, 7_123_456_789, 2**52):
        key = participant_lock_key(user)
        assert -(2**31) <= key < 2**31
        assert key == ((user + 2**31) % 2**32) - 2**31  # the expression lock_participant runs in SQL


async def test_a_scheduled_message_to_a_person_waits_for_their_update_in_progress() -> None:
    """The outbox sends a participant's row inside their lock: a tap on the check-in question
    handled meanwhile on another worker waits for the row's commit, and so sees the check-in."""
    from bot.telegram.middlewares import claim_update

    url = create_postgres_database()
    one, two = make_engine(url), make_engine(url)
    try:
        async with make_sessionmaker(one)() as setup:
            staff = Staff(alias="dr-lock", role="therapist", locale="en", active=True, on_call=False, created_at=NOW)
            setup.add(staff)
            await setup.flush()
            person = Participant(alias="P-lock", telegram_user_id=3_000_000_123, chat_id=3_000_000_123,
                                 status=ParticipantStatus.ACTIVE, locale="en", timezone="UTC", checkin_time="09:00",
                                 quiet_start="00:00", quiet_end="00:00", therapist_id=staff.id,
                                 consent_version="t", consented_at=NOW, created_at=NOW)
            setup.add(person)
            await setup.commit()
        async with make_sessionmaker(one)() as outbox_row, make_sessionmaker(two)() as update:
            await lock_participant(outbox_row, person.id)
            tap = asyncio.create_task(claim_update(update, 701, 3_000_000_123, NOW))
            await asyncio.sleep(0.3)
            assert not tap.done()
            await outbox_row.commit()
            assert await asyncio.wait_for(tap, 10)
            await update.commit()
    finally:
        await one.dispose()
        await two.dispose()
