"""The send budget: one Telegram send rate for the whole bot, shared by every worker (migration 0013).

Telegram's limits (about 30 messages a second, about one a second per chat) hold for the bot, not
for a process. On PostgreSQL every worker books its sends here (bot/telegram/send_budget.py): one
row holds when the bot's next send may go, and one row per chat when that chat's next send may go.
Each booking is one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` computed from the database's
own clock, so workers on several machines need no agreed clock. SQLite (one process) does not use
these tables: the sender's in-process buckets are the budget there.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base
from bot.db.types import UTCDateTime


class SendBudget(Base):
    """When the bot's next message may go (all chats together): a slot every 1/rate seconds."""

    __tablename__ = "send_budget"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)  # "bot": one budget per bot token
    next_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChatSendPace(Base):
    """When the next message to one chat may go; rows of chats idle for a minute are pruned."""

    __tablename__ = "chat_send_pace"
    __table_args__ = (Index("ix_chat_send_pace_next_at", "next_at"),)

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    next_at: Mapped[datetime] = mapped_column(UTCDateTime)
