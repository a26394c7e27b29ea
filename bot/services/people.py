"""People come and go: discharge (with an optional alumni check-in), staff deactivation with the
caseload handed over, and revoking invite links.

Nothing is deleted: a discharged participant's record, answers and alerts stay, and so does a
deactivated staff member's (the audit log and the alerts they handled point at it). What stops is
what the bot sends and who it pages:

- discharge: check-ins, nudges, session reminders and the daily read are cancelled; the
  participant gets a goodbye with the crisis numbers (a `goodbye` row, sent by the running bot);
  the clinician is told. Their support persons' sharing ends as if revoked, and whoever had joined
  is told plainly, without detail. With `alumni`, a short check-in comes every `[discharge] alumni_every_days`.
  A crisis written after discharge still gets the crisis reply and still pages (nothing lands
  nowhere), as for anyone the bot knows.
- deactivation is refused while the person is the clinician or backup of anyone in care, or holds
  an alert without an outcome, unless `reassign_to` takes them over: then every participant moves,
  and every open alert pages the new clinician at once.
- revoking: every unused link of a person stops working (a newer invite does this by itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    UNRESOLVED,
    Escalation,
    Invite,
    Participant,
    ParticipantEvent,
    ParticipantStatus,
    Staff,
)
from bot.services.audit import audit
from bot.services.enrollment import cancel_future_actions, tell_clinician
from bot.services.escalation.coverage import in_care_statuses
from bot.services.groups.membership import leave_groups
from bot.services.scheduling.rows import enqueue
from bot.services.support.service import end_with_participant

if TYPE_CHECKING:
    from bot.context import AppContext
    from bot.db.models import ScheduledAction
    from bot.messaging import Messenger
    from bot.services.scheduling.outbox import Delivered, OutboxWorker

GOODBYE = "goodbye"
OPERATOR = "operator"  # the audit log's actor for what the `iopbot` command does


class PeopleError(Exception):
    """The operator's request cannot be done as asked; the message says why and what to do."""


# --- invites ---------------------------------------------------------------------------------------

async def revoke_open_invites(session: AsyncSession, now: datetime, *, staff_id: int | None = None,
                              participant_id: int | None = None) -> int:
    """Every unused, unrevoked link of one person stops working. Returns how many."""
    owner = Invite.staff_id == staff_id if staff_id is not None else Invite.participant_id == participant_id
    result = await session.execute(
        update(Invite).where(owner, Invite.used_at.is_(None), Invite.revoked_at.is_(None))
        .values(revoked_at=now).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def revoke_invites(session: AsyncSession, now: datetime, alias: str) -> int:
    """`iopbot invite revoke ALIAS`: the person's unused links stop working."""
    staff = await session.scalar(select(Staff).where(Staff.alias == alias))
    participant = await session.scalar(select(Participant).where(Participant.alias == alias))
    if staff is None and participant is None:
        raise PeopleError(f"no staff member or participant with alias {alias!r}")
    count = 0
    if staff is not None:
        count += await revoke_open_invites(session, now, staff_id=staff.id)
    if participant is not None:
        count += await revoke_open_invites(session, now, participant_id=participant.id)
    audit(session, now, OPERATOR, f"invite_revoke:{'staff' if staff else 'participant'}:"
                                  f"{(staff or participant).id}")  # type: ignore[union-attr]
    return count


# --- discharge ----------------------------------------------------------------------------------------

DISCHARGEABLE = (ParticipantStatus.ACTIVE, ParticipantStatus.PAUSED, ParticipantStatus.ONBOARDING,
                 ParticipantStatus.CONSENT_PENDING, ParticipantStatus.INVITED, ParticipantStatus.ALUMNI)


async def discharge(session: AsyncSession, participant: Participant, now: datetime, *, alumni: bool) -> int:
    """Discharge a participant (or move them to alumni). Returns how many scheduled rows stopped."""
    if participant.status not in DISCHARGEABLE:
        raise PeopleError(f"participant {participant.alias!r} is {participant.status}; only someone in the "
                          "program can be discharged")
    if participant.status == ParticipantStatus.ALUMNI and alumni:
        raise PeopleError(f"participant {participant.alias!r} is already an alumnus")
    was_reachable = participant.chat_id is not None and participant.status not in (
        ParticipantStatus.INVITED, ParticipantStatus.CONSENT_PENDING)
    participant.status = ParticipantStatus.ALUMNI if alumni else ParticipantStatus.DISCHARGED
    participant.discharged_at = participant.discharged_at or now
    participant.paused_at = None
    stopped = await cancel_future_actions(session, participant.id, now)
    await revoke_open_invites(session, now, participant_id=participant.id)
    kind = "alumni" if alumni else "discharged"
    await leave_groups(session, participant, now, kind)  # out of the cohort's group chat, at once
    await end_with_participant(session, now, participant, by=OPERATOR)  # support persons: told plainly
    session.add(ParticipantEvent(participant_id=participant.id, kind=kind, at=now))
    audit(session, now, OPERATOR, kind, participant_id=participant.id)
    if was_reachable:
        await enqueue(session, kind=GOODBYE, key=f"{GOODBYE}:{participant.id}:{now:%Y%m%dT%H%M%S}", due_at=now,
                      participant_id=participant.id, payload={"alumni": alumni}, now=now)
    await tell_clinician(session, participant, kind, now)
    return stopped


async def send_goodbye(ctx: AppContext, messenger: Messenger, session: AsyncSession, row: ScheduledAction) -> Delivered:
    """ActionSender for `goodbye` rows: thanks, what happens now, and the crisis numbers."""
    from bot.messaging import say
    from bot.services.scheduling.outbox import Delivered, Skip

    participant = await session.get(Participant, row.participant_id) if row.participant_id else None
    if participant is None or participant.chat_id is None or participant.unreachable_at is not None:
        raise Skip("participant has no chat, or blocked the bot")
    locale = participant.locale
    phone = ctx.settings.program.after_hours_phone
    crisis = ctx.settings.crisis_for(locale)
    text = ctx.t("discharge.alumni" if row.payload.get("alumni") else "discharge.goodbye", locale,
                 program=ctx.settings.program.name or ctx.t("consent.program_unnamed", locale),
                 every=ctx.settings.discharge.alumni_every_days, chat_url=crisis.chat_url)
    if phone:
        text += "\n" + ctx.t("discharge.after_hours", locale, phone=phone)
    message = await say(messenger, participant.chat_id, text)
    return Delivered(participant.chat_id, message.message_id)


def install_people(ctx: AppContext, worker: OutboxWorker | None = None) -> None:
    """Wire the goodbye sender into a running bot (called once from bot.runtime.assemble)."""
    if worker is not None:
        worker.register(GOODBYE, send_goodbye)


# --- staff ---------------------------------------------------------------------------------------------

@dataclass
class Handover:
    participants: list[str] = field(default_factory=list)  # aliases moved to the new clinician
    alerts: list[int] = field(default_factory=list)  # escalation ids paged to the new clinician
    invites_revoked: int = 0


async def _held(session: AsyncSession, staff: Staff) -> tuple[list[Participant], list[Escalation]]:
    """Participants in care this person is clinician or backup of, and alerts they hold unresolved."""
    people = list((await session.scalars(
        select(Participant).where(or_(Participant.therapist_id == staff.id, Participant.backup_id == staff.id),
                                  Participant.status.in_(in_care_statuses()))
        .order_by(Participant.alias))).unique().all())
    alerts = list((await session.scalars(
        select(Escalation).join(Participant, Participant.id == Escalation.participant_id)
        .where(Escalation.status.in_(UNRESOLVED),
               or_(Participant.therapist_id == staff.id, Escalation.acknowledged_by_id == staff.id))
        .order_by(Escalation.id))).unique().all())
    return people, alerts


async def deactivate_staff(session: AsyncSession, ctx: AppContext, staff: Staff,
                           reassign_to: Staff | None) -> Handover:
    """`iopbot staff deactivate`: never paged again, sees nothing; refused while they hold people or
    open alerts, unless `reassign_to` takes everything over (and is paged for the open alerts)."""
    now = ctx.clock.now()
    if not staff.active:
        raise PeopleError(f"staff {staff.alias!r} is already deactivated")
    people, alerts = await _held(session, staff)
    if reassign_to is None:
        if people or alerts:
            names = ", ".join(p.alias for p in people[:10]) + (" …" if len(people) > 10 else "")
            raise PeopleError(
                f"{staff.alias} still holds {len(people)} participant(s){f' ({names})' if people else ''} and "
                f"{len(alerts)} alert(s) without an outcome; run again with --reassign-to ALIAS to hand them over")
    else:
        if reassign_to.id == staff.id:
            raise PeopleError("--reassign-to must name someone else")
        if not reassign_to.active:
            raise PeopleError(f"--reassign-to {reassign_to.alias!r} is deactivated; pick an active staff member")
    handover = Handover()
    if reassign_to is not None:
        # Everyone they were assigned to, in care or not: a former participant's crisis still pages.
        for p in (await session.scalars(select(Participant).where(
                or_(Participant.therapist_id == staff.id, Participant.backup_id == staff.id)))).unique().all():
            if p.therapist_id == staff.id:
                p.therapist_id = reassign_to.id
                if p.backup_id == reassign_to.id:
                    p.backup_id = None  # the backup now is the clinician: the program's on-call backs up
                handover.participants.append(p.alias)
            if p.backup_id == staff.id:
                p.backup_id = reassign_to.id if p.therapist_id != reassign_to.id else None
        await session.flush()
        if alerts:
            from bot.services.escalation.handling import reassign  # aiogram: seconds to import, only when needed

        for escalation in alerts:
            await reassign(session, ctx, escalation, reassign_to)
            handover.alerts.append(escalation.id)
    staff.active = False
    staff.on_call = False
    staff.deactivated_at = now
    handover.invites_revoked = await revoke_open_invites(session, now, staff_id=staff.id)
    audit(session, now, OPERATOR, f"staff_deactivated:{staff.id}"
                                  + (f":to:{reassign_to.id}" if reassign_to is not None else ""))
    return handover
