"""The cohort groups' core without Telegram (bot/services/groups/), on SQLite and PostgreSQL:
linking (who may, a cohort's one chat), join decisions (who gets in, whose link), the agreement and
its versions, removal on discharge and by the periodic check, and the group's pace of posts
(Telegram's ~20 a minute, `[groups] messages_per_minute`) with a recording messenger."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.calendar_models import GroupMembership, ParticipantGroup, ProgramSession
from bot.db.group_models import GroupAgreement, GroupChat, GroupInvite, MemberStatus
from bot.db.models import ActionStatus, AuditEntry, Participant, ScheduledAction, Staff, StaffRole
from bot.messaging import Outgoing, Sent, Text
from bot.services.groups import actions, membership, posting
from bot.services.groups.chats import LinkRefused, link_group
from bot.services.groups.membership import Decision
from bot.services.people import discharge
from bot.services.scheduling.outbox import Delivered, Handled
from tests.support.inproc import add_participant, add_staff

GROUP, OTHER_GROUP = -100990000001, -100990000002
ANA, BEN, CARL, STRANGER = 9201, 9202, 9203, 9999
FAC, OTHER_STAFF, LEAD = 9101, 9102, 9103


class RecordingMessenger:
    """The Messenger port, recording what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[Text] = []

    async def send(self, message: Outgoing) -> Sent | None:
        assert isinstance(message, Text)
        self.sent.append(message)
        return Sent(message.chat_id, len(self.sent))

    @contextlib.asynccontextmanager
    async def turn(self, *, urgent: bool = False) -> AsyncIterator[None]:
        yield


@dataclasses.dataclass
class World:
    ctx: AppContext
    session: AsyncSession
    now: datetime
    facilitator: Staff
    other_staff: Staff
    lead: Staff
    ana: Participant  # in the cohort, active
    ben: Participant  # in the cohort, active
    carl: Participant  # active, in no cohort


@pytest.fixture
async def world(ctx: AppContext) -> AsyncIterator[World]:
    ctx.settings = ctx.settings.replace(groups=dataclasses.replace(ctx.settings.groups, quiet_start="00:00",
                                                                   quiet_end="00:00", prompt_every="off"))
    now = ctx.clock.now()
    async with ctx.sessionmaker() as session:
        facilitator = await add_staff(session, "dr-fac", FAC, now)
        other = await add_staff(session, "dr-other", OTHER_STAFF, now)
        lead = await add_staff(session, "dr-lead", LEAD, now)
        lead.role = StaffRole.LEAD
        ana = await add_participant(session, "P-A", facilitator, ANA, now)
        ben = await add_participant(session, "P-B", facilitator, BEN, now)
        carl = await add_participant(session, "P-C", facilitator, CARL, now)
        cohort = ParticipantGroup(name="Tue-Thu", created_at=now)
        session.add(cohort)
        await session.flush()
        session.add(ProgramSession(uid="svc-groups", title="Group", kind="group", first_start=now + timedelta(days=1),
                                   duration_minutes=90, timezone="UTC", rrule=None, exdates=[],
                                   video_link="https://example.org/v", facilitator_id=facilitator.id,
                                   group_id=cohort.id, created_at=now, updated_at=now))
        session.add_all([GroupMembership(group_id=cohort.id, participant_id=p.id, joined_at=now) for p in (ana, ben)])
        await session.flush()
        yield World(ctx, session, now, facilitator, other, lead, ana, ben, carl)


async def group_actions(session: AsyncSession) -> list[tuple[str, Any]]:
    rows = (await session.scalars(select(ScheduledAction).where(ScheduledAction.kind == actions.ACTION)
                                  .order_by(ScheduledAction.id))).all()
    return [(r.payload["action"], r.payload.get("user", r.payload.get("link"))) for r in rows]


async def refusals(session: AsyncSession) -> list[str]:
    await session.flush()
    return list((await session.scalars(select(AuditEntry.action).where(AuditEntry.allowed.is_(False))
                                       .order_by(AuditEntry.id))).all())


async def test_linking_only_by_who_leads_the_cohort_and_one_chat_per_cohort(world: World) -> None:
    s, now = world.session, world.now
    with pytest.raises(LinkRefused) as unknown:
        await link_group(s, world.facilitator, GROUP, "Mon-Wed", now, locale="en")
    assert unknown.value.key == "groups.link_unknown_cohort" and unknown.value.values["cohorts"] == "Tue-Thu"
    with pytest.raises(LinkRefused) as not_theirs:
        await link_group(s, world.other_staff, GROUP, "Tue-Thu", now, locale="en")
    assert not_theirs.value.key == "groups.link_no_rights"
    cohort_id = await s.scalar(select(ParticipantGroup.id))
    assert await refusals(s) == ["refused:linkgroup:unknown_cohort", f"refused:linkgroup:{cohort_id}"]
    linked = await link_group(s, world.facilitator, GROUP, "tue-thu", now, locale="es")  # any case
    assert (linked.cohort.name, linked.active_members, linked.moved_from, linked.chat.locale) == ("Tue-Thu", 2, None,
                                                                                                  "es")
    # A lead may link any cohort; a second chat takes the cohort over from the first.
    moved = await link_group(s, world.lead, OTHER_GROUP, "Tue-Thu", now, locale="en")
    assert moved.moved_from is not None and moved.moved_from.telegram_chat_id == GROUP
    chats = {c.telegram_chat_id: c.cohort_id for c in (await s.scalars(select(GroupChat))).all()}
    assert chats == {GROUP: None, OTHER_GROUP: linked.cohort.id}


async def test_join_decisions_and_the_agreement_versions(world: World) -> None:
    s, now, settings = world.session, world.now, world.ctx.settings
    chat = (await link_group(s, world.facilitator, GROUP, "Tue-Thu", now, locale="en")).chat

    # Someone not in the cohort (a stranger, a participant of the program outside it): declined.
    assert (await membership.decide_join(s, settings, chat, STRANGER, None, now))[0] == Decision.DECLINED
    assert (await membership.decide_join(s, settings, chat, CARL, None, now))[0] == Decision.DECLINED
    # Ana has not accepted the agreement: her request waits; accepting lets her in at once.
    assert (await membership.offer(s, settings, world.ana)).key == "groups.agreement"
    decision, who = await membership.decide_join(s, settings, chat, ANA, None, now)
    assert decision == Decision.WAITING and who is not None and who.id == world.ana.id
    assert await membership.accept_agreement(s, settings, world.ana, now) == []  # no link needed: let in
    assert (await membership.member_row(s, chat, ANA)).status == MemberStatus.MEMBER  # type: ignore[union-attr]
    assert (await membership.offer(s, settings, world.ana)).key == "groups.already_member"
    # Ben agreed; a link made for him is refused to anyone else, and revoked once he uses it.
    s.add(GroupAgreement(participant_id=world.ben.id, version=settings.groups.agreement_version, accepted_at=now))
    s.add(GroupInvite(group_chat_id=chat.id, telegram_user_id=BEN, invite_link="https://t.me/+ben",
                      created_at=now, expires_at=now + timedelta(hours=24)))
    await s.flush()
    later = now + timedelta(seconds=1)  # (a decision is one row per person and moment)
    assert (await membership.decide_join(s, settings, chat, STRANGER, "https://t.me/+ben", later))[0] == \
        Decision.DECLINED
    assert (await membership.decide_join(s, settings, chat, BEN, "https://t.me/+ben", now))[0] == Decision.APPROVED
    # The cohort's facilitator gets in; staff who do not lead it do not.
    assert (await membership.decide_join(s, settings, chat, FAC, None, now))[0] == Decision.APPROVED
    assert (await membership.decide_join(s, settings, chat, OTHER_STAFF, None, now))[0] == Decision.DECLINED
    assert await group_actions(s) == [("decline", STRANGER), ("decline", CARL), ("approve", ANA),
                                      ("decline", STRANGER), ("revoke", "https://t.me/+ben"), ("approve", BEN),
                                      ("approve", FAC), ("decline", OTHER_STAFF)]
    assert [r.split(":")[-1] for r in await refusals(s)] == ["not_in_cohort", "not_in_cohort",
                                                             "someone_elses_link", "not_in_cohort"]

    # A new agreement version: everyone accepts it again before their next join.
    newer = settings.replace(groups=dataclasses.replace(settings.groups, agreement_version="2027-01-15"))
    await membership.member_left(s, chat, ANA, now)
    assert (await membership.offer(s, newer, world.ana)).key == "groups.agreement"
    assert (await membership.decide_join(s, newer, chat, ANA, None, now))[0] == Decision.WAITING
    await membership.accept_agreement(s, newer, world.ana, now + timedelta(minutes=1))
    versions = (await s.scalars(select(GroupAgreement.version).where(GroupAgreement.participant_id == world.ana.id)
                                .order_by(GroupAgreement.accepted_at))).all()
    assert list(versions) == [settings.groups.agreement_version, "2027-01-15"]


async def test_out_on_discharge_and_by_the_periodic_check(world: World) -> None:
    s, now, settings = world.session, world.now, world.ctx.settings
    chat = (await link_group(s, world.facilitator, GROUP, "Tue-Thu", now, locale="en")).chat
    for participant in (world.ana, world.ben):
        s.add(GroupAgreement(participant_id=participant.id, version=settings.groups.agreement_version,
                             accepted_at=now))
        await s.flush()
        assert await membership.member_joined(s, settings, chat, participant.telegram_user_id or 0, now)
    s.add(GroupInvite(group_chat_id=chat.id, telegram_user_id=ANA, invite_link="https://t.me/+ana2",
                      created_at=now, expires_at=now + timedelta(hours=24)))
    await s.flush()
    before = len(await group_actions(s))

    await discharge(s, world.ana, now, alumni=False)
    assert (await membership.member_row(s, chat, ANA)).status == MemberStatus.LEFT  # type: ignore[union-attr]
    assert (await group_actions(s))[before:] == [("kick", ANA), ("revoke", "https://t.me/+ana2")]
    # Someone taken off the cohort another way (by the calendar's tools): the check takes them out.
    membership_row = await s.scalar(select(GroupMembership).where(GroupMembership.participant_id == world.ben.id))
    await s.delete(membership_row)
    await s.flush()
    assert await membership.check_members(s, now) == 1
    assert (await group_actions(s))[-1] == ("kick", BEN)
    assert await membership.check_members(s, now) == 0  # nobody twice
    # Ana may not come back in (Telegram says she joined by a link someone forwarded): out again.
    assert not await membership.member_joined(s, settings, chat, ANA, now + timedelta(minutes=5))
    assert (await group_actions(s))[-1] == ("kick", ANA)


async def test_the_group_pace_stays_below_telegrams_limit(world: World) -> None:
    """25 posts due at once: the first `messages_per_minute` (18) go, each of the rest is put back
    until the oldest counted post is a minute old; then they go. Never more than 18 in any minute."""
    s, ctx = world.session, world.ctx
    chat = (await link_group(s, world.facilitator, GROUP, "Tue-Thu", world.now, locale="en")).chat
    chat.bot_status = "administrator"
    for n in range(25):
        await posting.post(s, ctx.settings, chat, "groups.welcome", world.now + timedelta(microseconds=n))
    await s.commit()
    send = posting.post_sender(posting.PromptLibrary(ctx.settings))
    messenger = RecordingMessenger()
    sent_at: list[datetime] = []
    for _ in range(3):  # three passes of the outbox, a minute apart
        rows = (await s.scalars(select(ScheduledAction).where(
            ScheduledAction.kind == posting.POST, ScheduledAction.status == ActionStatus.PENDING,
            ScheduledAction.due_at <= ctx.clock.now()).order_by(ScheduledAction.id))).all()
        for row in rows:
            result = await send(ctx, messenger, s, row)
            if isinstance(result, Delivered):
                row.status = ActionStatus.SENT
                sent_at.append(ctx.clock.now())
            else:
                assert isinstance(result, Handled) and result.status == ActionStatus.PENDING
            await s.commit()
        ctx.clock.advance(seconds=61)  # type: ignore[attr-defined]
    assert len(sent_at) == 25 and all(m.chat_id == GROUP for m in messenger.sent)
    limit = ctx.settings.groups.messages_per_minute
    assert limit == 18
    assert max(sum(1 for t in sent_at if start <= t < start + timedelta(minutes=1)) for start in sent_at) == limit
    assert all("P-A" not in m.text and "dr-fac" not in m.text for m in messenger.sent)
