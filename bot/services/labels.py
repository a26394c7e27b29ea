"""Clinical words for the care team, in the reader's language: a level, a status, why a message
or an answer was flagged (the rules' constructs, the triggers' reasons), how an alert ended. Alerts,
the caseload, charts and digests all say these the same way; each comes from content/<locale>/ui.toml."""

from __future__ import annotations

from collections.abc import Sequence

from bot.context import AppContext
from bot.safety.levels import Level, constructs_in

DASH = "–"  # nothing to say (no construct, a question not answered)


def optional_text(ctx: AppContext, key: str, locale: str, **values: object) -> str | None:
    """A text that a program may leave out of its locale files (a status, a reason): None if absent."""
    return ctx.t(key, locale, **values) if ctx.texts.has(key) else None


def status_text(ctx: AppContext, status: str, locale: str) -> str:
    return optional_text(ctx, f"caseload.status_{status}", locale) or status


def level_text(ctx: AppContext, level: int, locale: str) -> str:
    name = Level(max(0, min(int(level), Level.IMMINENT))).label
    return ctx.t(f"caseload.level_{name}", locale)


def reasons_text(ctx: AppContext, reasons: Sequence[str], locale: str) -> str:
    """Trigger ids ("trigger:low_mood") as words ("low mood"); an unknown one by its id."""
    words = []
    for reason in reasons:
        name = reason.split(":", 1)[-1]
        words.append(optional_text(ctx, f"caseload.reason_{name}", locale) or name)
    return ", ".join(dict.fromkeys(words))


def constructs_text(ctx: AppContext, reasons: Sequence[str], locale: str) -> str:
    """What was found, for an alert: the rules' constructs ("means: medication · plan"), and the
    triggers' reasons when no rule named one ("said yes to the safety question"); "–" for neither."""
    labels: list[str] = []
    for name, detail in constructs_in(reasons):
        label = optional_text(ctx, f"construct.{name}", locale) or name.replace("_", " ")
        if detail:
            key = "detail_" + detail.replace(" ", "_")
            label += ": " + (optional_text(ctx, f"construct.{key}", locale) or detail)
        labels.append(label)
    if not labels:
        others = [r for r in reasons if r.startswith(("trigger:", "llm:"))]
        return reasons_text(ctx, others, locale) if others else DASH
    return " · ".join(dict.fromkeys(labels))


def outcome_text(ctx: AppContext, outcome: str | None, locale: str) -> str:
    """How an alert ended, in the clinician's language ("-" while it has no outcome)."""
    key = f"alert.outcome_{outcome}"
    return ctx.t(key, locale) if outcome and ctx.texts.has(key) else (outcome or "-")
