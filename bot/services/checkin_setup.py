"""Wiring of the flow engine, the daily check-in and its planner into a running bot.

`install_checkins(ctx, worker)` is called once by `bot.runtime.assemble`: it loads the check-in
questions (a broken English file stops the start, like broken safety rules do), registers the
check-in flow with the engine, puts the planner where `participant_schedule_changed` finds it,
and adds the senders and the planning step to the scheduler tick.
"""

from __future__ import annotations

from bot.content.checkins import load_checkin_content
from bot.flows.checkin import CHECKIN
from bot.flows.engine import FlowEngine
from bot.services.checkin_planner import CheckinPlanner
from bot.services.checkins import NUDGE, CheckinFlow, send_checkin, send_nudge
from bot.services.context import AppContext
from bot.services.outbox import ActionSender, OutboxWorker

CHECKIN_SENDERS: dict[str, ActionSender] = {CHECKIN: send_checkin, NUDGE: send_nudge}


def flow_engine(ctx: AppContext) -> FlowEngine:
    """The one engine of this app; other flow kinds (exercises, questionnaires) register here too."""
    engine = ctx.extras.get("flows")
    if engine is None:
        engine = ctx.extras["flows"] = FlowEngine(ctx)
    return engine


def install_checkins(ctx: AppContext, worker: OutboxWorker | None = None) -> CheckinPlanner:
    content = load_checkin_content(ctx.settings.content_dir, ctx.settings.checkin.questionnaire,
                                   allow_drafts=ctx.settings.content.allow_drafts)
    flow_engine(ctx).register(CheckinFlow(ctx, content))
    planner = CheckinPlanner(ctx)
    ctx.extras["planner"] = planner
    if worker is not None:
        worker.senders.update(CHECKIN_SENDERS)
        worker.before_claim.append(planner.tick)
    return planner
