"""The bot's worker processes as the database sees them (migration 0014).

One `WorkerProcess` row per running `iopbot run`: written at start, touched on every scheduler
tick, removed at a clean stop. It says which worker holds the poller role (polling mode: the one
holding the PostgreSQL advisory lock) and when each worker's scheduler last ticked, which is what
`/healthz` and `iopbot healthz` read (bot/services/scheduling/workers.py). A worker killed with
SIGKILL leaves its row behind: its `seen_at` stops moving, and it is pruned after a day.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base


class WorkerMode(StrEnum):
    POLLING = "polling"  # one of these polls (the elected poller); all run the scheduler
    WEBHOOK = "webhook"  # serves the webhook behind a load balancer, runs the scheduler
    WORKER = "worker"  # schedule only: never polls, serves no webhook


class WorkerProcess(Base):
    __tablename__ = "worker_processes"

    # "<host>:<pid>:<random>": unique even when a pid is reused after a restart.
    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    mode: Mapped[str] = mapped_column(String(16))
    polling: Mapped[bool] = mapped_column(default=False)  # holds the poller role now
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime] = mapped_column(index=True)  # last sign of life (start, tick, role change)
    last_tick_at: Mapped[datetime | None]  # the scheduler's last completed planning pass
