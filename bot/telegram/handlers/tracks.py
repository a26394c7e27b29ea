"""/track ALIAS NAME for staff: put a participant on a program track ([content] tracks), which
picks their daily read (bot/services/learning/tracks.py). `/track ALIAS` shows the current one.

Only for staff who may see the participant (bot/services/visibility.py); "no such alias" and "not
on your caseload" get one answer, and both are audited, as in /trends. Every change is audited.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import ENROLLED, Staff
from bot.messaging import Replies
from bot.services.audit import actor_label, audit
from bot.services.caseload import find_participant
from bot.services.learning.tracks import NO_TRACK, TrackError, check_track, set_track
from bot.services.visibility import example_alias, may_see
from bot.telegram.filters import IsStaff

router = Router(name="tracks")
router.message.filter(IsStaff())



@router.message(Command("track"))
async def track_command(message: Message, command: CommandObject, actor: Staff, session: AsyncSession,
                        replies: Replies, ctx: AppContext) -> None:
    now, who, locale, chat = ctx.clock.now(), actor_label(actor), actor.locale, message.chat.id
    tracks = ctx.settings.content.tracks
    if not tracks:
        replies.text(chat, ctx.t("tracks.not_configured", locale))
        return
    listed = ", ".join(tracks)
    alias, _, name = (command.args or "").strip().partition(" ")
    name = name.strip()
    if not alias:
        replies.text(chat, ctx.t("tracks.usage", locale, example=await example_alias(session, actor),
                                 track=tracks[0], tracks=listed))
        return
    participant = await find_participant(session, alias)
    if participant is None or not await may_see(session, actor, participant):
        audit(session, now, who, "refused:/track", participant_id=participant.id if participant else None,
              allowed=False)
        replies.text(chat, ctx.t("tracks.not_on_caseload", locale, alias=alias[:80],
                                 example=await example_alias(session, actor), track=tracks[0]))
        return
    if not name:
        audit(session, now, who, "view:track", participant_id=participant.id)
        key = "tracks.current" if participant.track else "tracks.current_none"
        replies.text(chat, ctx.t(key, locale, alias=participant.alias, track=participant.track or NO_TRACK,
                                 tracks=listed))
        return
    try:
        check_track(ctx.settings, name)
    except TrackError:
        replies.text(chat, ctx.t("tracks.unknown", locale, track=name[:40], tracks=listed))
        return
    if participant.status not in ENROLLED:
        replies.text(chat, ctx.t("tracks.not_enrolled", locale, alias=participant.alias))
        return
    track = await set_track(session, ctx, participant, name, who)
    if track is None:
        replies.text(chat, ctx.t("tracks.cleared", locale, alias=participant.alias))
    else:
        replies.text(chat, ctx.t("tracks.set", locale, alias=participant.alias, track=track))
