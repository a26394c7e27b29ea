"""Wiring of outreach into a running bot: called once by `bot.runtime.assemble`."""

from __future__ import annotations

from bot.context import AppContext
from bot.services.outreach import messages, techhelp
from bot.services.scheduling.outbox import OutboxWorker


def install_outreach(ctx: AppContext, worker: OutboxWorker | None = None) -> None:
    """Register outreach's row kinds: a staff member's message and the reply, the line that tells
    the sender a message did not go, and /techhelp's "can't connect" notice and its answer.

    All are sent however late (never expire): a message that did not go must reach its sender,
    and a late reply or notice is still better than a silently dropped one."""
    if worker is None:
        return
    worker.register(messages.MESSAGE_KIND, messages.send_outreach_message, never_expire=True)
    worker.register(messages.REPLY_KIND, messages.send_outreach_reply, never_expire=True)
    worker.register(messages.STAFF_LINE_KIND, messages.send_staff_line, never_expire=True)
    worker.register(techhelp.NOTICE_KIND, techhelp.send_techhelp_notice, never_expire=True)
    worker.register(techhelp.TOLD_KIND, techhelp.send_techhelp_told, never_expire=True)
