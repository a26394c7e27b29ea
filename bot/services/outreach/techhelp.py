"""/techhelp: what to do when the video link fails, and "Tell my facilitator I can't connect".

The notice goes the way "can't attend" notices go (a row per staff member, rendered when sent, ids
only in the row, a disclosure once delivered), to the facilitator of the session in question: the
one in progress, or the participant's next one today. With no session today, or no facilitator
who can be reached, it goes to the assigned clinician, then the backup. The participant is told
who was told only once a notice was delivered ("Your facilitator has been told"), and plainly
when nobody could be.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.calendar_models import ProgramSession, SessionOccurrence
from bot.db.models import ActionStatus, Participant, ParticipantEvent, ScheduledAction, Staff
from bot.messaging import Keyboard, Messenger, NotDelivered, Unreachable, keyboard, link_row, say
from bot.services.audit import actor_label, disclose
from bot.services.calendar import occurrences as cal
from bot.services.calendar.reminders import kind_text, staff_when
from bot.services.scheduling.outbox import Delivered, Handled, Skip
from bot.services.scheduling.rows import enqueue

NOTICE_KIND = "techhelp_notice"  # "P-101 can't connect", to a facilitator or clinician
TOLD_KIND = "techhelp_told"  # "Your facilitator has been told" (or: nobody could be), to the participant
EVENT = "cant_connect"  # ParticipantEvent.kind
CANT_CONNECT_DATA = "th:cant"
# A second tap this soon after the first tells nobody again.
REPEAT_WINDOW = timedelta(minutes=10)
GIVE_UP_AFTER_ATTEMPTS = 5


class Who(StrEnum):
    FACILITATOR = "facilitator"
    CARE_TEAM = "care_team"


async def session_in_question(session: AsyncSession, participant: Participant,
                              now: datetime) -> SessionOccurrence | None:
    """The participant's session in progress, or else their next one today (their local day)."""
    mine = await cal.sessions_of(session, participant.id)
    if not mine:
        return None
    tz = ZoneInfo(participant.timezone)
    local = now.astimezone(tz)
    end_of_day = datetime.combine(local.date() + timedelta(days=1), time(), tz)
    longest = timedelta(hours=12)  # no session lasts longer; bounds the look-back
    await cal.materialize(session, now - longest, end_of_day, now, session_ids=sorted(mine))
    rows = (await session.scalars(
        select(SessionOccurrence).join(ProgramSession)
        .where(SessionOccurrence.session_id.in_(mine), SessionOccurrence.start_at > now - longest,
               SessionOccurrence.start_at < end_of_day, SessionOccurrence.cancelled_at.is_(None),
               ProgramSession.cancelled_at.is_(None))
        .order_by(SessionOccurrence.start_at, SessionOccurrence.id))).unique().all()
    for occ in rows:
        if occ.start_at + timedelta(minutes=occ.duration_minutes) > now:
            return occ
    return None


def steps_text(ctx: AppContext, participant: Participant) -> str:
    text = ctx.t("techhelp.steps", participant.locale)
    phone = ctx.settings.outreach.techhelp_phone
    if phone:
        text += "\n" + ctx.t("techhelp.phone_step", participant.locale, phone=phone)
    return text + "\n\n" + ctx.t("techhelp.still_stuck", participant.locale)


def steps_keyboard(ctx: AppContext, participant: Participant, occ: SessionOccurrence | None) -> Keyboard:
    tell = keyboard([[(ctx.t("techhelp.tell_button", participant.locale), CANT_CONNECT_DATA)]])
    if occ is None:
        return tell
    return link_row(ctx.t("sessions.join", participant.locale), occ.session.video_link) + tell


def _reachable(staff: Staff | None) -> bool:
    return (staff is not None and staff.active and staff.deactivated_at is None and staff.chat_id is not None
            and staff.unreachable_at is None)


def _chain(participant: Participant, occ: SessionOccurrence | None) -> list[tuple[int, Who]]:
    """Who is told, in order, until one notice is delivered."""
    people: list[tuple[Staff | None, Who]] = []
    if occ is not None:
        people.append((occ.session.facilitator, Who.FACILITATOR))
    people += [(participant.therapist, Who.CARE_TEAM), (participant.backup, Who.CARE_TEAM)]
    chain: list[tuple[int, Who]] = []
    for staff, who in people:
        if _reachable(staff) and staff is not None and staff.id not in {i for i, _ in chain}:
            chain.append((staff.id, who))
    return chain


class Outcome(StrEnum):
    TELLING = "telling"  # a notice is on its way; the participant hears once it was delivered
    ALREADY = "already"  # a notice was delivered a few minutes ago
    NOBODY = "nobody"  # no facilitator or clinician can be reached: the participant is told plainly


async def cant_connect(session: AsyncSession, ctx: AppContext, participant: Participant,
                       now: datetime) -> Outcome:
    """The participant can't get into their session: tell the facilitator (or their clinician)."""
    # Only a tap that reached someone (or is on its way to someone) counts: after "nobody could
    # be reached" a second tap tries again rather than claim anyone was told.
    recent = set((await session.scalars(select(ScheduledAction.status).where(
        ScheduledAction.participant_id == participant.id, ScheduledAction.kind == NOTICE_KIND,
        ScheduledAction.created_at > now - REPEAT_WINDOW))).all())
    if ActionStatus.SENT in recent:
        return Outcome.ALREADY
    if recent & {ActionStatus.PENDING, ActionStatus.CLAIMED}:
        return Outcome.TELLING
    occ = await session_in_question(session, participant, now)
    session.add(ParticipantEvent(participant_id=participant.id, kind=EVENT, at=now,
                                 detail=f"occurrence:{occ.id}" if occ is not None else "no_session_today"))
    request = f"{participant.id}:{now:%Y%m%dT%H%M%S}"
    chain = _chain(participant, occ)
    if not chain:
        await _tell_participant(session, participant, request, "nobody", now)
        return Outcome.NOBODY
    await _notice(session, participant, occ, chain, request, now)
    return Outcome.TELLING


async def _notice(session: AsyncSession, participant: Participant, occ: SessionOccurrence | None,
                  chain: list[tuple[int, Who]], request: str, now: datetime) -> None:
    (staff_id, who), rest = chain[0], chain[1:]
    await enqueue(session, kind=NOTICE_KIND, key=f"techhelp:{request}:{staff_id}", due_at=now, now=now,
                  participant_id=participant.id, staff_id=staff_id,
                  payload={"occurrence_id": occ.id if occ is not None else None, "who": str(who),
                           "request": request, "next": [[i, str(w)] for i, w in rest]})


async def _tell_participant(session: AsyncSession, participant: Participant, request: str, who: str,
                            now: datetime) -> None:
    await enqueue(session, kind=TOLD_KIND, key=f"techhelp_told:{request}", due_at=now, now=now,
                  participant_id=participant.id, payload={"who": who})


async def send_techhelp_notice(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                               row: ScheduledAction) -> Delivered | Handled:
    """ActionSender for `techhelp_notice` rows; someone unreachable hands on to the next person."""
    participant = await session.get(Participant, row.participant_id or 0)
    if participant is None:
        raise Skip("participant gone")
    staff = await session.get(Staff, row.staff_id or 0)
    occ_id = row.payload.get("occurrence_id")
    occ = await session.get(SessionOccurrence, int(occ_id)) if occ_id else None
    request = str(row.payload.get("request", ""))
    now = ctx.clock.now()
    rest = [(int(i), Who(w)) for i, w in row.payload.get("next", [])]

    async def hand_on(why: str) -> Handled:
        if rest:
            await _notice(session, participant, occ, rest, request, now)
        else:
            await _tell_participant(session, participant, request, "nobody", now)
        return Handled(status=ActionStatus.FAILED, note=why)

    if staff is None or not _reachable(staff):
        return await hand_on("staff member cannot be reached")
    locale = staff.locale
    if occ is not None:
        text = ctx.t("techhelp.notice", locale, alias=participant.alias, kind=kind_text(ctx, occ.session.kind, locale),
                     when=staff_when(ctx, occ, locale), session_id=occ.session_id)
    else:
        text = ctx.t("techhelp.notice_no_session", locale, alias=participant.alias)
    try:
        sent = await say(messenger, staff.chat_id or 0, text)
    except Unreachable:
        return await hand_on("blocked by the staff member")
    except NotDelivered:
        if row.attempts < GIVE_UP_AFTER_ATTEMPTS:
            raise
        return await hand_on("not delivered after several tries")
    disclose(session, now, participant.id, actor_label(staff), "notice", EVENT)
    await _tell_participant(session, participant, request, str(row.payload.get("who", Who.CARE_TEAM)), now)
    return Delivered(sent.chat_id, sent.message_id, wake=True)


async def send_techhelp_told(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                             row: ScheduledAction) -> Delivered:
    """ActionSender for `techhelp_told` rows: who was told, or plainly that nobody could be."""
    participant = await session.get(Participant, row.participant_id or 0)
    if participant is None or participant.chat_id is None:
        raise Skip("participant gone")
    who = str(row.payload.get("who", "nobody"))
    key = {"facilitator": "techhelp.told_facilitator", "care_team": "techhelp.told_care_team"}.get(
        who, "techhelp.told_nobody")
    text = ctx.t(key, participant.locale)
    phone = ctx.settings.outreach.techhelp_phone
    if key == "techhelp.told_nobody" and phone:
        text += "\n\n" + ctx.t("techhelp.phone_step", participant.locale, phone=phone)
    sent = await say(messenger, participant.chat_id, text)
    return Delivered(sent.chat_id, sent.message_id)
