"""Wiring of the weekly questionnaires into a running bot.

`install_instruments(ctx, worker)` is called once by `bot.runtime.assemble`: it loads the
instruments `[instruments] ask` names (a missing or broken English file stops the start, like a
broken check-in does), registers the questionnaire flow with the engine, adds the planner to
`ctx.parts` and to the planners `participant_schedule_changed` tells, and registers the sender and
the planning step with the outbox worker.
"""

from __future__ import annotations

from bot.content.instruments import load_instruments
from bot.context import AppContext
from bot.db.instrument_models import INSTRUMENT
from bot.services.checkins.setup import flow_engine
from bot.services.instruments.planner import InstrumentPlanner
from bot.services.instruments.service import InstrumentFlow, send_instruments
from bot.services.scheduling.outbox import OutboxWorker


def install_instruments(ctx: AppContext, worker: OutboxWorker | None = None) -> InstrumentPlanner:
    i = ctx.settings.instruments
    content = load_instruments(ctx.settings.content_dir, i.ask if i.enabled else (),
                               allow_drafts=ctx.settings.content.allow_drafts)
    flow_engine(ctx).register(InstrumentFlow(ctx, content))
    planner = ctx.parts.add(InstrumentPlanner(ctx))
    ctx.replanners.append(planner)
    if worker is not None:
        worker.register(INSTRUMENT, send_instruments)
        worker.add_planner("questionnaires", planner.tick)
    return planner
