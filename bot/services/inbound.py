"""What a participant writes, from the moment their update enters a unit of work: who is writing
(one statement), and storing their words (one row per message, with its assessment when it had one).

A flagged message (or any message while an alert is open) is stored by the safety layer with its
escalation (bot/services/escalation/record.py `record_message`); any other text that no dialog took is
kept as a note for the care team (the fallback handler). Both come here, so a message is stored
the same way whoever stores it. Text is encrypted at rest when a data key is set (bot/db/types.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import BindParameter, Select, Table, and_, bindparam, exists, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.checkin_models import FlowRun, FlowStatus
from bot.db.models import UNRESOLVED, DialogState, Escalation, InboundMessage, Participant, Staff
from bot.safety.levels import Assessment
from bot.services.escalation.kinds import SUPPORT_SOURCE


@dataclass(frozen=True)
class Writer:
    """Who wrote an update, read fresh from the database in the update's own transaction."""

    actor: Staff | Participant | None  # an active staff member first, else a participant, else nobody
    dialog_state: DialogState | None  # their dialog state row (now in the session), or None: no row
    open_alert: bool  # the participant has an unresolved escalation (open or acknowledged)
    # The participant has a flow run marked active (a check-in, questionnaire, exercise, weekly
    # prompt; expired by time or not): when False, no typed text can be a flow's answer, and the
    # flow router asks the database nothing more (bot/telegram/handlers/flows.py).
    open_flow: bool = False


def _who_is_writing_query() -> Select[Staff, Participant, DialogState, bool, bool]:
    one = select(literal(1).label("one")).subquery()
    # Theirs only: an alert a support person's words opened is not (their messages never attach to it).
    open_alert = exists().where(Escalation.participant_id == Participant.id, Escalation.status.in_(UNRESOLVED),
                                Escalation.source.not_like(f"{SUPPORT_SOURCE}%"))
    open_flow = exists().where(FlowRun.participant_id == Participant.id, FlowRun.status == FlowStatus.ACTIVE)
    user: BindParameter[int] = bindparam("telegram_user_id")
    return (select(Staff, Participant, DialogState, open_alert.label("open_alert"), open_flow.label("open_flow"))
            .select_from(one)
            .outerjoin(Staff, and_(Staff.telegram_user_id == user, Staff.active.is_(True)))
            .outerjoin(Participant, Participant.telegram_user_id == user)
            .outerjoin(DialogState, DialogState.key == bindparam("dialog_key"))
            .limit(1))


# Built once: on every update, building it again cost as much as running it.
_WHO_IS_WRITING = _who_is_writing_query()


async def who_is_writing(session: AsyncSession, telegram_user_id: int, dialog_key: str | None) -> Writer:
    """Who is writing, their dialog state, whether an alert of theirs is open and whether a flow of
    theirs is: one statement (one round trip) instead of five, and never a stale answer, since it
    is read in the update's transaction (a staff member deactivated a second ago, in any process,
    is not staff here).

    The rows are loaded into `session`, so the handler that changes them changes these objects."""
    row = (await session.execute(_WHO_IS_WRITING, {"telegram_user_id": telegram_user_id,
                                                    "dialog_key": dialog_key or ""})).one()
    staff, participant, dialog_state, alert, flow = row
    actor = staff if staff is not None else participant
    theirs = participant is not None and staff is None
    return Writer(actor, dialog_state, bool(alert) and theirs, bool(flow) and theirs)


def keep_message(session: AsyncSession, participant: Participant, *, text: str, telegram_message_id: int | None,
                 received_at: datetime, assessment: Assessment | None = None) -> InboundMessage:
    inbound = InboundMessage(participant_id=participant.id, telegram_message_id=telegram_message_id,
                             received_at=received_at, text=text)
    if assessment is not None:
        inbound.level = int(assessment.level)
        inbound.categories = ",".join(assessment.categories)
        inbound.reasons = ",".join(assessment.reasons)
    session.add(inbound)
    return inbound


async def keep_note(session: AsyncSession, participant: Participant, *, text: str, telegram_message_id: int | None,
                    received_at: datetime) -> None:
    """Keep an unflagged message no dialog took as a note for the care team: one INSERT now, in
    the update's transaction. Nothing reads it back in this update, so no mapped object is built
    (the ORM's unit of work around one row cost more than the row); `keep_message` when the caller
    needs the row."""
    await session.execute(_INSERT_NOTE, {"participant_id": participant.id, "telegram_message_id": telegram_message_id,
                                         "received_at": received_at, "text": text, "level": 0, "categories": "",
                                         "reasons": "", "escalation_id": None})


# Built once (compiled once, then only its parameters change), on the table: the column types (the
# encrypted text, UTC times) apply as they do for the mapped class.
_INSERT_NOTE = insert(cast(Table, InboundMessage.__table__))
