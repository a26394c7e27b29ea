"""Wiring of content delivery into a running bot.

`install_content(ctx, worker)` is called once by `bot.runtime.assemble`: it loads the content
library into a `ContentStore` (`ctx.parts.get(ContentStore)`), registers skill exercises with the
flow engine, adds the drip planner to `ctx.parts` and to the planners `participant_schedule_changed`
tells, and registers with the outbox worker: the hot reload of changed content files and the drip
planning (run each tick, before the claim), and the senders of `exercise_step` and `content_drip` rows.

Hot reload: each tick compares the content files' sizes and modification times (a few hundred
stat calls, in a worker thread); only a change loads the library again. A change that breaks a
file keeps the last good library in service; the store logs the file and its error count, never
its text.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from bot.content.model import known_tracks
from bot.content.store import ContentStore
from bot.context import AppContext
from bot.db.content_models import CONTENT_DRIP, EXERCISE_STEP
from bot.services.checkins.setup import flow_engine
from bot.services.learning.drip import DripPlanner, send_drip
from bot.services.learning.exercises import ExerciseFlow, send_exercise_step
from bot.services.scheduling.outbox import ActionSender, OutboxWorker

log = logging.getLogger(__name__)

CONTENT_SENDERS: dict[str, ActionSender] = {EXERCISE_STEP: send_exercise_step, CONTENT_DRIP: send_drip}


class ContentReloader:
    """The tick step that keeps the served library in line with the files."""

    def __init__(self, store: ContentStore) -> None:
        self.store = store

    async def tick(self, now: datetime) -> None:
        # The store logs what it did (files and error counts; never content).
        try:
            await asyncio.to_thread(self.store.reload_if_changed)
        except Exception as exc:  # e.g. the folder is unreadable: keep serving, keep sending
            log.error("content reload failed (%s); still serving the previous library", type(exc).__name__)


def install_content(ctx: AppContext, worker: OutboxWorker | None = None, *,
                    store: ContentStore | None = None) -> ContentStore:
    """`store`: one already loaded from `ctx.settings.content_dir` with these settings (tests share
    one per session); by default the library is loaded here."""
    c = ctx.settings.content
    if store is None:
        store = ContentStore(ctx.settings.content_dir, allow_drafts=c.allow_drafts,
                             grade_limit=c.reading_grade_limit, tracks=known_tracks(c.tracks))
    ctx.parts.add(store)
    flow_engine(ctx).register(ExerciseFlow(ctx, store))
    planner = ctx.parts.add(DripPlanner(ctx))
    ctx.replanners.append(planner)
    if worker is not None:
        for kind, sender in CONTENT_SENDERS.items():
            worker.register(kind, sender)
        worker.add_planner("content reload", ContentReloader(store).tick)
        worker.add_planner("daily read", planner.tick)
    return store
