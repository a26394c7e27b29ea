"""Psychoeducation and the participant's own shelf: /learn, /skills, /favorites, /plan, /safetyplan,
and "Was this helpful?".

- /learn: topics (buttons) → the titles of a topic (✓ marks what they read) → the snippet's
  messages (rendered from the content library, split under Telegram's limit) → "Was this
  helpful?" with Yes / No and ⭐ Save. Every delivery, answer and save is one `ContentReceipt` row
  per participant and item, which the daily drip and `iopbot content stats` read.
- /skills: "Continue <title>" for an exercise in progress or set aside, then every exercise.
- /plan and /safetyplan: the newest answer per key of the relapse-prevention plan and the safety
  plan exercises, in the participant's own words, or an offer to make one; always followed by
  the crisis numbers.

Content is looked up in the library being served now (`ctx.parts.get(ContentStore)`, hot reloaded);
drafts are in it only when `[content] allow_drafts` is on. /learn offers snippets of every track
(a participant may look for anything); only the daily read goes by track (drip.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.content.callbacks import (
    CONTINUE_RUN,
    OPEN_SNIPPET,
    START_EXERCISE,
    TOPIC,
    TOPICS,
    item_callback,
)
from bot.content.library import Library
from bot.content.model import Exercise, Snippet, Topic
from bot.content.render import TELEGRAM_TEXT_LIMIT, Block, Span, blocks_html, pack_messages, render_snippet
from bot.content.store import ContentStore
from bot.context import AppContext
from bot.db.content_models import ContentReceipt, DeliveredVia, ExerciseAnswer
from bot.db.models import Participant
from bot.messaging import Choice, Keyboard, Replies, in_rows, keyboard
from bot.services.learning.exercises import RELAPSE_PREVENTION_PLAN, SAFETY_PLAN, exercise_flow, open_exercise_runs
from bot.services.learning.receipts import feedback_prompt, receipt_for, record_delivery

# The plans /plan and /safetyplan show: the exercise, its answer keys in order, the ui.toml section.
PLANS: dict[str, tuple[str, tuple[str, ...]]] = {
    "plan": (RELAPSE_PREVENTION_PLAN, ("triggers", "warning_signs", "coping_steps", "people_to_call")),
    "safetyplan": (SAFETY_PLAN, ("warning_signs", "coping_strategies", "social_distractions",
                                 "people_to_ask_for_help", "professionals_and_crisis_lines",
                                 "making_environment_safe", "reasons_for_living")),
}
# Room in a message for a lead line (the drip's "Today's short read") above a snippet.
SNIPPET_LIMIT = TELEGRAM_TEXT_LIMIT - 200


def content_library(ctx: AppContext) -> Library:
    """The library being served now (replaced as a whole when the files change)."""
    return ctx.parts.get(ContentStore).library




async def answer_helpful(session: AsyncSession, ctx: AppContext, participant: Participant, item_id: str,
                         helpful: bool, replies: Replies, message_id: int | None) -> None:
    receipt = await receipt_for(session, participant.id, item_id)
    receipt.helpful, receipt.answered_at = helpful, ctx.clock.now()
    _refresh_prompt(ctx, participant, item_id, receipt, replies, message_id)


async def set_saved(session: AsyncSession, ctx: AppContext, participant: Participant, item_id: str, saved: bool,
                    replies: Replies, message_id: int | None) -> None:
    receipt = await receipt_for(session, participant.id, item_id)
    receipt.saved_at = ctx.clock.now() if saved else None
    replies.notice(ctx.t("feedback.saved" if saved else "feedback.unsaved", participant.locale))
    _refresh_prompt(ctx, participant, item_id, receipt, replies, message_id)


def _refresh_prompt(ctx: AppContext, participant: Participant, item_id: str, receipt: ContentReceipt,
                    replies: Replies, message_id: int | None) -> None:
    if message_id is not None and participant.chat_id is not None:
        text, kb = feedback_prompt(ctx, participant.locale, item_id, receipt)
        replies.edit(participant.chat_id, message_id, text, kb)


# --- /learn ------------------------------------------------------------------------------------------

def topic_label(ctx: AppContext, topic: str, locale: str) -> str:
    return ctx.t(f"learn.topic_{topic}", locale)


def topics_menu(ctx: AppContext, locale: str) -> tuple[str, Keyboard | None]:
    """/learn: one button per topic that has something to read."""
    present = {s.meta.topic for s in content_library(ctx).snippets(locale)}
    topics = [t for t in Topic if t in present]
    if not topics:
        return ctx.t("learn.none", locale), None
    buttons = [(topic_label(ctx, t.value, locale), item_callback(TOPIC, t.value)) for t in topics]
    return ctx.t("learn.choose_topic", locale), keyboard(in_rows(buttons, 2))


def topic_menu(ctx: AppContext, locale: str, topic: str, read: set[str]) -> tuple[str, Keyboard]:
    """The titles of one topic; ✓ marks the ones already read."""
    snippets = content_library(ctx).snippets(locale, topic=topic)
    rows: list[list[Choice]] = [
        [(ctx.t("learn.read_title", locale, title=s.title) if s.id in read else s.title,
          item_callback(OPEN_SNIPPET, s.id))]
        for s in snippets
    ]
    rows.append([(ctx.t("learn.back", locale), item_callback(TOPICS, "-"))])
    text = ctx.t("learn.topic_title", locale, topic=topic_label(ctx, topic, locale)) if snippets \
        else ctx.t("learn.none", locale)
    return text, keyboard(rows)


def snippet_messages(snippet: Snippet, lead: str | None = None) -> list[str]:
    """The snippet's messages as HTML, each under Telegram's limit; `lead` above the first."""
    texts = [m.text for m in render_snippet(snippet, limit=SNIPPET_LIMIT)]
    if lead and texts:
        texts[0] = f"{lead}\n\n{texts[0]}"
    return texts


async def open_snippet(session: AsyncSession, ctx: AppContext, participant: Participant, item_id: str,
                       replies: Replies) -> None:
    """Send a snippet, then "Was this helpful?"; note the delivery."""
    chat_id = participant.chat_id or 0
    snippet = content_library(ctx).snippet(item_id, participant.locale)
    if snippet is None:
        replies.text(chat_id, ctx.t("learn.not_available", participant.locale))
        return
    for text in snippet_messages(snippet):
        replies.text(chat_id, text)
    receipt = await record_delivery(session, ctx, participant.id, snippet.id, DeliveredVia.LEARN)
    text, kb = feedback_prompt(ctx, participant.locale, snippet.id, receipt)
    replies.text(chat_id, text, kb)


# --- /favorites and /skills ------------------------------------------------------------------------------

def _item_button(item: Snippet | Exercise) -> Choice:
    action = START_EXERCISE if isinstance(item, Exercise) else OPEN_SNIPPET
    return item.title, item_callback(action, item.id)


async def favorites_menu(session: AsyncSession, ctx: AppContext, participant: Participant
                         ) -> tuple[str, Keyboard | None]:
    locale = participant.locale
    saved = (await session.scalars(
        select(ContentReceipt.item_id).where(ContentReceipt.participant_id == participant.id,
                                             ContentReceipt.saved_at.is_not(None))
        .order_by(ContentReceipt.saved_at.desc(), ContentReceipt.id.desc()))).all()
    library = content_library(ctx)
    items = [item for item in (library.get(item_id, locale) for item_id in saved) if item is not None]
    if not items:
        return ctx.t("favorites.none", locale), None
    return ctx.t("favorites.title", locale), keyboard([[_item_button(item)] for item in items])


async def skills_menu(session: AsyncSession, ctx: AppContext, participant: Participant
                      ) -> tuple[str, Keyboard | None]:
    locale = participant.locale
    rows: list[list[Choice]] = []
    flow = exercise_flow(ctx)
    for run in (await open_exercise_runs(session, participant.id))[:1]:
        exercise = flow.exercise(run.flow_id, run.locale)
        if exercise is not None:
            rows.append([(ctx.t("skills.continue", locale, title=exercise.title),
                          item_callback(CONTINUE_RUN, str(run.id)))])
    rows += [[_item_button(exercise)] for exercise in content_library(ctx).exercises(locale)]
    if not rows:
        return ctx.t("skills.none", locale), None
    return ctx.t("skills.title", locale), keyboard(rows)


# --- /plan and /safetyplan -----------------------------------------------------------------------------

async def latest_answers(session: AsyncSession, participant_id: int, exercise_id: str) -> dict[str, str]:
    """The newest answer per key over every run of this exercise (a skipped part keeps the older one)."""
    answers = (await session.scalars(
        select(ExerciseAnswer).where(ExerciseAnswer.participant_id == participant_id,
                                     ExerciseAnswer.exercise_id == exercise_id)
        .order_by(ExerciseAnswer.answered_at.desc(), ExerciseAnswer.id.desc()))).all()
    latest: dict[str, str] = {}
    for answer in answers:
        value = answer.value_text if answer.value_text is not None else answer.value_choice
        if value and answer.key not in latest:
            latest[answer.key] = value
    return latest


def plan_messages(ctx: AppContext, locale: str, section: str, keys: Sequence[str],
                  answers: dict[str, str]) -> list[str]:
    """The plan as messages: a heading per part, the participant's words below it (escaped, split
    at paragraphs under Telegram's limit)."""
    blocks: list[Block] = [((Span(ctx.t(f"{section}.title", locale), bold=True),),)]
    for key in keys:
        heading = (Span(ctx.t(f"{section}.{key}", locale), bold=True),)
        words = [(Span(line.strip()),) for line in answers.get(key, "").splitlines() if line.strip()]
        blocks.append((heading, *(words or [(Span(ctx.t("plan.skipped", locale), italic=True),)])))
    return [blocks_html(message) for message in pack_messages(blocks)]


async def show_plan(session: AsyncSession, ctx: AppContext, participant: Participant, section: str,
                    replies: Replies) -> None:
    """/plan or /safetyplan: the plan in their words (or an offer to make one), then crisis numbers."""
    exercise_id, keys = PLANS[section]
    locale, chat_id = participant.locale, participant.chat_id or 0
    answers = await latest_answers(session, participant.id, exercise_id)
    available = exercise_flow(ctx).exercise(exercise_id, locale) is not None
    if any(answers.get(k) for k in keys):
        for text in plan_messages(ctx, locale, section, keys, answers):
            replies.text(chat_id, text)
        label = ctx.t(f"{section}.update", locale)
    else:
        replies.text(chat_id, ctx.t(f"{section}.none", locale))
        label = ctx.t(f"{section}.make", locale)
    button = keyboard([[(label, item_callback(START_EXERCISE, exercise_id))]]) if available else None
    replies.text(chat_id, ctx.t(f"{section}.crisis", locale), button)


# --- /mydata ------------------------------------------------------------------------------------------

async def content_export(session: AsyncSession, participant_id: int) -> dict[str, list[dict[str, object]]]:
    """For the participant's own export: what they read, answered and saved, and their exercise answers."""
    receipts = (await session.scalars(select(ContentReceipt).where(ContentReceipt.participant_id == participant_id)
                                      .order_by(ContentReceipt.id))).all()
    answers = (await session.scalars(select(ExerciseAnswer).where(ExerciseAnswer.participant_id == participant_id)
                                     .order_by(ExerciseAnswer.id))).all()

    def iso(value: object) -> str | None:
        return value.isoformat() if hasattr(value, "isoformat") else None

    return {
        "reads": [{"item": r.item_id, "first_delivered_at": iso(r.first_delivered_at), "helpful": r.helpful,
                   "saved_at": iso(r.saved_at)} for r in receipts],
        "exercise_answers": [{"exercise": a.exercise_id, "run": a.run_id, "key": a.key,
                              "answer": a.value_text if a.value_text is not None else a.value_choice,
                              "answered_at": iso(a.answered_at)} for a in answers],
    }
