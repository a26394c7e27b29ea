"""Telegram handlers of the flow engine: flow buttons, typed answers, and /checkin.

Include `router` in the dispatcher after the feature routers and before `fallback.router`:
typed text goes to an open flow only when its current step takes text (otherwise the fallback
keeps it as a note), and a flow's buttons are recognised by their `fl:` prefix.
"""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, Filter
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.checkin_models import FlowRun, FlowStatus
from bot.db.models import Participant
from bot.flows.engine import CALLBACK_PREFIX, FlowEngine
from bot.messaging import Replies
from bot.services.checkins import service as checkins
from bot.telegram.filters import IsEnrolledParticipant

router = Router(name="flows")
router.message.filter(IsEnrolledParticipant())
router.callback_query.filter(IsEnrolledParticipant())


def _engine(ctx: AppContext) -> FlowEngine | None:
    return ctx.parts.find(FlowEngine)


class WaitsForText(Filter):
    """The participant has an open flow whose current step takes typed text (newest first).

    Asked of every typed message of an enrolled participant, so it reads the database only when
    they have a flow run marked active: the actor lookup says so in its one statement (`open_flow`,
    read in this transaction), and a run started or resumed since in this transaction is in the
    session."""

    async def __call__(self, message: Message, actor: Any = None, session: AsyncSession | None = None,
                       ctx: AppContext | None = None, open_flow: bool | None = None) -> bool | dict[str, Any]:
        text = message.text
        if ctx is None or session is None or not isinstance(actor, Participant) or not text or text.startswith("/"):
            return False
        if open_flow is False and not _run_in_session(session, actor.id):
            return False
        engine = _engine(ctx)
        if engine is None:
            return False
        for run in await engine.active_runs(session, actor.id):
            step = engine.current_step(run)
            if step is not None and step.takes_text:
                return {"flow_run": run}
        return False


def _run_in_session(session: AsyncSession, participant_id: int) -> bool:
    """A flow run of the participant's marked active, started or changed in this transaction
    (after the actor lookup read that there was none)."""
    return any(isinstance(o, FlowRun) and o.participant_id == participant_id and o.status == FlowStatus.ACTIVE
               for o in (*session.new, *session.identity_map.values()))


@router.message(Command("checkin"))
async def checkin_command(message: Message, actor: Participant, session: AsyncSession, replies: Replies,
                          ctx: AppContext) -> None:
    if _engine(ctx) is None:
        replies.text(message.chat.id, ctx.t("common.not_available", actor.locale))
        return
    await checkins.start_or_resume(session, ctx, actor, replies)


@router.message(F.text, WaitsForText())
async def typed_answer(message: Message, actor: Participant, session: AsyncSession, replies: Replies,
                       ctx: AppContext, flow_run: Any) -> None:
    engine = _engine(ctx)
    assert engine is not None
    if not await engine.type_text(session, actor, flow_run, message.text or "", replies):
        raise SkipHandler  # not an answer to the open step: the fallback keeps it as a note


@router.callback_query(F.data.startswith(f"{CALLBACK_PREFIX}:"))
async def flow_button(query: CallbackQuery, actor: Participant, session: AsyncSession, replies: Replies,
                      ctx: AppContext) -> None:
    engine = _engine(ctx)
    message_id = query.message.message_id if query.message else None
    if engine is None or not await engine.press(session, actor, query.data or "", replies, message_id):
        # An earlier question, a finished or expired check-in: say so, change nothing.
        replies.notice(ctx.t("flow.stale_button", actor.locale))
