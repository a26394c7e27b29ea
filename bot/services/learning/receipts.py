"""What each participant got of the content library, and what they thought of it: one
`ContentReceipt` row per participant and item (first delivery and how, deliveries, "Was this
helpful?", ⭐ saved). The daily drip, /learn, exercises and `iopbot content stats` read it."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.content.callbacks import HELPFUL_NO, HELPFUL_YES, SAVE, UNSAVE, item_callback
from bot.context import AppContext
from bot.db.content_models import ContentReceipt
from bot.messaging import Choice, Keyboard, keyboard

__all__ = ["delivered_ids", "feedback_prompt", "receipt_for", "record_delivery"]


# --- receipts ---------------------------------------------------------------------------------------

async def receipt_for(session: AsyncSession, participant_id: int, item_id: str) -> ContentReceipt:
    """The participant's row for this item, created if needed (safe when two updates race)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(insert(ContentReceipt).values(participant_id=participant_id, item_id=item_id, deliveries=0)
                          .on_conflict_do_nothing(index_elements=["participant_id", "item_id"]))
    receipt = await session.scalar(select(ContentReceipt).where(ContentReceipt.participant_id == participant_id,
                                                                ContentReceipt.item_id == item_id))
    assert receipt is not None
    return receipt


async def record_delivery(session: AsyncSession, ctx: AppContext, participant_id: int, item_id: str, via: str,
                          drip_date: date | None = None) -> ContentReceipt:
    """Note that the participant got this item now (first time: when and how)."""
    receipt = await receipt_for(session, participant_id, item_id)
    if receipt.first_delivered_at is None:
        receipt.first_delivered_at, receipt.delivered_via = ctx.clock.now(), via
    receipt.deliveries += 1
    if drip_date is not None:
        receipt.drip_date = drip_date
    return receipt


async def delivered_ids(session: AsyncSession, participant_id: int) -> set[str]:
    """Items this participant has already been sent or has opened."""
    return set((await session.scalars(
        select(ContentReceipt.item_id).where(ContentReceipt.participant_id == participant_id,
                                             ContentReceipt.first_delivered_at.is_not(None)))).all())


# --- "Was this helpful?" and ⭐ Save ------------------------------------------------------------------

def feedback_prompt(ctx: AppContext, locale: str, item_id: str, receipt: ContentReceipt | None
                    ) -> tuple[str, Keyboard]:
    """The message under a snippet or at the end of an exercise, as it stands for this participant."""
    helpful = receipt.helpful if receipt is not None else None
    saved = receipt is not None and receipt.saved_at is not None
    if helpful is None:
        text = ctx.t("feedback.question", locale)
    else:
        text = ctx.t("feedback.answered_yes" if helpful else "feedback.answered_no", locale)
    rows: list[list[Choice]] = []
    if helpful is None:
        rows.append([(ctx.t("feedback.yes", locale), item_callback(HELPFUL_YES, item_id)),
                     (ctx.t("feedback.no", locale), item_callback(HELPFUL_NO, item_id))])
    rows.append([(ctx.t("feedback.unsave" if saved else "feedback.save", locale),
                  item_callback(UNSAVE if saved else SAVE, item_id))])
    return text, keyboard(rows)
