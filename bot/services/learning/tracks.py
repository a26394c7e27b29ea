"""A participant's track (`[content] tracks` in config.toml: e.g. mental_health, substance_use),
which picks the snippets of their daily read.

Set at invite (`iopbot invite participant --track NAME`), by the care team (`/track ALIAS NAME`
in Telegram, `iopbot participant track ALIAS NAME`). While the program lists no tracks, a track
cannot be set and every participant gets every snippet, as before tracks existed.

Changing a track is audited (ids and the track name only) and replans the daily read; the
participant is not told: a track name says what they are treated for (minimum necessary).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.context import AppContext
from bot.db.models import Participant, ParticipantStatus
from bot.services.audit import audit
from bot.services.learning.drip import DripPlanner

NO_TRACK = "none"  # `/track ALIAS none`: back to every snippet


class TrackError(Exception):
    """A track that cannot be set; the message is one line that says what to do."""


# Declined consent, stopped or discharged: nothing new is stored for them. (Before enrollment an
# operator may set the track ahead, as `iopbot invite --track` does; staff's /track needs ENROLLED.)
NOT_TO_BE_CHANGED = frozenset({ParticipantStatus.DECLINED, ParticipantStatus.OPTED_OUT,
                               ParticipantStatus.DISCHARGED})


def configured_tracks(settings: Settings) -> tuple[str, ...]:
    return settings.content.tracks


def check_track(settings: Settings, name: str) -> str | None:
    """The track to store for `name` (None for "none"), or TrackError naming the program's tracks."""
    tracks = configured_tracks(settings)
    name = name.strip()
    if not tracks:
        raise TrackError('this program has no tracks: list them in config.toml, [content] tracks = '
                         '["mental_health", "substance_use"], then restart the bot')
    if name in tracks:
        return name
    if name.lower() == NO_TRACK:
        return None
    raise TrackError(f"unknown track {name!r}: the program's tracks are {', '.join(tracks)} "
                     f"(or {NO_TRACK} for every snippet)")


async def set_track(session: AsyncSession, ctx: AppContext, participant: Participant, name: str,
                    actor: str) -> str | None:
    """Put the participant on track `name` ("none": no track) for `actor` (an audit label, e.g.
    "staff:3" or "cli"); returns the track now stored. Raises TrackError for a name the program
    does not list. The daily read is replanned in the same transaction."""
    track = check_track(ctx.settings, name)
    if participant.status in NOT_TO_BE_CHANGED:
        raise TrackError(f"{participant.alias} is {participant.status}: their track stays as it is")
    now = ctx.clock.now()
    if participant.track != track:
        participant.track = track
        audit(session, now, actor, f"track:{track or NO_TRACK}", participant_id=participant.id)
        await drip_planner(ctx).replan_participant(session, participant, now)
    return track


def drip_planner(ctx: AppContext) -> DripPlanner:
    """The running bot's planner, or one of its own (the command line has no running parts)."""
    return ctx.parts.find(DripPlanner) or DripPlanner(ctx)
