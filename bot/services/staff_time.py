"""Times shown to staff, in their own time zone (`Staff.timezone`, else the program's)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.context import AppContext
from bot.db.models import Staff


def staff_zone(ctx: AppContext, staff: Staff | None) -> ZoneInfo:
    """The zone this staff member reads times in: their own, else `[program] default_timezone`."""
    default = ctx.settings.program.default_timezone
    for name in ((staff.timezone if staff is not None else None), default):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def clock_text(moment: datetime, zone: ZoneInfo) -> str:
    """'2026-03-02 09:05 EST': date, 24-hour time and the zone's abbreviation."""
    local = moment.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def staff_clock_text(ctx: AppContext, staff: Staff | None, moment: datetime) -> str:
    return clock_text(moment, staff_zone(ctx, staff))
