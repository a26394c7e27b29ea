"""Wiring cohort group chats into a running bot (called once from bot.runtime.assemble)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from bot.context import AppContext
from bot.services.groups import actions, membership, posting, watch
from bot.services.groups.chats import LinkedGroups
from bot.services.groups.port import GroupAdmin

if TYPE_CHECKING:
    from bot.services.scheduling.outbox import OutboxWorker

# How often the periodic check takes out whoever may no longer be in a group chat.
CHECK_MEMBERS_SECONDS = 300.0


def install_groups(ctx: AppContext, worker: OutboxWorker, admin: GroupAdmin) -> LinkedGroups:
    """The group row kinds and their senders, the prompt planner, the membership check, and the
    memory of linked groups the safety gate reads (`ctx.parts.get(LinkedGroups)`)."""
    linked = ctx.parts.add(LinkedGroups())
    prompts = posting.PromptLibrary(ctx.settings)
    worker.register(posting.POST, posting.post_sender(prompts))
    # Taking someone out must happen however late (a discharged participant must not stay inside).
    worker.register(actions.ACTION, actions.action_sender(admin), never_expire=True)
    worker.register(actions.INVITE, actions.invite_sender(admin))
    worker.register(watch.NOTICE, watch.send_notice, never_expire=True)
    last_planned: list[str] = []

    async def plan(now: datetime) -> None:
        await linked.refresh(ctx.sessionmaker)
        minute = f"{now:%Y%m%d%H%M}"
        if last_planned == [minute]:  # the prompts need planning once a minute at most
            return
        async with ctx.sessionmaker() as session:
            await posting.plan_prompts(session, ctx.settings, now)
            await session.commit()
        last_planned[:] = [minute]

    worker.add_planner("group-prompts", plan)

    async def check(now: datetime) -> None:
        async with ctx.sessionmaker() as session:
            removed = await membership.check_members(session, now)
            await posting.prune_posts(session, now)
            await session.commit()
        if removed:
            ctx.wake_outbox()

    worker.add_periodic("group-members", CHECK_MEMBERS_SECONDS, check)
    return linked
