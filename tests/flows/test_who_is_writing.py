"""Who is writing is read fresh on every update, in process on SQLite and PostgreSQL: what an
operator or another worker changes in the database (here: written from sessions of their own, as
`iopbot staff deactivate` or another worker's handler would) is seen on the person's very next update.

The unit of work reads the person, their dialog state and whether an alert of theirs is open in one
statement (bot/services/inbound.py `who_is_writing`), so nothing is cached between updates except
the safety gate's memory of who is who (it runs before any database, to pick the crisis reply's
language and to leave staff alone), which follows each of those reads.
"""

from __future__ import annotations

from collections.abc import Callable

from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import select

from bot.db.models import AuditEntry, Escalation, InboundMessage, Participant, Staff
from bot.safety.levels import Assessment, Category, Level
from bot.services.escalation.record import record_message
from bot.services.people import deactivate_staff, discharge
from bot.telegram.handlers.outreach import Compose
from tests.support.inproc import InProcessBot, add_participant, add_staff

DR, OTHER_DR, SAM = 920_001, 920_002, 7_001
UNKNOWN_HINT = "This bot is for people in a treatment program"


async def _team(bot: InProcessBot) -> None:
    now = bot.clock.now()
    async with bot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-lee", DR, now)
        await add_staff(s, "dr-ortiz", OTHER_DR, now)
        await add_participant(s, "P-sam", dr, SAM, now)
        await s.commit()


async def _deactivate(bot: InProcessBot, telegram_user_id: int, reassign_to: int) -> None:
    """What `iopbot staff deactivate --reassign-to` does, from its own session (another process)."""
    async with bot.ctx.sessionmaker() as s:
        staff = await s.scalar(select(Staff).where(Staff.telegram_user_id == telegram_user_id))
        heir = await s.scalar(select(Staff).where(Staff.telegram_user_id == reassign_to))
        assert staff is not None and heir is not None
        await deactivate_staff(s, bot.ctx, staff, heir)
        await s.commit()


async def test_a_staff_member_deactivated_elsewhere_is_refused_on_their_very_next_update(
        inbot: InProcessBot) -> None:
    await _team(inbot)
    await inbot.say(DR, "/caseload")
    assert "P-sam" in inbot.last_text(DR)
    assert inbot.ctx.directory.get(DR).role == "staff"

    await _deactivate(inbot, DR, reassign_to=OTHER_DR)
    await inbot.say(DR, "/caseload")
    assert inbot.last_text(DR).startswith(f"Hi. {UNKNOWN_HINT}")  # no caseload: refused at once
    assert sum("P-sam" in t for t in inbot.texts(DR)) == 1
    async with inbot.ctx.sessionmaker() as s:
        refused = await s.scalar(select(AuditEntry).where(AuditEntry.action == "refused:/caseload"))
    assert refused is not None and refused.allowed is False
    # The safety gate no longer takes them for staff either.
    assert inbot.ctx.directory.get(DR) is None


async def test_someone_the_gate_still_takes_for_staff_is_assessed_once_the_database_says_participant(
        inbot: InProcessBot) -> None:
    """A staff member who left and was enrolled as a participant, all in another process: the gate
    of this worker still remembers them as staff (it runs before the database), so their first
    message is assessed after the lookup instead: the crisis reply, and their clinician is paged."""
    await _team(inbot)
    await inbot.say(DR, "/caseload")
    assert inbot.ctx.directory.get(DR).role == "staff"
    await _deactivate(inbot, DR, reassign_to=OTHER_DR)
    async with inbot.ctx.sessionmaker() as s:
        heir = await s.scalar(select(Staff).where(Staff.telegram_user_id == OTHER_DR))
        assert heir is not None
        await add_participant(s, "P-lee", heir, DR, inbot.clock.now())
        await s.commit()

    await inbot.say(DR, "I want to kill myself tonight")
    assert "988" in inbot.last_text(DR)  # the crisis reply
    await inbot.tick()
    assert any("Safety alert" in t and "P-lee" in t for t in inbot.texts(OTHER_DR))
    assert inbot.ctx.directory.get(DR).role == "participant"


async def test_discharge_and_a_new_language_are_seen_on_the_next_update(inbot: InProcessBot) -> None:
    await _team(inbot)
    await inbot.say(SAM, "had a good walk today")
    assert inbot.last_text(SAM).startswith("Thanks for writing")
    await _change_sam(inbot, lambda sam: setattr(sam, "locale", "es"))  # /language on another worker
    await inbot.say(SAM, "un buen dia")
    assert inbot.last_text(SAM).startswith("Gracias por escribir")  # read fresh: Spanish at once
    # The gate's memory followed that read: the crisis reply is in Spanish too.
    await inbot.say(SAM, "me quiero matar")
    assert "988" in inbot.last_text(SAM) and "Llama" in inbot.last_text(SAM)

    async with inbot.ctx.sessionmaker() as s:  # `iopbot participant discharge`
        sam = await s.scalar(select(Participant).where(Participant.telegram_user_id == SAM))
        assert sam is not None
        await discharge(s, sam, inbot.clock.now(), alumni=False)
        await s.commit()
    await inbot.say(SAM, "hola?")
    assert inbot.last_text(SAM).startswith("Tu tiempo en el programa terminó")


async def test_a_message_joins_the_alert_another_worker_opened(inbot: InProcessBot) -> None:
    await _team(inbot)
    await inbot.say(SAM, "hello")  # known here, with no alert open
    async with inbot.ctx.sessionmaker() as s:  # another worker opens an alert for Sam
        sam = await s.scalar(select(Participant).where(Participant.telegram_user_id == SAM))
        assert sam is not None
        now = inbot.clock.now()
        await record_message(s, inbot.ctx, sam, text="I want to kill myself", telegram_message_id=None,
                             assessment=Assessment(Level.URGENT, (Category.SUICIDE,)), received_at=now,
                             crisis_reply_sent_at=now)
        await s.commit()
    await inbot.say(SAM, "sorry, I'm fine, forget it")
    async with inbot.ctx.sessionmaker() as s:
        escalation = await s.scalar(select(Escalation))
        assert escalation is not None and escalation.follow_up_count == 1  # the message after the flag
        attached = (await s.scalars(select(InboundMessage).where(InboundMessage.escalation_id == escalation.id))
                    ).all()
    assert len(attached) == 2  # the flag and what came after it, passed on to the clinician


async def test_a_dialog_started_on_another_worker_is_continued_here(inbot: InProcessBot) -> None:
    await _team(inbot)
    await inbot.say(DR, "/caseload")  # this worker has read DR's dialog state: none
    storage = inbot.running.dispatcher.storage
    key = StorageKey(bot_id=inbot.running.bot.id, chat_id=DR, user_id=DR)
    # Another worker answered "/message P-sam" with its question: the state it left behind.
    async with inbot.ctx.sessionmaker() as s:
        sam = await s.scalar(select(Participant).where(Participant.telegram_user_id == SAM))
        assert sam is not None
        sam_id = sam.id
    await storage.set_state(key, Compose.text)
    await storage.set_data(key, {"participant_id": sam_id, "asked_at": inbot.clock.now().isoformat()})
    await inbot.say(DR, "Thinking of you today.")  # the words arrive here
    await inbot.tick()
    assert any("Thinking of you today." in t for t in inbot.texts(SAM))


async def _change_sam(bot: InProcessBot, change: Callable[[Participant], object]) -> None:
    async with bot.ctx.sessionmaker() as s:
        sam = await s.scalar(select(Participant).where(Participant.telegram_user_id == SAM))
        assert sam is not None
        change(sam)
        await s.commit()
