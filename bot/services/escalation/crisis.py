"""Every crisis text a participant (or a support person) gets, in one place. Fixed templates from
content/<locale>/ui.toml, never generated: the reply to a flagged message, the line once their care
team was paged, and the line when nobody could be reached."""

from __future__ import annotations

from bot.context import AppContext
from bot.safety.levels import Level


def _with_after_hours(ctx: AppContext, key: str, locale: str, **values: str) -> str:
    phone = ctx.settings.program.after_hours_phone
    after_hours = ctx.t("crisis.after_hours", locale, phone=phone) if phone else ""
    # after_hours holds markup of our own, so it is put in after escaping the other values.
    return ctx.t(key, locale, after_hours="{after_hours}", **values).replace("{after_hours}", after_hours)


def crisis_reply_text(ctx: AppContext, level: Level, locale: str) -> str:
    """The fixed crisis reply for a level and language. `concern` gets the gentler supportive reply."""
    key = {Level.IMMINENT: "crisis.imminent", Level.URGENT: "crisis.urgent"}.get(level, "crisis.concern")
    return _with_after_hours(ctx, key, locale, chat_url=ctx.settings.crisis_for(locale).chat_url)


def team_told_text(ctx: AppContext, locale: str) -> str:
    """A page was delivered: "your care team has been told"."""
    return ctx.t("crisis.team_told", locale)


def not_reached_text(ctx: AppContext, locale: str) -> str:
    """Nobody could be paged: the crisis numbers and the program's after-hours line, plainly."""
    return _with_after_hours(ctx, "crisis.team_not_reached", locale)


def support_team_told_text(ctx: AppContext, locale: str) -> str:
    """To a support person, once a page about what they wrote was delivered."""
    return ctx.t("support.team_told", locale)


def support_not_reached_text(ctx: AppContext, locale: str) -> str:
    """To a support person, when nobody on the care team could be paged."""
    return _with_after_hours(ctx, "support.team_not_reached", locale)
