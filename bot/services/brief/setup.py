"""Wiring of the pre-session brief and the daily digest into a running bot.

`install_brief(ctx, worker)` is called once by `bot.runtime.assemble`. The sections other features
add to a brief (goals, medication reminders, the chart) are plugged in here (sections.py), so the
brief's own modules depend on none of them.
"""

from __future__ import annotations

from bot.context import AppContext
from bot.services.brief import sections
from bot.services.brief.digest import DAILY_DIGEST, DigestPlanner, send_daily_digest
from bot.services.brief.service import BRIEF, BriefPlanner, BriefSender
from bot.services.scheduling.outbox import OutboxWorker


def install_brief(ctx: AppContext, worker: OutboxWorker | None = None) -> BriefSender:
    sender = ctx.parts.add(BriefSender(extra=[sections.goals_section, sections.medication_section],
                                       chart=sections.chart))
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
