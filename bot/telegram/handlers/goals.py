"""/goals for a participant, /goal ALIAS for staff, and the weekly progress prompt's answers.

- A participant keeps up to three goals with buttons: add, change, done (done asks once more). A
  typed goal is a message like any other: the safety gate assessed it before it got here. A
  flagged sentence (a concern too) gets the gate's reply and is not kept as a goal; the message
  itself is kept for the care team (with its alert when it has one). Once a check-in or
  questionnaire is in use after the question, typed text is its answer, not the goal.
- Staff see a participant's goals with the weekly trajectory (`/goal ALIAS`) and add, change or
  close one with them, by button or in one line (`/goal ALIAS add TEXT`, `edit N TEXT`, `done N`).
  `/goal` alone lists the open goals of everyone they may see (a coach with forty participants).
  Only staff who may see the participant (services/visibility.py); anyone else gets the same
  answer as for an unknown alias, and the refusal is audited. Only while the participant is
  enrolled. The participant is told of a change through the outbox, after their quiet hours.
- The weekly prompt's buttons and typed answers go through the flow engine (handlers/flows.py);
  here only: a crisis message while it is open closes it (no more questions then).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.goal_models import Goal
from bot.db.models import ENROLLED, Participant, Staff
from bot.flows.engine import flow_opened_since
from bot.messaging import Replies
from bot.safety.levels import Assessment, Level
from bot.services.audit import actor_label, audit
from bot.services.caseload import find_participant
from bot.services.goals import service as goals
from bot.services.goals.progress import close_after_crisis
from bot.services.goals.service import MAX_CHARS, MAX_OPEN, Change
from bot.services.goals.summary import goal_progress, open_goal_progress
from bot.services.goals.views import (
    cancel_keyboard,
    confirm_done_keyboard,
    latest_notes,
    overview_messages,
    participant_view,
    staff_view,
)
from bot.services.staff_time import staff_zone
from bot.services.visibility import EXAMPLE_ALIAS, example_alias, may_see, visible_participants
from bot.telegram.filters import IsEnrolledParticipant, IsStaff

router = Router(name="goals")

# Typed words are taken as the goal this long after the question; later text is an ordinary
# message again (a question left open must not swallow a check-in answer typed hours later).
TEXT_WINDOW = timedelta(minutes=30)


class GoalInput(StatesGroup):
    text = State()  # the participant's goal in their words (data: goal id or none, asked_at)


class StaffGoalInput(StatesGroup):
    text = State()  # a goal typed by staff with the participant (data: participant, goal, asked_at)


def _id(data: str | None) -> int:
    tail = (data or "").rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _chat(query: CallbackQuery, person: Staff | Participant) -> int:
    return query.message.chat.id if query.message else person.chat_id or 0


def _in_window(data: dict[str, Any], now: datetime) -> bool:
    asked = data.get("asked_at")
    return bool(asked) and now - datetime.fromisoformat(str(asked)) <= TEXT_WINDOW


async def _answers_the_question(session: AsyncSession, ctx: AppContext, actor: Participant,
                                data: dict[str, Any]) -> bool:
    """Typed text is the goal only within the window and if no flow opened since the question."""
    if not _in_window(data, ctx.clock.now()):
        return False
    return not await flow_opened_since(session, actor.id, datetime.fromisoformat(str(data["asked_at"])))


# --- the participant ------------------------------------------------------------------------------

async def _show_own(session: AsyncSession, ctx: AppContext, actor: Participant, replies: Replies, chat_id: int,
                    before: str = "") -> None:
    text, kb = participant_view(ctx, await goal_progress(session, actor.id), actor.locale)
    replies.text(chat_id, f"{before}\n\n{text}" if before else text, kb)


@router.message(Command("goals"), IsEnrolledParticipant())
async def goals_command(message: Message, actor: Participant, session: AsyncSession, state: FSMContext,
                        replies: Replies, ctx: AppContext) -> None:
    if await state.get_state() == GoalInput.text.state:
        await state.clear()
    await _show_own(session, ctx, actor, replies, message.chat.id)


async def _ask(state: FSMContext, replies: Replies, ctx: AppContext, actor: Participant, chat_id: int,
               goal: Goal | None) -> None:
    await state.set_state(GoalInput.text)
    await state.update_data(goal=goal.id if goal else None, asked_at=ctx.clock.now().isoformat())
    text = ctx.t("goals.ask_edit", actor.locale, text=goal.text) if goal else ctx.t("goals.ask_text", actor.locale)
    replies.text(chat_id, text, cancel_keyboard(ctx, actor.locale, staff=False))


@router.callback_query(F.data == "goal:add", IsEnrolledParticipant())
async def add_button(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                     replies: Replies, ctx: AppContext) -> None:
    if await goals.count_open(session, actor.id) >= MAX_OPEN:
        replies.notice(ctx.t("goals.full", actor.locale, limit=MAX_OPEN))
        return
    await _ask(state, replies, ctx, actor, _chat(query, actor), None)


@router.callback_query(F.data.regexp(r"^goal:edit:\d+$"), IsEnrolledParticipant())
async def edit_button(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                      replies: Replies, ctx: AppContext) -> None:
    goal = await goals.open_goal(session, actor.id, _id(query.data))
    if goal is None:
        replies.notice(ctx.t("goals.gone", actor.locale))
        return
    await _ask(state, replies, ctx, actor, _chat(query, actor), goal)


@router.callback_query(F.data.regexp(r"^goal:done:\d+$"), IsEnrolledParticipant())
async def done_button(query: CallbackQuery, actor: Participant, session: AsyncSession, replies: Replies,
                      ctx: AppContext) -> None:
    goal = await goals.open_goal(session, actor.id, _id(query.data))
    if goal is None:
        replies.notice(ctx.t("goals.gone", actor.locale))
        return
    replies.text(_chat(query, actor), ctx.t("goals.confirm_done", actor.locale, text=goal.text),
                 confirm_done_keyboard(ctx, actor.locale, goal.id, staff=False))


@router.callback_query(F.data.regexp(r"^goal:(yes|keep):\d+$"), IsEnrolledParticipant())
async def confirm_done(query: CallbackQuery, actor: Participant, session: AsyncSession, replies: Replies,
                       ctx: AppContext) -> None:
    chat = _chat(query, actor)
    if (query.data or "").startswith("goal:keep:"):
        if query.message:
            replies.edit(chat, query.message.message_id, ctx.t("goals.cancelled", actor.locale), None)
        return
    outcome, goal = await goals.mark_done(session, ctx, actor, _id(query.data), actor_label(actor))
    if outcome is not Change.DONE or goal is None:
        replies.notice(ctx.t("goals.gone", actor.locale))
        return
    done = ctx.t("goals.marked_done", actor.locale, text=goal.text)
    if query.message:
        replies.edit(chat, query.message.message_id, done, None)
    else:
        replies.text(chat, done)


@router.callback_query(F.data == "goal:cancel", IsEnrolledParticipant())
async def cancel_button(query: CallbackQuery, actor: Participant, state: FSMContext, replies: Replies,
                        ctx: AppContext) -> None:
    if await state.get_state() == GoalInput.text.state:
        await state.clear()
    if query.message:
        replies.edit(_chat(query, actor), query.message.message_id, ctx.t("goals.cancelled", actor.locale), None)


@router.message(F.text, IsEnrolledParticipant())
async def crisis_closes_the_prompt(message: Message, actor: Participant, session: AsyncSession, ctx: AppContext,
                                   assessment: Assessment | None = None) -> None:
    """A crisis message while the weekly prompt is open: close it, then let the message go on."""
    if assessment is not None and assessment.level >= Level.URGENT:
        await close_after_crisis(session, ctx, actor)
    raise SkipHandler


@router.message(StateFilter(GoalInput.text), F.text, ~F.text.startswith("/"), IsEnrolledParticipant())
async def typed_goal(message: Message, actor: Participant, session: AsyncSession, state: FSMContext,
                     replies: Replies, ctx: AppContext, assessment: Assessment | None = None) -> None:
    data = await state.get_data()
    if not await _answers_the_question(session, ctx, actor, data):
        # Too late, or a check-in or questionnaire opened since: its typed answers are its own (a
        # "yes" to the safety question pages), anything else is an ordinary message again.
        await state.clear()
        raise SkipHandler
    if assessment is not None and assessment.flagged:
        # Not a goal (as with /meds): the safety gate answered (the crisis or supportive reply),
        # and the message goes on as any message, kept for the care team. No more questions now.
        await state.clear()
        raise SkipHandler
    who, locale, chat = actor_label(actor), actor.locale, message.chat.id
    goal_id = data.get("goal")
    if goal_id:
        outcome, goal = await goals.edit_goal(session, ctx, actor, int(goal_id), message.text or "", who)
    else:
        outcome, goal = await goals.add_goal(session, ctx, actor, message.text or "", who)
    if outcome in (Change.TOO_LONG, Change.EMPTY):
        await state.update_data(asked_at=ctx.clock.now().isoformat())  # still asking
        replies.text(chat, ctx.t("goals.too_long", locale, limit=MAX_CHARS) if outcome is Change.TOO_LONG
                     else ctx.t("goals.ask_text", locale), cancel_keyboard(ctx, locale, staff=False))
        return
    await state.clear()
    if outcome is Change.FULL:
        replies.text(chat, ctx.t("goals.full", locale, limit=MAX_OPEN))
    elif outcome is Change.GONE or goal is None:
        replies.text(chat, ctx.t("goals.gone", locale))
    else:
        replies.text(chat, ctx.t("goals.edited" if goal_id else "goals.added", locale, text=goal.text))


# --- staff ----------------------------------------------------------------------------------------

async def _refuse(session: AsyncSession, ctx: AppContext, actor: Staff, replies: Replies, chat_id: int,
                  alias: str, participant: Participant | None) -> None:
    # One answer for "no such alias" and "not on your caseload": the reply must not tell a
    # clinician which aliases exist outside their caseload. Both are audited.
    audit(session, ctx.clock.now(), actor_label(actor), "refused:/goal",
          participant_id=participant.id if participant else None, allowed=False)
    replies.text(chat_id, ctx.t("goal.not_on_caseload", actor.locale, alias=alias[:80],
                                example=await example_alias(session, actor)))


async def _visible(session: AsyncSession, actor: Staff, participant: Participant | None) -> bool:
    return participant is not None and await may_see(session, actor, participant)


async def _show_staff(session: AsyncSession, ctx: AppContext, actor: Staff, participant: Participant,
                      replies: Replies, chat_id: int) -> None:
    progress = await goal_progress(session, participant.id)
    notes = await latest_notes(session, progress)
    audit(session, ctx.clock.now(), actor_label(actor), "view:goals", participant_id=participant.id)
    text, kb = staff_view(ctx, participant.alias, participant.id, progress, notes, actor.locale,
                          staff_zone(ctx, actor))
    replies.text(chat_id, text, kb)


async def _staff_change(session: AsyncSession, ctx: AppContext, actor: Staff, participant: Participant,
                        replies: Replies, chat_id: int, action: str, goal_id: int | None, text: str) -> None:
    """Add (goal_id None), change or close a goal with the participant; say how it went."""
    who, locale, alias = actor_label(actor), actor.locale, participant.alias
    if action == "add":
        outcome, goal = await goals.add_goal(session, ctx, participant, text, who)
    elif action == "edit" and goal_id is not None:
        outcome, goal = await goals.edit_goal(session, ctx, participant, goal_id, text, who)
    else:
        assert goal_id is not None
        outcome, goal = await goals.mark_done(session, ctx, participant, goal_id, who)
    if outcome is Change.NOT_ENROLLED:
        replies.text(chat_id, ctx.t("goal.not_enrolled", locale, alias=alias))
        return
    if outcome is Change.TOO_LONG:
        replies.text(chat_id, ctx.t("goal.too_long", locale, limit=MAX_CHARS))
        return
    if outcome is Change.FULL:
        replies.text(chat_id, ctx.t("goal.full", locale, alias=alias, limit=MAX_OPEN))
        return
    if outcome is not Change.DONE or goal is None:
        replies.text(chat_id, ctx.t("goal.gone", locale, alias=alias))
        return
    audit(session, ctx.clock.now(), who, f"goal:{action}", participant_id=participant.id)
    said = {"add": "added", "edit": "edited", "done": "marked_done"}[action]
    # Through the outbox, after the participant's quiet hours: never a goal notice at 2 a.m.
    told = await goals.tell_participant_of_change(session, ctx, participant, goal, action)
    replies.outbox_due = told
    replies.text(chat_id, ctx.t(f"goal.{said}", locale, alias=alias, text=goal.text) + "\n"
                 + ctx.t("goal.told" if told else "goal.not_told", locale))


async def _ask_staff(state: FSMContext, replies: Replies, ctx: AppContext, actor: Staff, chat_id: int,
                     participant: Participant, goal: Goal | None, number: int = 0) -> None:
    await state.set_state(StaffGoalInput.text)
    await state.update_data(participant=participant.id, goal=goal.id if goal else None,
                            asked_at=ctx.clock.now().isoformat())
    if goal is None:
        text = ctx.t("goal.ask_text", actor.locale, alias=participant.alias)
    else:
        text = ctx.t("goal.ask_edit", actor.locale, alias=participant.alias, number=number, text=goal.text)
    replies.text(chat_id, text, cancel_keyboard(ctx, actor.locale, staff=True))


async def _overview(session: AsyncSession, ctx: AppContext, actor: Staff, replies: Replies, chat_id: int) -> None:
    """/goal alone: the open goals of everyone this staff member may see, and who has none yet."""
    people = (await session.execute(
        select(Participant.id, Participant.alias)
        .where(visible_participants(actor), Participant.status.in_(list(ENROLLED)))
        .order_by(Participant.alias))).all()
    example = people[0].alias if people else EXAMPLE_ALIAS
    if not people:
        replies.text(chat_id, ctx.t("goal.usage", actor.locale, example=example))
        return
    found = await open_goal_progress(session, [p.id for p in people])
    now, who = ctx.clock.now(), actor_label(actor)
    for person in people:
        if person.id in found:
            audit(session, now, who, "view:goals", participant_id=person.id)
    for text in overview_messages(ctx, [(p.alias, found.get(p.id, [])) for p in people], actor.locale,
                                  staff_zone(ctx, actor), example):
        replies.text(chat_id, text)


@router.message(Command("goal"), IsStaff())
async def goal_command(message: Message, command: CommandObject, actor: Staff, session: AsyncSession,
                       state: FSMContext, replies: Replies, ctx: AppContext) -> None:
    chat, locale = message.chat.id, actor.locale
    words = (command.args or "").split(maxsplit=1)
    if not words:
        await _overview(session, ctx, actor, replies, chat)
        return
    alias, rest = words[0], (words[1] if len(words) > 1 else "")
    participant = await find_participant(session, alias)
    if participant is None or not await _visible(session, actor, participant):
        await _refuse(session, ctx, actor, replies, chat, alias, participant)
        return
    if await state.get_state() == StaffGoalInput.text.state:
        await state.clear()
    action, _, tail = rest.strip().partition(" ")
    action, tail = action.lower(), tail.strip()
    if not action:
        await _show_staff(session, ctx, actor, participant, replies, chat)
        return
    if participant.status not in ENROLLED and action in ("add", "edit", "done"):
        replies.text(chat, ctx.t("goal.not_enrolled", locale, alias=participant.alias))
        return
    if action == "add":
        if tail:
            await _staff_change(session, ctx, actor, participant, replies, chat, "add", None, tail)
        elif await goals.count_open(session, participant.id) >= MAX_OPEN:
            replies.text(chat, ctx.t("goal.full", locale, alias=participant.alias, limit=MAX_OPEN))
        else:
            await _ask_staff(state, replies, ctx, actor, chat, participant, None)
        return
    number_text, _, text = tail.partition(" ")
    if action not in ("edit", "done") or not number_text.isdigit():
        replies.text(chat, ctx.t("goal.unknown_action", locale, alias=participant.alias))
        return
    number = int(number_text)
    open_now = list(await goals.open_goals(session, participant.id))
    if not 1 <= number <= len(open_now):
        replies.text(chat, ctx.t("goal.no_such_goal", locale, alias=participant.alias, number=number))
        return
    goal = open_now[number - 1]
    if action == "edit" and not text.strip():
        await _ask_staff(state, replies, ctx, actor, chat, participant, goal, number)
        return
    await _staff_change(session, ctx, actor, participant, replies, chat, action, goal.id, text)


async def _goal_for_staff(query: CallbackQuery, actor: Staff, session: AsyncSession, replies: Replies,
                          ctx: AppContext) -> tuple[Participant, Goal] | None:
    """The open goal a staff button names, if this staff member may see its participant."""
    goal = await session.get(Goal, _id(query.data))
    participant = await session.get(Participant, goal.participant_id) if goal is not None else None
    if goal is None or participant is None or not await may_see(session, actor, participant):
        audit(session, ctx.clock.now(), actor_label(actor), "refused:goal_button",
              participant_id=participant.id if participant else None, allowed=False)
        replies.notice(ctx.t("common.button_expired", actor.locale))
        return None
    if await goals.open_goal(session, participant.id, goal.id) is None:
        replies.notice(ctx.t("goal.gone", actor.locale, alias=participant.alias))
        return None
    return participant, goal


@router.callback_query(F.data.regexp(r"^sgoal:add:\d+$"), IsStaff())
async def staff_add_button(query: CallbackQuery, actor: Staff, session: AsyncSession, state: FSMContext,
                           replies: Replies, ctx: AppContext) -> None:
    participant = await session.get(Participant, _id(query.data))
    if participant is None or not await may_see(session, actor, participant):
        audit(session, ctx.clock.now(), actor_label(actor), "refused:goal_button",
              participant_id=participant.id if participant else None, allowed=False)
        replies.notice(ctx.t("common.button_expired", actor.locale))
        return
    if participant.status not in ENROLLED:
        replies.notice(ctx.t("goal.not_enrolled", actor.locale, alias=participant.alias))
        return
    if await goals.count_open(session, participant.id) >= MAX_OPEN:
        replies.notice(ctx.t("goal.full", actor.locale, alias=participant.alias, limit=MAX_OPEN))
        return
    await _ask_staff(state, replies, ctx, actor, _chat(query, actor), participant, None)


@router.callback_query(F.data.regexp(r"^sgoal:edit:\d+$"), IsStaff())
async def staff_edit_button(query: CallbackQuery, actor: Staff, session: AsyncSession, state: FSMContext,
                            replies: Replies, ctx: AppContext) -> None:
    found = await _goal_for_staff(query, actor, session, replies, ctx)
    if found is None:
        return
    participant, goal = found
    number = [g.id for g in await goals.open_goals(session, participant.id)].index(goal.id) + 1
    await _ask_staff(state, replies, ctx, actor, _chat(query, actor), participant, goal, number)


@router.callback_query(F.data.regexp(r"^sgoal:done:\d+$"), IsStaff())
async def staff_done_button(query: CallbackQuery, actor: Staff, session: AsyncSession, replies: Replies,
                            ctx: AppContext) -> None:
    found = await _goal_for_staff(query, actor, session, replies, ctx)
    if found is None:
        return
    participant, goal = found
    replies.text(_chat(query, actor), f"{participant.alias}: " + ctx.t("goals.confirm_done", actor.locale,
                                                                       text=goal.text),
                 confirm_done_keyboard(ctx, actor.locale, goal.id, staff=True))


@router.callback_query(F.data.regexp(r"^sgoal:(yes|keep):\d+$"), IsStaff())
async def staff_confirm_done(query: CallbackQuery, actor: Staff, session: AsyncSession, replies: Replies,
                             ctx: AppContext) -> None:
    chat = _chat(query, actor)
    if (query.data or "").startswith("sgoal:keep:"):
        if query.message:
            replies.edit(chat, query.message.message_id, ctx.t("goal.cancelled", actor.locale), None)
        return
    found = await _goal_for_staff(query, actor, session, replies, ctx)
    if found is None:
        return
    participant, goal = found
    if query.message:  # answered: the question stays readable, without buttons to press twice
        replies.edit(chat, query.message.message_id, ctx.t("goals.confirm_done", actor.locale, text=goal.text), None)
    await _staff_change(session, ctx, actor, participant, replies, chat, "done", goal.id, "")


@router.callback_query(F.data == "sgoal:cancel", IsStaff())
async def staff_cancel_button(query: CallbackQuery, actor: Staff, state: FSMContext, replies: Replies,
                              ctx: AppContext) -> None:
    if await state.get_state() == StaffGoalInput.text.state:
        await state.clear()
    if query.message:
        replies.edit(_chat(query, actor), query.message.message_id, ctx.t("goal.cancelled", actor.locale), None)


@router.message(StateFilter(StaffGoalInput.text), F.text, ~F.text.startswith("/"), IsStaff())
async def staff_typed_goal(message: Message, actor: Staff, session: AsyncSession, state: FSMContext,
                           replies: Replies, ctx: AppContext) -> None:
    data = await state.get_data()
    await state.clear()
    if not _in_window(data, ctx.clock.now()):
        raise SkipHandler  # too late to be the goal: whatever else handles staff text
    participant = await session.get(Participant, int(data.get("participant") or 0))
    if participant is None or not await may_see(session, actor, participant):
        await _refuse(session, ctx, actor, replies, message.chat.id, participant.alias if participant else "",
                      participant)
        return
    goal_id = data.get("goal")
    await _staff_change(session, ctx, actor, participant, replies, message.chat.id, "edit" if goal_id else "add",
                        int(goal_id) if goal_id else None, message.text or "")
