"""Wiring of support persons into a running bot (called once from bot.runtime.assemble): the family
reads, the kinds of rows and their senders, and the planners of the weekly check-in and of the
family-session reminders."""

from __future__ import annotations

import logging

from bot.context import AppContext
from bot.services.scheduling.outbox import ActionSender, OutboxWorker
from bot.services.support.checkins import CHECKIN_KIND, UPDATE_KIND, WeeklyPlanner
from bot.services.support.family import load_family
from bot.services.support.reminders import FAMILY_REMINDER_KIND, FamilyReminderPlanner, send_family_reminder
from bot.services.support.safety import CONCERN_KIND
from bot.services.support.senders import send_checkin, send_concern, send_notice, send_update
from bot.services.support.service import NOTICE_KIND

log = logging.getLogger(__name__)

SUPPORT_SENDERS: dict[str, ActionSender] = {
    NOTICE_KIND: send_notice,
    UPDATE_KIND: send_update,
    CHECKIN_KIND: send_checkin,
    FAMILY_REMINDER_KIND: send_family_reminder,
    CONCERN_KIND: send_concern,
}


def install_support(ctx: AppContext, worker: OutboxWorker | None = None) -> None:
    c = ctx.settings.content
    family = ctx.parts.add(load_family(ctx.settings.content_dir, allow_drafts=c.allow_drafts,
                                       grade_limit=c.reading_grade_limit))
    for problem in family.problems:
        if problem.is_error:
            log.error("family read left out: %s", problem)
    if worker is None:
        return
    for kind, sender in SUPPORT_SENDERS.items():
        # A concern about a support person, like any staff notice, is still worth sending late.
        worker.register(kind, sender, never_expire=kind == CONCERN_KIND)
    worker.add_planner("support persons' weeks", WeeklyPlanner(ctx).tick)
    worker.add_planner("family-session reminders", FamilyReminderPlanner(ctx).tick)
