"""What a participant's everyday message costs, in process on SQLite and PostgreSQL (issue 16's
inbound throughput), without changing what they see.

A note (text no dialog takes) asks the database nothing about flows: the actor lookup's one
statement says whether a flow of theirs is open. A check-in opened a moment ago by another worker
still takes the typed answer here, since that statement is read in the update's own transaction.
No filter of the routers hops to a thread (aiogram runs every synchronous filter in one).
"""

from __future__ import annotations

from typing import Any

from aiogram.dispatcher.event.handler import FilterObject
from sqlalchemy import event, select

from bot.db.models import InboundMessage, Participant
from bot.messaging import Replies
from bot.services.checkins import service as checkins
from bot.telegram.routing import filters_on_the_loop
from tests.support.inproc import InProcessBot, add_participant, add_staff

DR, SAM = 930_001, 7_301


async def _team(bot: InProcessBot) -> None:
    now = bot.clock.now()
    async with bot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-lee", DR, now)
        await add_participant(s, "P-sam", dr, SAM, now)
        await s.commit()


def _record_statements(bot: InProcessBot) -> list[str]:
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()).lower())

    event.listen(bot.running.engine.sync_engine, "before_cursor_execute", seen)
    return statements


async def test_a_note_asks_nothing_about_flows_and_a_checkin_opened_elsewhere_takes_the_answer(
        inbot: InProcessBot) -> None:
    await _team(inbot)
    await inbot.say(SAM, "hello")  # the first update of a process reads a few things once
    statements = _record_statements(inbot)

    await inbot.say(SAM, "Group was good today.")
    assert "saved this for your care team" in inbot.last_text(SAM)  # kept as a note
    asked_about_flows = [s for s in statements if "flow_runs" in s and not s.startswith("select staff")]
    assert asked_about_flows == [], asked_about_flows
    # The update's claim, who is writing (with the open-flow check), the note, the reply row, and
    # the reply row's deletion once sent.
    assert len(statements) <= 5, statements

    # Another worker's outbox opens Sam's check-in (and sends its first question from there).
    async with inbot.ctx.sessionmaker() as s:
        sam = await s.scalar(select(Participant).where(Participant.telegram_user_id == SAM))
        assert sam is not None
        await checkins.start_or_resume(s, inbot.ctx, sam, Replies())
        await s.commit()
    await inbot.say(SAM, "6")  # the mood question, answered by typing
    assert "cravings" in inbot.last_text(SAM)
    async with inbot.ctx.sessionmaker() as s:
        notes = (await s.scalars(select(InboundMessage.text))).all()
    assert "6" not in notes  # an answer, not a note


def test_no_filter_of_the_dispatcher_runs_in_a_thread(inbot: InProcessBot) -> None:
    def walk(router: Any) -> list[FilterObject]:
        found = [f for o in router.observers.values() for f in (o._handler.filters or [])]
        found += [f for o in router.observers.values() for h in o.handlers for f in (h.filters or [])]
        return found + [f for sub in router.sub_routers for f in walk(sub)]

    filters = walk(inbot.running.dispatcher)
    assert any(f.magic is not None for f in filters)  # F.text and the like are there...
    assert [f for f in filters if f.magic is not None and not f.awaitable] == []  # ...none in a thread
    assert filters_on_the_loop(inbot.running.dispatcher) == 0  # done once; again changes nothing
