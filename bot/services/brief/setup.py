"""Wiring of the pre-session brief and the daily digest into a running bot.

`install_brief(ctx, worker, extra=, chart=)` is called once by `bot.runtime.assemble` with the
sections other features add to a participant's brief (goals, medication reminders) and the chart,
so the brief depends on none of them and each keeps its own words.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.context import AppContext
from bot.services.brief.digest import DAILY_DIGEST, DigestPlanner, send_daily_digest
from bot.services.brief.service import BRIEF, BriefPlanner, BriefSender, Chart, ExtraLines
from bot.services.scheduling.outbox import OutboxWorker


def install_brief(ctx: AppContext, worker: OutboxWorker | None = None, *, extra: Sequence[ExtraLines] = (),
                  chart: Chart | None = None) -> BriefSender:
    sender = BriefSender()
    sender.extra.extend(extra)
    sender.chart = chart
    ctx.parts.add(sender)
    if worker is not None:
        planner = ctx.parts.add(BriefPlanner(ctx))
        digests = ctx.parts.add(DigestPlanner(ctx))
        # A brief or digest that comes late is still worth reading until the session ends (the
        # sender skips it after that), so neither expires with the ordinary grace period.
        worker.register(BRIEF, sender, never_expire=True)
        worker.register(DAILY_DIGEST, send_daily_digest)
        worker.add_planner("session briefs", planner.tick)
        worker.add_planner("daily digests", digests.tick)
    return sender
