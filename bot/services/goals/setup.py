"""Wiring of goals into a running bot: called once by `bot.runtime.assemble`.

Registers the weekly prompt's flow kind with the engine, adds the planner to `ctx.parts` and to
the planners `participant_schedule_changed` tells, and registers the sender and the planning step
with the outbox worker. /goals and /goal work whether or not the prompt is on (`[goals] enabled`).
"""

from __future__ import annotations

from bot.context import AppContext
from bot.db.goal_models import GOAL_PROGRESS
from bot.services.checkins.setup import flow_engine
from bot.services.goals.planner import GoalPlanner
from bot.services.goals.progress import GoalProgressFlow, send_goal_progress
from bot.services.goals.service import CHANGE_NOTICE, send_change_notice
from bot.services.scheduling.outbox import OutboxWorker


def install_goals(ctx: AppContext, worker: OutboxWorker | None = None) -> GoalPlanner:
    flow_engine(ctx).register(GoalProgressFlow(ctx))
    planner = ctx.parts.add(GoalPlanner(ctx))
    ctx.replanners.append(planner)
    if worker is not None:
        worker.register(GOAL_PROGRESS, send_goal_progress)
        worker.register(CHANGE_NOTICE, send_change_notice)
        worker.add_planner("goal prompts", planner.tick)
    return planner
