"""/message ALIAS for staff, the participant's reply, and /techhelp.

Staff: `/message ALIAS words` sends at once; `/message ALIAS` (or the "Message P-101" button under
/trends and under a forwarded reply) asks for the words next, once, with a Cancel button. Only
staff who may see the participant (bot/services/visibility.py) may write to them; anyone else gets
the same answer as for an unknown alias, and the refusal is audited.

Participants: Reply makes their next text the reply (or they answer the message with Telegram's
own reply); "I'm OK, thanks" answers at once. Every text went through the safety gate before it
gets here: a crisis sentence typed as a reply has had its crisis reply and its page, and is still
passed to the staff member. After `[outreach] reply_window_hours` a text is an ordinary message.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import InboundMessage, Participant, Staff
from bot.db.outreach_models import OutreachMessage
from bot.flows.engine import flow_opened_since
from bot.messaging import Replies, keyboard
from bot.safety.levels import Assessment
from bot.services.audit import actor_label, audit
from bot.services.caseload import find_participant
from bot.services.inbound import keep_message
from bot.services.outreach import messages as outreach
from bot.services.outreach import techhelp
from bot.services.visibility import example_alias, may_see
from bot.telegram.filters import IsEnrolledParticipant, IsStaff

router = Router(name="outreach")

# Typed words are taken as the message this long after /message ALIAS asked for them; later text
# is not sent to anyone (a question left open must not send words typed for something else).
COMPOSE_WINDOW = timedelta(minutes=15)
# After Reply, the next text is the reply only this long: a participant who tapped Reply and then
# went on to something else (a check-in, /sessions) must not have those answers sent to the coach.
REPLY_TYPING_WINDOW = timedelta(minutes=60)
CANCEL_COMPOSE = "om:cancel"
CANCEL_REPLY = "or:cancel"


class Compose(StatesGroup):
    text = State()  # staff: the next text is the message to the participant


class Reply(StatesGroup):
    text = State()  # participant: the next text is the reply to a staff member's message


staff = Router(name="outreach-staff")
staff.message.filter(IsStaff())
staff.callback_query.filter(IsStaff())
participant = Router(name="outreach-participant")
participant.message.filter(IsEnrolledParticipant())
participant.callback_query.filter(IsEnrolledParticipant())
router.include_routers(staff, participant)  # other roles: refused by the fallback (commands.py)


def _chat(query: CallbackQuery, person: Staff | Participant) -> int:
    return query.message.chat.id if query.message else person.chat_id or 0


# --- staff: /message ------------------------------------------------------------------------------

async def _allowed_participant(session: AsyncSession, ctx: AppContext, actor: Staff, alias: str, replies: Replies,
                               chat_id: int, action: str) -> Participant | None:
    """The participant `alias` if this staff member may see them; otherwise refuse (one answer for
    "no such alias" and "not yours", so aliases outside the caseload are not revealed) and audit."""
    found = await find_participant(session, alias)  # the alias in any case, as in /goal and /trend
    if found is None or not await may_see(session, actor, found):
        audit(session, ctx.clock.now(), actor_label(actor), f"refused:{action}",
              participant_id=found.id if found else None, allowed=False)
        replies.text(chat_id, ctx.t("outreach.not_on_caseload", actor.locale, alias=alias[:80],
                                    example=await example_alias(session, actor)))
        return None
    return found


async def _send(session: AsyncSession, ctx: AppContext, actor: Staff, person: Participant, text: str,
                replies: Replies, chat_id: int) -> None:
    why = outreach.why_not_reachable(person)
    if why is not None:
        audit(session, ctx.clock.now(), actor_label(actor), f"outreach:not_sent:{why}", participant_id=person.id)
        replies.text(chat_id, outreach.not_sent_text(ctx, actor, person.alias, why))
        return
    queued = await outreach.queue_message(session, ctx, actor, person, text, ctx.clock.now())
    role = outreach.role_words(ctx, actor, person.locale)
    if queued.now_despite_quiet_hours:
        replies.outbox_due = True
        replies.text(chat_id, ctx.t("outreach.queued_alert_open", actor.locale, alias=person.alias, role=role))
    elif queued.after_quiet_hours:
        replies.text(chat_id, ctx.t("outreach.queued_quiet", actor.locale, alias=person.alias, role=role,
                                    time=queued.after_quiet_hours))
    else:
        replies.outbox_due = True
        replies.text(chat_id, ctx.t("outreach.queued", actor.locale, alias=person.alias, role=role))


async def _ask_for_text(ctx: AppContext, actor: Staff, person: Participant, state: FSMContext, replies: Replies,
                        chat_id: int) -> None:
    why = outreach.why_not_reachable(person)
    if why is not None:  # say so now, not after they typed it
        replies.text(chat_id, outreach.not_sent_text(ctx, actor, person.alias, why))
        return
    await state.set_state(Compose.text)
    await state.update_data(participant_id=person.id, asked_at=ctx.clock.now().isoformat())
    replies.text(chat_id, ctx.t("outreach.ask_text", actor.locale, alias=person.alias,
                                role=outreach.role_words(ctx, actor, person.locale)),
                 keyboard([[(ctx.t("outreach.cancel_button", actor.locale), CANCEL_COMPOSE)]]))


def _too_long(ctx: AppContext, actor: Staff, text: str) -> str | None:
    if len(text) <= outreach.MAX_TEXT_CHARS:
        return None
    return ctx.t("outreach.too_long", actor.locale, count=len(text), limit=outreach.MAX_TEXT_CHARS)


@staff.message(Command("message"))
async def message_command(message: Message, command: CommandObject, actor: Staff, session: AsyncSession,
                          state: FSMContext, replies: Replies, ctx: AppContext) -> None:
    await state.clear()
    alias, _, text = (command.args or "").strip().partition(" ")
    if not alias:
        replies.text(message.chat.id, ctx.t("outreach.usage", actor.locale,
                                            example=await example_alias(session, actor)))
        return
    person = await _allowed_participant(session, ctx, actor, alias, replies, message.chat.id, "/message")
    if person is None:
        return
    text = text.strip()
    if not text:
        await _ask_for_text(ctx, actor, person, state, replies, message.chat.id)
        return
    problem = _too_long(ctx, actor, text)
    if problem:
        replies.text(message.chat.id, problem)
        return
    await _send(session, ctx, actor, person, text, replies, message.chat.id)


@staff.callback_query(F.data.regexp(rf"^{outreach.NEW_PREFIX}\d+$"))
async def message_button(query: CallbackQuery, actor: Staff, session: AsyncSession, state: FSMContext,
                         replies: Replies, ctx: AppContext) -> None:
    person = await session.get(Participant, int((query.data or "").rsplit(":", 1)[1]))
    chat = _chat(query, actor)
    if person is None or not await may_see(session, actor, person):
        audit(session, ctx.clock.now(), actor_label(actor), "refused:button:message",
              participant_id=person.id if person else None, allowed=False)
        replies.notice(ctx.t("common.button_expired", actor.locale))
        return
    await _ask_for_text(ctx, actor, person, state, replies, chat)


@staff.callback_query(F.data == CANCEL_COMPOSE)
async def cancel_compose(query: CallbackQuery, actor: Staff, state: FSMContext, replies: Replies,
                         ctx: AppContext) -> None:
    if await state.get_state() == Compose.text.state:
        await state.clear()
    replies.text(_chat(query, actor), ctx.t("outreach.cancelled", actor.locale))


@staff.message(StateFilter(Compose.text), F.text, ~F.text.startswith("/"))
async def typed_message(message: Message, actor: Staff, session: AsyncSession, state: FSMContext, replies: Replies,
                        ctx: AppContext) -> None:
    data = await state.get_data()
    asked = datetime.fromisoformat(str(data["asked_at"])) if data.get("asked_at") else None
    if asked is None or ctx.clock.now() - asked > COMPOSE_WINDOW:
        await state.clear()
        raise SkipHandler()  # an ordinary text again
    text = (message.text or "").strip()
    problem = _too_long(ctx, actor, text)
    if problem:
        replies.text(message.chat.id, problem)  # still waiting for a shorter one
        return
    await state.clear()
    person = await session.get(Participant, int(data.get("participant_id") or 0))
    # Asked again: the caseload may have changed since the question.
    if person is None or not await may_see(session, actor, person):
        audit(session, ctx.clock.now(), actor_label(actor), "refused:/message",
              participant_id=person.id if person else None, allowed=False)
        replies.text(message.chat.id, ctx.t("outreach.not_on_caseload", actor.locale,
                                            alias=person.alias if person else "?",
                                            example=await example_alias(session, actor)))
        return
    await _send(session, ctx, actor, person, text, replies, message.chat.id)


# --- participants: the reply ------------------------------------------------------------------------

def _message_id(data: str | None) -> int:
    try:
        return int((data or "").rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


@participant.callback_query(F.data.regexp(rf"^{outreach.REPLY_PREFIX}\d+$"))
async def reply_button(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                       replies: Replies, ctx: AppContext) -> None:
    found = await outreach.open_message(session, ctx, actor, _message_id(query.data), ctx.clock.now())
    if found is None:
        replies.notice(ctx.t("outreach.reply_closed", actor.locale))
        return
    await state.set_state(Reply.text)
    await state.update_data(outreach_message=found.id, asked_at=ctx.clock.now().isoformat())
    replies.text(_chat(query, actor), ctx.t("outreach.ask_reply", actor.locale,
                                            role=outreach.role_words(ctx, found.staff, actor.locale)),
                 keyboard([[(ctx.t("outreach.cancel_button", actor.locale), CANCEL_REPLY)]]))


@participant.callback_query(F.data.regexp(rf"^{outreach.OK_PREFIX}\d+$"))
async def ok_button(query: CallbackQuery, actor: Participant, session: AsyncSession, replies: Replies,
                    ctx: AppContext) -> None:
    now = ctx.clock.now()
    found = await outreach.open_message(session, ctx, actor, _message_id(query.data), now)
    if found is None:
        replies.notice(ctx.t("outreach.reply_closed", actor.locale))
        return
    await outreach.record_reply(session, actor, found, now)
    replies.outbox_due = True
    chat = _chat(query, actor)
    if query.message:  # answered: the buttons go, the words stay
        replies.edit(chat, query.message.message_id, outreach.message_text(ctx, found, actor.locale)
                     + "\n\n" + ctx.t("outreach.answered_ok", actor.locale), None)
    replies.text(chat, ctx.t("outreach.ok_sent", actor.locale,
                             role=outreach.role_words(ctx, found.staff, actor.locale)))


@participant.callback_query(F.data == CANCEL_REPLY)
async def cancel_reply(query: CallbackQuery, actor: Participant, state: FSMContext, replies: Replies,
                       ctx: AppContext) -> None:
    if await state.get_state() == Reply.text.state:
        await state.clear()
    replies.text(_chat(query, actor), ctx.t("outreach.reply_cancelled", actor.locale))


async def _take_reply(message: Message, actor: Participant, session: AsyncSession, replies: Replies,
                      ctx: AppContext, found: OutreachMessage, stored_message: InboundMessage | None,
                      assessment: Assessment | None) -> None:
    now = ctx.clock.now()
    # Stored once, as any message a participant writes (a flagged one already is, with its alert).
    inbound = stored_message or keep_message(session, actor, text=message.text or "",
                                             telegram_message_id=message.message_id, received_at=now,
                                             assessment=assessment)
    await outreach.record_reply(session, actor, found, now, inbound=inbound)
    replies.outbox_due = True
    replies.text(message.chat.id, ctx.t("outreach.reply_sent", actor.locale,
                                        role=outreach.role_words(ctx, found.staff, actor.locale)))


@participant.message(StateFilter(Reply.text), F.text, ~F.text.startswith("/"))
async def typed_reply(message: Message, actor: Participant, session: AsyncSession, state: FSMContext,
                      replies: Replies, ctx: AppContext, stored_message: InboundMessage | None = None,
                      assessment: Assessment | None = None) -> None:
    # The safety gate assessed this text before it got here (and answered and paged if it had to).
    data = await state.get_data()
    await state.clear()
    now = ctx.clock.now()
    asked = datetime.fromisoformat(str(data["asked_at"])) if data.get("asked_at") else None
    found = await outreach.open_message(session, ctx, actor, int(data.get("outreach_message") or 0), now)
    if found is None or asked is None or now - asked > REPLY_TYPING_WINDOW:
        raise SkipHandler()  # past the reply window: an ordinary message, kept for the care team
    if await flow_opened_since(session, actor.id, asked):
        # A check-in or questionnaire opened after Reply: its typed answers are its own (a "yes" to
        # the safety question pages), not words for the coach.
        raise SkipHandler()
    await _take_reply(message, actor, session, replies, ctx, found, stored_message, assessment)


@participant.message(F.text, ~F.text.startswith("/"), F.reply_to_message.message_id.as_("answered"))
async def swiped_reply(message: Message, answered: int, actor: Participant, session: AsyncSession,
                       replies: Replies, ctx: AppContext, stored_message: InboundMessage | None = None,
                       assessment: Assessment | None = None) -> None:
    """A text sent as Telegram's own reply to the staff member's message is the reply too."""
    found = await outreach.message_replied_to(session, ctx, actor, answered, ctx.clock.now())
    if found is None:
        raise SkipHandler()
    await _take_reply(message, actor, session, replies, ctx, found, stored_message, assessment)


# --- participants: /techhelp --------------------------------------------------------------------------

@participant.message(Command("techhelp"))
async def techhelp_command(message: Message, actor: Participant, session: AsyncSession, replies: Replies,
                           ctx: AppContext) -> None:
    occ = await techhelp.session_in_question(session, actor, ctx.clock.now())
    replies.text(message.chat.id, techhelp.steps_text(ctx, actor), techhelp.steps_keyboard(ctx, actor, occ))


@participant.callback_query(F.data == techhelp.CANT_CONNECT_DATA)
async def cant_connect_button(query: CallbackQuery, actor: Participant, session: AsyncSession, replies: Replies,
                              ctx: AppContext) -> None:
    outcome = await techhelp.cant_connect(session, ctx, actor, ctx.clock.now())
    if outcome == techhelp.Outcome.ALREADY:
        replies.notice(ctx.t("techhelp.already", actor.locale))
        return
    # Who was told (or that nobody could be) follows from the outbox once a notice was delivered.
    replies.outbox_due = True
    if outcome == techhelp.Outcome.NOBODY:  # said plainly now; the message with the crisis line follows
        replies.notice(ctx.t("techhelp.nobody_now", actor.locale))
        return
    replies.notice(ctx.t("techhelp.telling", actor.locale))


