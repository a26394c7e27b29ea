"""What /meds and a reminder say, and their buttons. Words from content/<locale>/ui/medications.toml.

Callback data carries ids only (`med:t:<dose>`), never a name the participant typed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.context import AppContext
from bot.db.medication_models import MedicationConsent, MedicationReminder
from bot.messaging import Choice, Keyboard, in_rows, keyboard
from bot.services.medications.schedule import ALL_DAYS, MAX_NAME, MAX_TIMES, days_from_text, times_from_text

# Callback data (the edge routes on these prefixes).
ADD = "med:add"
NO_NAME = "med:noname"
DAY = "med:d:"  # + 0..6, "all" or "ok"
CARE = "med:c:"  # + "y" or "n"
PAUSE, RESUME, REMOVE = "med:p:", "med:r:", "med:x:"
ANSWER = "med:a:"  # + t|z|s : dose id


def days_text(ctx: AppContext, days: Iterable[int], locale: str) -> str:
    chosen = sorted(set(days))
    if set(chosen) == ALL_DAYS or not chosen:
        return ctx.t("meds.every_day", locale)
    return ", ".join(ctx.t(f"meds.day.{d}", locale) for d in chosen)


def reminder_label(ctx: AppContext, reminder: MedicationReminder, locale: str) -> str:
    return reminder.name or ctx.t("meds.unnamed", locale)


def overview(ctx: AppContext, locale: str, reminders: Sequence[MedicationReminder], consent: MedicationConsent | None,
             week: tuple[int, int] | None, timezone: str) -> tuple[str, Keyboard]:
    """/meds: the reminders, last week's figure, whether the care team is told, and the buttons."""
    if not reminders:
        lines = [ctx.t("meds.title", locale), ctx.t("meds.none", locale)]
    else:
        lines = [ctx.t("meds.title", locale)]
        for number, r in enumerate(reminders, 1):
            key = "meds.row_paused" if r.paused_at else "meds.row"
            lines.append(ctx.t(key, locale, number=number, name=reminder_label(ctx, r, locale),
                               times=", ".join(times_from_text(r.times)),
                               days=days_text(ctx, days_from_text(r.days), locale)))
        if week is not None:
            taken, due = week
            lines.append("\n" + (ctx.t("meds.week", locale, taken=taken, due=due) if due
                                 else ctx.t("meds.week_none", locale)))
    every = ctx.settings.medications.notify_after_missed
    agreed = consent is not None and consent.agreed and consent.revoked_at is None
    if every <= 0:
        care = ctx.t("meds.care_never", locale)
    elif agreed and consent is not None:
        care = ctx.t("meds.care_yes", locale, count=max(every, consent.after_missed),
                     date=_local_date(consent.decided_at, timezone))
    else:
        care = ctx.t("meds.care_no", locale)
    lines += ["", care, "", ctx.t("meds.only_reminders", locale)]
    rows: list[list[Choice]] = [[(ctx.t("meds.add", locale), ADD)]]
    for number, r in enumerate(reminders, 1):
        toggle = ((ctx.t("meds.resume", locale, number=number), f"{RESUME}{r.id}") if r.paused_at
                  else (ctx.t("meds.pause", locale, number=number), f"{PAUSE}{r.id}"))
        rows.append([toggle, (ctx.t("meds.remove", locale, number=number), f"{REMOVE}{r.id}")])
    if every > 0:
        rows.append([(ctx.t("meds.stop_telling", locale), f"{CARE}n") if agreed
                     else (ctx.t("meds.tell", locale, count=every), f"{CARE}y")])
    return "\n".join(lines), keyboard(rows)


def _local_date(moment: datetime, timezone: str) -> str:
    try:
        return moment.astimezone(ZoneInfo(timezone)).date().isoformat()
    except (KeyError, ValueError):
        return moment.date().isoformat()


def ask_name(ctx: AppContext, locale: str) -> tuple[str, Keyboard]:
    return ctx.t("meds.ask_name", locale), keyboard([[(ctx.t("meds.skip_name", locale), NO_NAME)]])


def bad_name(ctx: AppContext, locale: str) -> tuple[str, Keyboard]:
    return ctx.t("meds.bad_name", locale, max=MAX_NAME), keyboard([[(ctx.t("meds.skip_name", locale), NO_NAME)]])


def bad_times(ctx: AppContext, locale: str) -> str:
    return ctx.t("meds.bad_times", locale, max=MAX_TIMES)


def ask_days(ctx: AppContext, locale: str, chosen: Iterable[int]) -> tuple[str, Keyboard]:
    """Weekday buttons that show what is chosen (✓), "Every day" and "Done"."""
    picked = set(chosen)
    days = [((f"✓ {ctx.t(f'meds.day.{d}', locale)}" if d in picked else ctx.t(f"meds.day.{d}", locale)), f"{DAY}{d}")
            for d in range(7)]
    rows = [*in_rows(days, 4), [(ctx.t("meds.day_all", locale), f"{DAY}all"), (ctx.t("meds.done", locale), f"{DAY}ok")]]
    return ctx.t("meds.ask_days", locale), keyboard(rows)


def ask_care(ctx: AppContext, locale: str) -> tuple[str, Keyboard]:
    every = ctx.settings.medications.notify_after_missed
    return ctx.t("meds.ask_care", locale, count=every), keyboard(
        [[(ctx.t("meds.care_agree", locale), f"{CARE}y"), (ctx.t("meds.care_decline", locale), f"{CARE}n")]])


def reminder_message(ctx: AppContext, locale: str, name: str | None, at: str, dose_id: int, *,
                     again: bool = False) -> tuple[str, Keyboard]:
    """The reminder itself: the participant's own words for it, the time, and three buttons."""
    if again:
        text = (ctx.t("meds.remind.snoozed_again", locale, name=name, time=at) if name
                else ctx.t("meds.remind.snoozed_again_unnamed", locale, time=at))
    else:
        text = (ctx.t("meds.remind.named", locale, name=name, time=at) if name
                else ctx.t("meds.remind.unnamed", locale, time=at))
    minutes = ctx.settings.medications.snooze_minutes
    return text, keyboard([[(ctx.t("meds.remind.taken", locale), f"{ANSWER}t:{dose_id}"),
                            (ctx.t("meds.remind.snooze", locale, minutes=minutes), f"{ANSWER}z:{dose_id}"),
                            (ctx.t("meds.remind.skip", locale), f"{ANSWER}s:{dose_id}")]])
