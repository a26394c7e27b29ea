"""The lanes updates wait in before their database work (bot/telegram/lanes.py): a flagged update
goes ahead of the backlog, one person's updates stay in order, and the slots are never over-used."""

from __future__ import annotations

import asyncio

import pytest

from bot.telegram.lanes import UpdateLanes


async def _update(lanes: UpdateLanes, person: str, name: str, log: list[str], *, urgent: bool = False,
                  work: asyncio.Event | None = None, replies: asyncio.Event | None = None) -> None:
    """One update as the middlewares run it: its turn, a slot for the database work, the commit,
    then its replies (which may wait for the sender), then done."""
    ticket = lanes.ticket(person, urgent=urgent)
    try:
        await ticket.turn()
        async with ticket.database():
            log.append(name)
            assert lanes.running <= lanes.limit
            if work is not None:
                await work.wait()
            else:
                await asyncio.sleep(0)
        ticket.committed()
        if replies is not None:
            await replies.wait()
    finally:
        ticket.finish()


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_flagged_update_goes_ahead_of_the_backlog() -> None:
    lanes, log = UpdateLanes(limit=1), list[str]()
    hold = asyncio.Event()
    tasks = [asyncio.create_task(_update(lanes, "first", "first", log, work=hold))]
    await _settle()
    tasks += [asyncio.create_task(_update(lanes, f"p{i}", f"p{i}", log)) for i in range(50)]
    await _settle()
    tasks.append(asyncio.create_task(_update(lanes, "crisis", "crisis", log, urgent=True)))
    await _settle()
    assert lanes.queued == 51
    hold.set()
    await asyncio.gather(*tasks)
    assert log[:2] == ["first", "crisis"]  # after the one already running, before all fifty
    assert log[2:] == [f"p{i}" for i in range(50)]  # the rest in the order they came
    assert lanes.running == 0 and lanes.queued == 0


async def test_a_persons_earlier_update_goes_ahead_with_their_flagged_one() -> None:
    lanes, log = UpdateLanes(limit=1), list[str]()
    hold = asyncio.Event()
    tasks = [asyncio.create_task(_update(lanes, "busy", "busy", log, work=hold))]
    await _settle()
    tasks += [asyncio.create_task(_update(lanes, f"p{i}", f"p{i}", log)) for i in range(10)]
    tasks.append(asyncio.create_task(_update(lanes, "robin", "robin: hello", log)))
    tasks += [asyncio.create_task(_update(lanes, f"q{i}", f"q{i}", log)) for i in range(10)]
    await _settle()
    tasks.append(asyncio.create_task(_update(lanes, "robin", "robin: crisis", log, urgent=True)))
    await _settle()
    hold.set()
    await asyncio.gather(*tasks)
    # Robin's earlier message is handled first (their order kept), both ahead of the others.
    assert log[:3] == ["busy", "robin: hello", "robin: crisis"]


async def test_a_flagged_update_waits_for_the_earlier_commit_but_not_its_replies() -> None:
    lanes, log = UpdateLanes(limit=4), list[str]()
    slow_replies = asyncio.Event()
    earlier = asyncio.create_task(_update(lanes, "robin", "hello", log, replies=slow_replies))
    await _settle()
    assert log == ["hello"]  # committed, its reply waiting for the sender
    crisis = asyncio.create_task(_update(lanes, "robin", "crisis", log, urgent=True))
    later = asyncio.create_task(_update(lanes, "robin", "later", log))
    await _settle()
    assert log == ["hello", "crisis"]  # the flagged one did not wait for the reply to "hello"
    assert not crisis.done() or crisis.exception() is None
    # An ordinary update waits until every earlier update of theirs is done, replies and all,
    # so replies keep the order of the messages.
    assert "later" not in log
    slow_replies.set()
    await asyncio.gather(earlier, crisis, later)
    assert log == ["hello", "crisis", "later"]


async def test_one_persons_ordinary_updates_run_one_after_another() -> None:
    lanes, log = UpdateLanes(limit=8), list[str]()
    hold = asyncio.Event()
    first = asyncio.create_task(_update(lanes, "sam", "1", log, work=hold))
    rest = [asyncio.create_task(_update(lanes, "sam", str(i), log)) for i in range(2, 6)]
    other = asyncio.create_task(_update(lanes, "kim", "kim", log))
    await _settle()
    assert log == ["1", "kim"]  # Kim is not held up by Sam; Sam's second waits for the first
    hold.set()
    await asyncio.gather(first, *rest, other)
    assert [x for x in log if x != "kim"] == ["1", "2", "3", "4", "5"]


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    lanes, log = UpdateLanes(limit=1), list[str]()
    hold = asyncio.Event()
    running = asyncio.create_task(_update(lanes, "a", "a", log, work=hold))
    await _settle()
    waiting = asyncio.create_task(_update(lanes, "b", "b", log))
    after = asyncio.create_task(_update(lanes, "c", "c", log))
    await _settle()
    waiting.cancel()
    await _settle()
    hold.set()
    await asyncio.gather(running, after)
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert log == ["a", "c"]
    assert lanes.running == 0 and lanes.queued == 0


async def test_a_failed_update_lets_the_persons_next_one_run() -> None:
    lanes, log = UpdateLanes(limit=2), list[str]()

    async def failing() -> None:
        ticket = lanes.ticket("sam")
        try:
            await ticket.turn()
            async with ticket.database():
                raise RuntimeError("handler failed")
        finally:
            ticket.finish()

    with pytest.raises(RuntimeError):
        await failing()
    await asyncio.wait_for(_update(lanes, "sam", "next", log), 1)
    assert log == ["next"]
    assert lanes.running == 0


async def test_a_slot_kept_for_a_flagged_update_that_never_comes_is_given_back() -> None:
    lanes, log = UpdateLanes(limit=1), list[str]()
    hold = asyncio.Event()
    earlier = asyncio.create_task(_update(lanes, "robin", "hello", log, work=hold))
    await _settle()
    crisis_ticket = lanes.ticket("robin", urgent=True)  # waiting for its turn, never taking the slot
    other = asyncio.create_task(_update(lanes, "sam", "sam", log))
    await _settle()
    hold.set()
    await earlier
    await _settle()
    assert log == ["hello"]  # the slot is kept for Robin's flagged update...
    crisis_ticket.finish()  # ...which went (cancelled, say) without it
    await asyncio.wait_for(other, 1)
    assert log == ["hello", "sam"]
    assert lanes.running == 0 and lanes.queued == 0


async def test_after_a_page_is_written_the_backlog_waits_until_it_is_sent() -> None:
    lanes, log = UpdateLanes(limit=2), list[str]()
    lanes.hold_ordinary(60.0)  # a page was just committed
    backlog = asyncio.create_task(_update(lanes, "sam", "sam", log))
    crisis = asyncio.create_task(_update(lanes, "kim", "kim: crisis", log, urgent=True))
    await _settle()
    assert log == ["kim: crisis"]  # flagged updates still go; ordinary ones wait...
    lanes.page_sent()
    await asyncio.wait_for(asyncio.gather(backlog, crisis), 1)  # ...until the page is out
    assert log == ["kim: crisis", "sam"]


async def test_a_page_that_is_never_sent_holds_the_backlog_for_a_bounded_time() -> None:
    lanes, log = UpdateLanes(limit=2), list[str]()
    lanes.hold_ordinary(0.05)
    await asyncio.wait_for(_update(lanes, "sam", "sam", log), 1)
    assert log == ["sam"]
