"""`iopbot content stats`: what works, per item, so authors can see it.

Per snippet: how many participants got it (drip or /learn), their answers to "Was this
helpful?" (yes / no), and how many saved it. Per exercise: runs started and finished, and the
same answers and saves. Counts only: no participant, no answer text. Items no longer in the
library are listed with their id so old numbers do not vanish.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.content.library import Library
from bot.content.model import DEFAULT_LOCALE, Exercise
from bot.db.checkin_models import FlowRun, FlowStatus
from bot.db.content_models import EXERCISE, ContentReceipt


@dataclass
class ItemStats:
    item_id: str
    kind: str  # snippet | exercise | unknown (no longer in the library)
    title: str
    delivered: int = 0
    helpful_yes: int = 0
    helpful_no: int = 0
    saved: int = 0
    started: int = 0
    finished: int = 0


async def content_stats(session: AsyncSession, library: Library) -> list[ItemStats]:
    """One row per item in the library (English titles) and per id with data but no file."""
    rows: dict[str, ItemStats] = {}
    for item in sorted((i for i in library if i.locale == DEFAULT_LOCALE), key=lambda i: i.meta.sort_key):
        kind = "exercise" if isinstance(item, Exercise) else "snippet"
        rows[item.id] = ItemStats(item.id, kind, item.title)
    for item in library:  # items only in another language
        if item.id not in rows:
            rows[item.id] = ItemStats(item.id, "exercise" if isinstance(item, Exercise) else "snippet", item.title)

    def row(item_id: str) -> ItemStats:
        return rows.setdefault(item_id, ItemStats(item_id, "unknown", "(not in the library)"))

    receipts = await session.execute(
        select(ContentReceipt.item_id,
               func.count(ContentReceipt.first_delivered_at),
               func.sum(case((ContentReceipt.helpful.is_(True), 1), else_=0)),
               func.sum(case((ContentReceipt.helpful.is_(False), 1), else_=0)),
               func.count(ContentReceipt.saved_at))
        .group_by(ContentReceipt.item_id))
    for item_id, delivered, yes, no, saved in receipts:
        stats = row(item_id)
        stats.delivered, stats.helpful_yes, stats.helpful_no, stats.saved = (
            int(delivered or 0), int(yes or 0), int(no or 0), int(saved or 0))
    runs = await session.execute(
        select(FlowRun.flow_id, func.count(FlowRun.id),
               func.sum(case((FlowRun.status == FlowStatus.FINISHED, 1), else_=0)))
        .where(FlowRun.kind == EXERCISE).group_by(FlowRun.flow_id))
    for flow_id, started, finished in runs:
        stats = row(flow_id)
        if stats.kind == "unknown":
            stats.kind = "exercise"
        stats.started, stats.finished = int(started or 0), int(finished or 0)
    return list(rows.values())


def format_stats(stats: list[ItemStats]) -> str:
    """Two tables, snippets then exercises, for a terminal."""
    snippets = [s for s in stats if s.kind in ("snippet", "unknown")]
    exercises = [s for s in stats if s.kind == "exercise"]
    width = max([len(s.item_id) for s in stats] + [10])
    out = [f"{'snippet':<{width}}  {'delivered':>9}  {'helpful':>7}  {'not':>5}  {'saved':>5}"]
    out += [f"{s.item_id:<{width}}  {s.delivered:>9}  {s.helpful_yes:>7}  {s.helpful_no:>5}  {s.saved:>5}"
            for s in snippets]
    out += ["", f"{'exercise':<{width}}  {'started':>9}  {'finished':>8}  {'helpful':>7}  {'not':>5}  {'saved':>5}"]
    out += [f"{s.item_id:<{width}}  {s.started:>9}  {s.finished:>8}  {s.helpful_yes:>7}  {s.helpful_no:>5}  "
            f"{s.saved:>5}" for s in exercises]
    out += ["", "helpful / not: answers to \"Was this helpful?\"; delivered: participants who got the snippet."]
    return "\n".join(out)


def stats_json(stats: list[ItemStats]) -> str:
    return json.dumps([asdict(s) for s in stats], ensure_ascii=False, indent=2)

