"""Imports every model module so that Base.metadata knows all tables (Alembic, tests).

Feature areas keep their tables in their own modules (e.g. check-ins, the session calendar),
all on the one `Base` from bot.db.models. Add a new module here.
"""

from bot.db import (  # noqa: F401
    calendar_models,
    checkin_models,
    content_models,
    goal_models,
    group_models,
    instrument_models,
    medication_models,
    models,
    outreach_models,
    send_models,
    support_models,
    worker_models,
)
from bot.db.models import Base

metadata = Base.metadata
