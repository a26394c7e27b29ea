"""The scheduled rows of support persons, sent by the outbox: short notices (to the participant
about their support persons; to a support person whose participant stopped sharing), the weekly
update and check-in, and concern notices to the participant's clinician."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import Participant, ScheduledAction, Staff
from bot.db.support_models import SupportCheckin, SupportPerson
from bot.messaging import Messenger, say
from bot.services.audit import disclose
from bot.services.scheduling.outbox import Delivered, Handled, Skip
from bot.services.support.checkins import follow_with_checkin, open_checkin
from bot.services.support.service import MAY_INVITE, shares_of
from bot.services.support.sharing import weekly_update
from bot.services.support.views import checkin_keyboard, shares_words


async def _person(session: AsyncSession, row: ScheduledAction) -> SupportPerson:
    person = await session.get(SupportPerson, int(row.payload.get("support_person_id", 0)))
    if person is None:
        raise Skip("no such support person")
    return person


def _active(person: SupportPerson) -> None:
    if not person.receives_messages or person.participant.status not in MAY_INVITE:
        raise Skip("support person (or their participant) no longer active")


async def send_notice(ctx: AppContext, messenger: Messenger, session: AsyncSession, row: ScheduledAction) -> Delivered:
    """`support_notice` rows: to the participant (joined, declined, left, invited by staff) or to
    the support person (revoked: plainly, without detail)."""
    person = await _person(session, row)
    notice = str(row.payload.get("notice"))
    if row.payload.get("to") == "support":
        if person.chat_id is None or person.unreachable_at is not None:
            raise Skip("support person has no chat")
        message = await say(messenger, person.chat_id, ctx.t(f"support.notice_{notice}", person.locale))
        return Delivered(person.chat_id, message.message_id)
    participant: Participant = person.participant
    if participant.chat_id is None or participant.unreachable_at is not None:
        raise Skip("participant has no chat")
    items = await shares_of(session, person.id)
    text = ctx.t(f"support.told_{notice}", participant.locale, name=person.label,
                 shares=shares_words(ctx, items, participant.locale))
    message = await say(messenger, participant.chat_id, text)
    return Delivered(participant.chat_id, message.message_id)


async def send_update(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                      row: ScheduledAction) -> Delivered | Handled:
    """`support_update` rows: what the participant shares this week, read now; then the week's
    check-in is added, due now (written with this row's outcome, so it always comes after)."""
    person = await _person(session, row)
    _active(person)
    now = ctx.clock.now()
    await follow_with_checkin(session, person, row.due_at, now)
    text = await weekly_update(session, ctx, person, now)
    if text is None:  # the check-in still comes
        return Handled(note="the participant shares nothing with this person")
    assert person.chat_id is not None
    message = await say(messenger, person.chat_id, text)
    disclose(session, now, person.participant_id, f"support:{person.id}", "support_update")
    return Delivered(person.chat_id, message.message_id, wake=True)


async def send_checkin(ctx: AppContext, messenger: Messenger, session: AsyncSession, row: ScheduledAction) -> Delivered:
    """`support_checkin` rows: "how are you doing this week?" with 0-10."""
    person = await _person(session, row)
    _active(person)
    assert person.chat_id is not None
    checkin: SupportCheckin = await open_checkin(session, person, ctx.clock.now())
    message = await say(messenger, person.chat_id, ctx.t("support.checkin_ask", person.locale),
                        checkin_keyboard(checkin.id))
    return Delivered(person.chat_id, message.message_id)


async def send_concern(ctx: AppContext, messenger: Messenger, session: AsyncSession, row: ScheduledAction) -> Delivered:
    """`support_concern` rows: the participant's clinician hears that a support person wrote
    something worrying, or rated their week very low. A notice, not a page: no acknowledgement."""
    person = await _person(session, row)
    staff = await session.get(Staff, row.staff_id) if row.staff_id else None
    if staff is None or staff.chat_id is None or not staff.active:
        raise Skip("no clinician chat to tell")
    locale, alias = staff.locale, person.participant.alias
    values = dict(alias=alias, who=person.label, support_alias=person.alias)
    if row.payload.get("reason") == "low_score":
        checkin = await _last_checkin(session, person)
        text = ctx.t("support.concern_low_score", locale, score=checkin.score if checkin else "-", **values)
    else:
        about = "participant" if row.payload.get("about") == "participant" else "self"
        text = ctx.t("support.concern_message", locale,
                     about=ctx.t(f"support.alert_about_{about}", locale, alias=alias), **values)
    message = await say(messenger, staff.chat_id, text)
    disclose(session, ctx.clock.now(), person.participant_id, f"staff:{staff.id}", "notice", "support_concern")
    return Delivered(staff.chat_id, message.message_id)


async def _last_checkin(session: AsyncSession, person: SupportPerson) -> SupportCheckin | None:
    from sqlalchemy import select

    return await session.scalar(select(SupportCheckin).where(SupportCheckin.support_person_id == person.id,
                                                             SupportCheckin.score.is_not(None))
                                .order_by(SupportCheckin.answered_at.desc()).limit(1))
