"""The safety gate: every participant's free text is assessed before anything else happens.

Every text: a message's text or a photo's caption, forwarded text, an edited message (assessed,
answered and escalated like a new one; the dialog handlers do not see it again), the words after
/start (an invite token is not words, and is left out), and typed answers inside check-ins and
exercises (they are messages like any other).

It runs as the outermost middleware and touches no database, so the crisis reply goes out even
when the database is down. The reply is a fixed template (never generated) and is sent through
the urgent lane of the sender, ahead of any queued check-ins.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from aiogram import BaseMiddleware, Bot
from aiogram.types import Message, TelegramObject, Update

from bot.clock import Clock
from bot.content.i18n import locale_for
from bot.context import AppContext
from bot.messaging import NotDelivered, say
from bot.safety.levels import Assessment, Level
from bot.safety.semantic import SemanticSecondOpinion
from bot.services.escalation.crisis import crisis_reply_text
from bot.telegram.filters import is_private
from bot.telegram.messenger import TelegramMessenger

log = logging.getLogger(__name__)


class Assessor(Protocol):
    def assess(self, text: str, locale: str = "en") -> Assessment: ...


def message_text(message: Message) -> str | None:
    return message.text if message.text is not None else message.caption


_START = re.compile(r"/start(?:@\w+)?(?=\s|$)", re.IGNORECASE)
# A deep-link payload of the invite tokens' shape (secrets.token_urlsafe(24): 32 URL-safe
# characters; Telegram allows 1-64): random characters, never a person's words.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")


def assessed_text(message: Message) -> str | None:
    """The words to assess: the text or caption; of a /start command, the words after it without
    invite tokens (so a typed "/start I can't go on" is assessed, and a bare invite link is not)."""
    text = message_text(message)
    if text is None:
        return None
    start = _START.match(text)
    if start is None:
        return text
    words = [word for word in text[start.end():].split() if not _TOKEN.fullmatch(word)]
    return " ".join(words) or None


def participant_message(update: Update) -> Message | None:
    """The message an update carries from a person: a new one, or one they edited."""
    return update.message or update.edited_message


class SecondOpinion(Protocol):
    async def assess(self, text: str, locale: str = "en", *, ref: str | None = None) -> Assessment | None: ...


class SecondOpinionBreaker:
    """When to ask the optional second opinion: not while `in_flight` calls are already waiting for
    an answer, and not for `cool_down` after `failures` calls in a row got none (timed out, failed);
    then one call at a time until one is answered. An endpoint that hangs then costs the bot a few
    calls instead of one per message (each waiting out its timeout: at 100 messages a second, the
    event loop that sends the pages was busy with hundreds of them). A call not made is what a
    timed-out one would have given: no opinion; the rules' assessment stands."""

    def __init__(self, clock: Clock, *, in_flight: int = 32, failures: int = 5,
                 cool_down: timedelta = timedelta(seconds=30)) -> None:
        self.clock = clock
        self.max_in_flight, self.max_failures, self.cool_down = in_flight, failures, cool_down
        self.in_flight = 0
        self.failures = 0  # calls in a row without an answer
        self.paused_until: datetime | None = None
        self.skipped = 0

    def allow(self) -> bool:
        """May a call start now? If so, it counts as in flight until `done`."""
        if self.paused_until is None:
            ok = self.in_flight < self.max_in_flight
        else:
            # Paused: nothing until the cool-down is over, then one call at a time until one answers.
            ok = self.in_flight == 0 and self.clock.now() >= self.paused_until
        if not ok:
            self.skipped += 1
            return False
        self.in_flight += 1
        return True

    def done(self, *, answered: bool) -> None:
        self.in_flight -= 1
        if answered:
            self.failures, self.paused_until = 0, None
            return
        self.failures += 1
        if self.failures >= self.max_failures:
            if self.paused_until is None:
                log.warning("second opinion paused for %.0f s: %d calls in a row got no answer",
                            self.cool_down.total_seconds(), self.failures)
            self.paused_until = self.clock.now() + self.cool_down


class SafetyGate(BaseMiddleware):
    def __init__(self, ctx: AppContext, assessor: Assessor, second_opinion: SecondOpinion | None = None,
                 semantic: SemanticSecondOpinion | None = None) -> None:
        self.ctx = ctx
        self.assessor = assessor
        self.second_opinion = second_opinion
        self.semantic = semantic  # the local semantic layer (bot/safety/semantic.py), None when off
        self.breaker = SecondOpinionBreaker(ctx.clock)
        self._background: set[asyncio.Task[None]] = set()
        # Telegram may deliver an update twice; do not send the same crisis reply twice in a row.
        self._recent: OrderedDict[int, None] = OrderedDict()

    def _seen(self, update_id: int) -> bool:
        if update_id in self._recent:
            return True
        self._recent[update_id] = None
        if len(self._recent) > 10_000:
            self._recent.popitem(last=False)
        return False

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        message = participant_message(event)
        text = assessed_text(message) if message is not None else None
        if message is not None and text is not None and message.from_user is not None and in_group(message):
            await self.assess_in_group(event, message, text, data)  # a cohort's group chat (README "Peer groups")
            return await handler(event, data)
        if message is None or text is None or not is_private(message.chat) or message.from_user is None:
            return await handler(event, data)
        person = self.ctx.directory.get(message.from_user.id)
        if person is not None and person.role == "staff":
            # Staff are not assessed. Should this memory be out of date (no longer staff, and a
            # participant now), FlagRecorder assesses the message once the database has said so.
            return await handler(event, data)
        if person is not None:
            locale = person.locale
        else:
            locale = locale_for(message.from_user.language_code, self.ctx.settings.program.default_locale)
        await self.assess(event, message, text, locale, data, known=person is not None)
        return await handler(event, data)

    async def assess(self, event: Update, message: Message, text: str, locale: str, data: dict[str, Any], *,
                     known: bool) -> None:
        """Assess `text` and put the assessment in `data`; when flagged, the fixed crisis reply at
        once; the second opinion (if any) in the background, for someone the bot knows."""
        received_at = self.ctx.clock.now()
        assessment = self.assessor.assess(text, locale)
        late: asyncio.Future[Assessment | None] | None = None
        if self.semantic is not None:
            # What the rules have no words for, read by meaning, for everyone the gate assesses (a
            # participant this process has not met yet included). It runs on its own thread in
            # batches; waited for a moment so that the one reply, the record, the page and the
            # lanes see one level. Later than that, or when the rules already page (then it can
            # only make it imminent), its answer is applied in the background: reply and page.
            pending = self.semantic.submit(text, locale)
            if assessment.level < Level.URGENT:
                try:
                    opinion = await asyncio.wait_for(asyncio.shield(pending), self.ctx.settings.semantic.wait_ms / 1000)
                except TimeoutError:
                    late = pending
                else:
                    if opinion is not None:
                        assessment = assessment.combine(opinion)
            else:
                late = pending
        data["assessment"] = assessment
        data["message_received_at"] = received_at
        first_time = not self._seen(event.update_id)
        if assessment.flagged and first_time and not data.get("about_someone_else"):
            data["crisis_reply_sent_at"] = await self._reply(data["bot"], private_chat_of(message), assessment.level,
                                                             locale, in_group=in_group(message))
        if late is not None and first_time and not data.get("about_someone_else"):
            self._in_background(self._apply_opinion(
                data["bot"], message, text, locale, assessment, received_at, data.get("crisis_reply_sent_at"),
                event.update_id, late, "semantic"))
        if self.second_opinion is not None and first_time and known and not data.get("about_someone_else") \
                and self.breaker.allow():
            # Never on the critical path: the reply above did not wait, and the handler won't.
            task = asyncio.create_task(self._ask_second_opinion(
                data["bot"], message, text, locale, assessment, received_at, data.get("crisis_reply_sent_at"),
                event.update_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _in_background(self, job: Awaitable[None]) -> None:
        task = asyncio.ensure_future(job)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _ask_second_opinion(self, bot: Bot, message: Message, text: str, locale: str, rules: Assessment,
                                  received_at: Any, reply_sent_at: Any, update_id: int) -> None:
        """The optional LLM layer: it may raise the level (then reply and escalate), never lower it."""
        assert self.second_opinion is not None
        opinion: Assessment | None = None
        try:
            opinion = await self.second_opinion.assess(text, locale, ref=str(update_id))
        finally:
            self.breaker.done(answered=opinion is not None)
        await self._apply_opinion(bot, message, text, locale, rules, received_at, reply_sent_at, update_id,
                                  opinion, "llm")

    async def _apply_opinion(self, bot: Bot, message: Message, text: str, locale: str, rules: Assessment,
                             received_at: Any, reply_sent_at: Any, update_id: int,
                             opinion: Assessment | Awaitable[Assessment | None] | None, source: str) -> None:
        """A layer that answered after the rules (the LLM, a late semantic layer) may raise the
        level: then the crisis reply for the new level and the escalation; never lower it."""
        from sqlalchemy import select

        from bot.db.models import Participant
        from bot.services.escalation.record import raise_after_second_opinion

        assert message.from_user is not None
        try:
            if opinion is not None and not isinstance(opinion, Assessment):
                opinion = await opinion
            merged = rules.combine(opinion) if opinion is not None else rules
            if merged.level <= rules.level:
                return
            log.warning("%s opinion raised update %s from %s to %s", source, update_id, rules.level.label,
                        merged.level.label)
            reply_sent_at = await self._reply(bot, private_chat_of(message), merged.level, locale,
                                              in_group=in_group(message)) or reply_sent_at
            async with self.ctx.sessionmaker() as session:
                participant = await session.scalar(
                    select(Participant).where(Participant.telegram_user_id == message.from_user.id))
                if participant is None:
                    return
                escalation, _ = await raise_after_second_opinion(
                    session, self.ctx, participant, text=text, telegram_message_id=message.message_id,
                    assessment=merged, received_at=received_at, crisis_reply_sent_at=reply_sent_at,
                    source=f"message+{source}")
                await session.commit()
            if escalation is not None:
                # "Your care team has been told" follows from the outbox once a page was delivered.
                self.ctx.wake_outbox()
        except Exception:
            log.exception("%s opinion for update %s could not be applied", source, update_id)

    async def _reply(self, bot: Bot, chat_id: int, level: Level, locale: str, *, in_group: bool = False) -> Any:
        text = crisis_reply_text(self.ctx, level, locale)
        if in_group:  # in their private chat, never in the group: say which words it answers
            text = self.ctx.t("groups.crisis_preface", locale) + "\n\n" + text
        try:
            await say(TelegramMessenger(bot), chat_id, text, urgent=True)
        except NotDelivered as exc:
            # Recorded by the sender; the escalation still goes ahead so a human follows up.
            log.error("crisis reply to chat %s failed: %s", chat_id, str(exc)[:120])
            return None
        return self.ctx.clock.now()


    # --- a cohort's group chat (README "Peer groups"; bot/services/groups/) ----------------------

    async def assess_in_group(self, event: Update, message: Message, text: str, data: dict[str, Any], *,
                              locale: str | None = None) -> None:
        """A message in a group: assessed like a private one (`assess`), the crisis reply going to
        the writer's private chat. From the gate (no database): only in a group known to be linked,
        and only for a participant the bot remembers; staff never. FlagRecorder calls it with the
        `locale` once the database has said the group is linked and who is writing, if the gate could
        not. A reply to someone else's message that speaks to them and not about the writer is a
        peer's worry: assessed, but no crisis reply and no page for the writer."""
        from bot.services.groups.chats import LinkedGroups
        from bot.services.groups.watch import is_peer_worry

        assert message.from_user is not None
        if locale is None:
            linked = self.ctx.parts.find(LinkedGroups)
            person = self.ctx.directory.get(message.from_user.id)
            if linked is None or message.chat.id not in linked or person is None or person.role == "staff":
                return
            locale = person.locale
        target = message.reply_to_message
        replying_to_other = (target is not None and target.from_user is not None and not target.from_user.is_bot
                             and target.from_user.id != message.from_user.id
                             and target.message_id != message.message_thread_id)
        data["about_someone_else"] = is_peer_worry(text, replying_to_someone_else=replying_to_other)
        await self.assess(event, message, text, locale, data, known=True)


GROUP_CHATS = frozenset({"group", "supergroup"})


def in_group(message: Message) -> bool:
    return getattr(message.chat, "type", None) in GROUP_CHATS


def private_chat_of(message: Message) -> int:
    """Where the crisis reply to `message` goes: its chat, or for a group message, the writer's
    private chat with the bot (a user's private chat has their user id)."""
    if in_group(message) and message.from_user is not None:
        return message.from_user.id
    return message.chat.id


class FlagRecorder(BaseMiddleware):
    """After the gate and the actor lookup: write what the gate found, in the update's transaction.

    A participant's flagged message (or any message while an escalation is open) is stored with
    its escalation and first page (`data["stored_message"]`, so the fallback does not keep it
    again); the care-team line is sent only after a page was delivered
    (bot/services/escalation/paging.py).
    """

    def __init__(self, ctx: AppContext, gate: SafetyGate | None = None) -> None:
        self.ctx = ctx
        self.gate = gate

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        from bot.db.models import Participant
        from bot.services.escalation.record import open_escalation, record_message

        actor = data.get("actor")
        assert isinstance(event, Update)
        message = participant_message(event)
        if message is not None and in_group(message):
            await self._group_message(event, message, data)
            return await handler(event, data)
        if message is not None and actor is None and data.get("assessment") is not None:
            await self._support_person_text(message, data)
            return await handler(event, data)
        if message is None or not isinstance(actor, Participant):
            return await handler(event, data)
        if data.get("assessment") is None and self.gate is not None:
            # The gate took them for staff (its memory was older than this database read: a staff
            # member who left and is a participant now). Every participant's text is assessed.
            text = assessed_text(message)
            if text is not None and is_private(message.chat):
                await self.gate.assess(event, message, text, actor.locale, data, known=True)
        assessment: Assessment | None = data.get("assessment")
        if assessment is None:
            return await handler(event, data)
        session = data["session"]
        # The actor lookup said whether an alert is open (same transaction); asked here otherwise.
        open_alert = data.get("open_alert")
        if open_alert is None:
            open_alert = await open_escalation(session, actor.id) is not None
        if assessment.flagged or open_alert:
            record = await record_message(
                session, self.ctx, actor, text=assessed_text(message) or "", telegram_message_id=message.message_id,
                assessment=assessment, received_at=data["message_received_at"],
                crisis_reply_sent_at=data.get("crisis_reply_sent_at"),
                source="edited_message" if event.edited_message is not None else "message",
            )
            data["stored_message"] = record.inbound
            replies = data["replies"]
            if record.escalation is not None:
                # The page goes now; "your care team has been told" follows from the outbox once a
                # page was delivered (bot/services/escalation/paging.py), never before.
                replies.outbox_due = True
                lane = data.get("lane")
                if record.new_escalation and lane is not None:
                    lane.page_due = True  # the backlog waits for this first page (bot/telegram/lanes.py)
        return await handler(event, data)

    async def _group_message(self, event: Update, message: Message, data: dict[str, Any]) -> None:
        """A message in a group chat: only a linked group's are looked at (`data["group_chat"]`
        for the groups router). A participant's text is assessed if the gate could not, and a
        flagged one is recorded and pages exactly as a private one would; the cohort's facilitators
        are told (bot/services/groups/watch.py). A peer's worry pages nobody about the writer."""
        from bot.db.models import Participant
        from bot.services.escalation.record import record_message
        from bot.services.groups.chats import group_chat
        from bot.services.groups.watch import flag_in_group

        session, actor = data["session"], data.get("actor")
        chat = await group_chat(session, message.chat.id)
        data["group_chat"] = chat
        text = assessed_text(message)
        if chat is None or chat.cohort_id is None or not isinstance(actor, Participant) or text is None:
            return
        if data.get("assessment") is None and self.gate is not None:
            await self.gate.assess_in_group(event, message, text, data, locale=actor.locale)
        assessment: Assessment | None = data.get("assessment")
        if assessment is None or not assessment.flagged:
            return
        about_other = bool(data.get("about_someone_else"))
        inbound = None
        replies = data["replies"]
        if not about_other:
            record = await record_message(
                session, self.ctx, actor, text=text, telegram_message_id=message.message_id, assessment=assessment,
                received_at=data["message_received_at"], crisis_reply_sent_at=data.get("crisis_reply_sent_at"),
                source="group")
            data["stored_message"], inbound = record.inbound, record.inbound
            lane = data.get("lane")
            if record.new_escalation and lane is not None:
                lane.page_due = True  # the backlog waits for this first page (bot/telegram/lanes.py)
        await flag_in_group(session, self.ctx, chat, actor, telegram_message_id=message.message_id,
                            assessment=assessment, inbound=inbound, about_other=about_other,
                            now=data["message_received_at"])
        replies.outbox_due = True  # the page and the facilitators' notice go now

    async def _support_person_text(self, message: Message, data: dict[str, Any]) -> None:
        """Neither staff nor a participant: a support person (#17)? Their words were assessed and
        answered by the gate like anyone's; here a flagged one (or any, while an alert of theirs
        is open) is stored and reaches the participant's care team (bot/services/support/safety.py)."""
        from bot.services.support.safety import record_support_text
        from bot.services.support.service import find_by_telegram

        if message.from_user is None:
            return
        person = await find_by_telegram(data["session"], message.from_user.id)
        data["support_person"] = person  # the support router need not look again
        if person is None:
            return
        record = await record_support_text(
            data["session"], self.ctx, person, text=assessed_text(message) or "",
            telegram_message_id=message.message_id, assessment=data["assessment"],
            received_at=data["message_received_at"], crisis_reply_sent_at=data.get("crisis_reply_sent_at"))
        if record.message is not None:
            data["replies"].outbox_due = True  # the page, or the clinician's notice, goes now
            lane = data.get("lane")
            if record.new_escalation and lane is not None:
                lane.page_due = True  # the backlog waits for this first page (bot/telegram/lanes.py)
