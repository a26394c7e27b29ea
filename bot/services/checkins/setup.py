"""Wiring of the flow engine, the daily check-in and its planner into a running bot.

`install_checkins(ctx, worker)` is called once by `bot.runtime.assemble`: it loads the check-in
questions (a broken English file stops the start, like broken safety rules do), registers the
check-in flow with the engine, adds the planner to `ctx.parts` and to the planners that
`participant_schedule_changed` tells, and registers the senders and the planning step with the
outbox worker.
"""

from __future__ import annotations

from bot.content.checkins import load_checkin_content
from bot.context import AppContext
from bot.flows.checkin import CHECKIN
from bot.flows.engine import FlowEngine
from bot.services.checkins.planner import CheckinPlanner
from bot.services.checkins.service import NUDGE, CheckinFlow, send_checkin, send_nudge
from bot.services.scheduling.outbox import ActionSender, OutboxWorker

CHECKIN_SENDERS: dict[str, ActionSender] = {CHECKIN: send_checkin, NUDGE: send_nudge}


def flow_engine(ctx: AppContext) -> FlowEngine:
    """The one engine of this app; other flow kinds (exercises, questionnaires) register here too."""
    engine = ctx.parts.find(FlowEngine)
    return engine if engine is not None else ctx.parts.add(FlowEngine(ctx))


def install_checkins(ctx: AppContext, worker: OutboxWorker | None = None) -> CheckinPlanner:
    content = load_checkin_content(ctx.settings.content_dir, ctx.settings.checkin.questionnaire,
                                   allow_drafts=ctx.settings.content.allow_drafts)
    flow_engine(ctx).register(CheckinFlow(ctx, content))
    planner = ctx.parts.add(CheckinPlanner(ctx))
    ctx.replanners.append(planner)
    if worker is not None:
        for kind, sender in CHECKIN_SENDERS.items():
            worker.register(kind, sender)
        worker.add_planner("check-ins", planner.tick)
    return planner
