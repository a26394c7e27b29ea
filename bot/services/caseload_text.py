"""The words of /caseload, /trends and /digest, in the reader's language, split for Telegram.

Every sentence comes from content/<locale>/ui.toml; participants appear by alias only. Each
function returns the messages to send (at most 4096 characters each, split between paragraphs
by the content renderer, never inside a tag).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

from bot.content.render import pack_html
from bot.context import AppContext
from bot.db.models import ParticipantStatus
from bot.safety.levels import Level
from bot.services.calendar.reminders import date_text, day_text, time_text
from bot.services.caseload import (
    CONCERN_MESSAGE_DAYS,
    MEANINGFUL_RISE,
    Absence,
    CaseloadRow,
    Digest,
    QuestionnaireTrend,
    TrendDay,
    Trends,
)
from bot.services.labels import (
    DASH,
    level_text,
    optional_text,
    outcome_text,
    reasons_text,
    status_text,
)
from bot.services.staff_time import clock_text

SPARKS = "▁▂▃▄▅▆▇█"
NO_VALUE = "·"  # a day without an answer, in a sparkline
SLEEP_SCALE = 12.0  # hours of sleep at the top of the sparkline
MEDICATION_MARKS = {"yes": "✓", "no": "✗", "not_prescribed": "–"}


# --- small pieces ------------------------------------------------------------------------------------

def number_text(value: float | None) -> str:
    """6.0 → "6", 6.5 → "6.5", None → "–"."""
    if value is None:
        return DASH
    return f"{value:g}" if value != int(value) else str(int(value))


def sparkline(values: Sequence[float | None], top: float) -> str:
    """One character per day: ▁ (0) to █ (`top` or more); · where there is no answer."""
    marks = []
    for value in values:
        if value is None:
            marks.append(NO_VALUE)
        else:
            share = min(max(value / top, 0.0), 1.0)
            marks.append(SPARKS[round(share * (len(SPARKS) - 1))])
    return "".join(marks)


def categories_text(ctx: AppContext, categories: Sequence[str], locale: str) -> str:
    """Safety categories ("self_harm") as words; "–" when the rules named none."""
    words = [optional_text(ctx, f"caseload.category_{c}", locale) or c.replace("_", " ") for c in categories]
    return ", ".join(words) or DASH


def absence_text(ctx: AppContext, absence: Absence, locale: str) -> str:
    """The session's day and time in the host's zone, with its abbreviation (staff have no zone)."""
    tz, start = absence.timezone, absence.start_at
    return (f"{day_text(ctx, start, tz, locale)}, {time_text(ctx, start, tz, locale)} "
            f"{start.astimezone(ZoneInfo(tz)).tzname()}")


def questionnaire_name(ctx: AppContext, instrument_id: str, locale: str) -> str:
    """The questionnaire's short name (PHQ-9); one without a name in ui.toml shows its id."""
    return optional_text(ctx, f"questionnaire.name_{instrument_id}", locale) or instrument_id.upper()


def band_text(ctx: AppContext, band: str, locale: str) -> str:
    return optional_text(ctx, f"questionnaire.band_{band}", locale) or band.replace("_", " ")


def change_text(ctx: AppContext, trend: QuestionnaireTrend, locale: str) -> str:
    """The change since the previous one (▲5 since Mon, Mar 2), or that it is the first."""
    previous, change = trend.previous, trend.change
    if previous is None or change is None:
        return ctx.t("questionnaire.first", locale)
    day = date_text(ctx, previous.day, locale)
    if change > 0:
        return ctx.t("questionnaire.up", locale, points=change, day=day)
    if change < 0:
        return ctx.t("questionnaire.down", locale, points=-change, day=day)
    return ctx.t("questionnaire.same", locale, day=day)


def questionnaire_marks(ctx: AppContext, trend: QuestionnaireTrend, locale: str) -> str:
    """What a clinician must notice: a clinically meaningful rise, the severe band ("" if neither)."""
    marks = []
    if trend.meaningful_rise:
        marks.append(ctx.t("questionnaire.mark_rise", locale, points=MEANINGFUL_RISE[trend.instrument_id]))
    if trend.severe:
        marks.append(ctx.t("questionnaire.mark_severe", locale))
    return "".join(" · " + m for m in marks)


def questionnaire_latest(ctx: AppContext, trend: QuestionnaireTrend, locale: str) -> str:
    """One questionnaire's latest total and band, its day, the change and its marks."""
    latest = trend.latest
    return ctx.t("questionnaire.latest", locale, name=questionnaire_name(ctx, trend.instrument_id, locale),
                 total=latest.total, band=band_text(ctx, latest.band, locale),
                 day=date_text(ctx, latest.day, locale),
                 change=change_text(ctx, trend, locale)) + questionnaire_marks(ctx, trend, locale)


# --- /caseload -----------------------------------------------------------------------------------------

def caseload_entry(ctx: AppContext, row: CaseloadRow, locale: str, first: Sequence[str] = ()) -> str:
    """A participant in a few short lines: who and how, last check-in, questionnaires, misses, absences.
    `first`: lines shown right under the name (a coach's view puts goals and medication there)."""
    if row.open_flags:
        mark = "🚨"
    elif row.concern >= Level.CONCERN or row.questionnaire_notable:
        mark = "⚠️"
    elif row.missed_in_row or row.unreachable:
        mark = "⏰"
    else:
        mark = "•"
    head = [ctx.t("caseload.head", locale, mark=mark, alias=row.alias, status=status_text(ctx, row.status, locale))]
    if row.open_flags:
        head.append(ctx.t("caseload.open_alerts", locale, count=row.open_flags))
    if row.awaiting_outcome:
        head.append(ctx.t("caseload.awaiting_outcome", locale, count=row.awaiting_outcome))
    if row.unreachable:
        head.append(ctx.t("caseload.blocked", locale))
    lines = [" · ".join(head), *first]
    last = row.last_checkin
    if last is not None:
        line = ctx.t("caseload.last_checkin", locale, day=date_text(ctx, last.day, locale),
                     mood=number_text(last.mood), craving=number_text(last.craving))
        if last.level >= Level.CONCERN:
            line += " · " + ctx.t("caseload.concern", locale, level=level_text(ctx, last.level, locale),
                                  reasons=reasons_text(ctx, last.reasons, locale))
        lines.append(line)
    elif row.status == ParticipantStatus.ACTIVE:
        lines.append(ctx.t("caseload.no_checkin", locale))
    if row.questionnaires:
        lines.append("\n".join(questionnaire_latest(ctx, q, locale) for q in row.questionnaires))
    if row.concern_messages:
        lines.append(ctx.t("caseload.concern_messages", locale, count=row.concern_messages,
                           days=CONCERN_MESSAGE_DAYS))
    if row.missed_in_row:
        lines.append(ctx.t("caseload.missed", locale, count=row.missed_in_row))
    if row.absences:
        lines.append(ctx.t("caseload.absent", locale,
                           sessions="; ".join(absence_text(ctx, a, locale) for a in row.absences)))
    return "\n".join(lines)


def caseload_messages(ctx: AppContext, rows: Sequence[CaseloadRow], locale: str,
                      first: Mapping[int, Sequence[str]] | None = None) -> list[str]:
    """The caseload; `first`: per participant id, lines under their name (a coach's goals and medication)."""
    if not rows:
        return [ctx.t("caseload.empty", locale)]
    title = ctx.t("caseload.title", locale, count=len(rows))
    entries = (caseload_entry(ctx, row, locale, (first or {}).get(row.participant_id, ())) for row in rows)
    return pack_html([title, *entries, ctx.t("caseload.footer", locale)])


# --- /trends -----------------------------------------------------------------------------------------------

def _average(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    return number_text(round(sum(known) / len(known), 1)) if known else DASH


def _last(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    return number_text(known[-1]) if known else DASH


def trends_messages(ctx: AppContext, trends: Trends, locale: str) -> list[str]:
    days = trends.days
    title = ctx.t("trends.title", locale, alias=trends.alias, first=date_text(ctx, days[0].day, locale),
                  last=date_text(ctx, days[-1].day, locale), days=len(days))
    sparks = []
    for key, values, top in (("mood", [d.mood for d in days], 10.0), ("craving", [d.craving for d in days], 10.0),
                             ("sleep", [d.sleep for d in days], SLEEP_SCALE)):
        sparks.append(ctx.t(f"trends.spark_{key}", locale, spark=sparkline(values, top), last=_last(values),
                            average=_average(values)))
    medication = [d.medication for d in days]
    taken = sum(1 for m in medication if m == "yes")
    asked = sum(1 for m in medication if m in ("yes", "no"))
    sparks.append(ctx.t("trends.spark_medication", locale,
                        spark="".join(MEDICATION_MARKS.get(m or "", NO_VALUE) for m in medication),
                        taken=taken, asked=asked))
    sparks.append(ctx.t("trends.legend", locale))
    rate = trends.response_rate
    totals = [
        ctx.t("trends.response", locale, answered=trends.checkins_answered,
              total=trends.checkins_answered + trends.checkins_missed,
              percent=DASH if rate is None else f"{round(rate * 100)}%"),
        ctx.t("trends.sessions", locale, held=trends.sessions_held, attended=trends.sessions_attended,
              absent=trends.sessions_missed, cant=trends.sessions_cant_attend),
        ctx.t("trends.alerts", locale, count=trends.alerts, open=trends.alerts_open),
    ]
    lines = [ctx.t("trends.days_title", locale)]
    quiet: list[TrendDay] = []  # days without a check-in, newest first, shown as one line

    def say_quiet() -> None:
        if len(quiet) == 1:
            lines.append(ctx.t("trends.day_none", locale, day=date_text(ctx, quiet[0].day, locale)))
        elif quiet:
            lines.append(ctx.t("trends.days_none", locale, newest=date_text(ctx, quiet[0].day, locale),
                               oldest=date_text(ctx, quiet[-1].day, locale), count=len(quiet)))
        quiet.clear()

    for d in reversed(days):
        if not d.answered:
            quiet.append(d)
            continue
        say_quiet()
        day = date_text(ctx, d.day, locale)
        medication_word = optional_text(ctx, f"trends.medication_{d.medication}", locale) if d.medication else None
        line = ctx.t("trends.day", locale, day=day, mood=number_text(d.mood), craving=number_text(d.craving),
                     sleep=number_text(d.sleep), medication=medication_word or DASH)
        if d.level >= Level.CONCERN:
            line += " · " + ctx.t("trends.day_flag", locale, level=level_text(ctx, d.level, locale))
        lines.append(line)
    say_quiet()
    return pack_html([title, "\n".join(sparks), "\n".join(totals), *questionnaires_text(ctx, trends, locale),
                      "\n".join(lines)])


def questionnaires_text(ctx: AppContext, trends: Trends, locale: str) -> list[str]:
    """The questionnaire totals over time, oldest first, each with its latest change and marks
    (nothing when none was completed)."""
    if not trends.questionnaires:
        return []
    rows = [ctx.t("trends.questionnaires_title", locale)]
    for q in trends.questionnaires:
        points = " → ".join(ctx.t("trends.questionnaire_point", locale, total=s.total,
                                  day=date_text(ctx, s.day, locale)) for s in q.scores)
        rows.append(ctx.t("trends.questionnaire_row", locale, name=questionnaire_name(ctx, q.instrument_id, locale),
                          totals=points)
                    + "\n" + questionnaire_latest(ctx, q, locale))
    return ["\n".join(rows)]


def _alert_status(ctx: AppContext, status: str, outcome: str | None, locale: str) -> str:
    if status == "resolved":
        return ctx.t("digest.alert_resolved", locale, outcome=outcome_text(ctx, outcome, locale))
    return optional_text(ctx, f"digest.alert_{status}", locale) or status


# --- /digest ------------------------------------------------------------------------------------------------------

def digest_messages(ctx: AppContext, digest: Digest, locale: str, zone: ZoneInfo | None = None) -> list[str]:
    """The digest in the reader's language; times in their zone (`zone`, else UTC)."""
    zone = zone or ZoneInfo("UTC")
    title = ctx.t("digest.title", locale, hours=round((digest.until - digest.since).total_seconds() / 3600),
                  count=digest.participants, until=clock_text(digest.until, zone))
    if digest.participants == 0:
        return [ctx.t("caseload.empty", locale)]
    if digest.empty:
        return pack_html([title, ctx.t("digest.nothing", locale)])
    sections = [title]

    def section(key: str, rows: list[str]) -> None:
        if rows:
            sections.append("\n".join([ctx.t(f"digest.{key}", locale), *rows]))

    section("alerts", [
        ctx.t("digest.alert_row", locale, level=level_text(ctx, a.level, locale).upper(), alias=a.alias,
              status=_alert_status(ctx, a.status, a.outcome, locale), received=clock_text(a.received_at, zone))
        + ("" if a.new else " · " + ctx.t("digest.alert_older", locale))
        for a in digest.alerts])
    section("concerns", [
        ctx.t("digest.concern_row", locale, alias=c.alias, day=date_text(ctx, c.day, locale),
              level=level_text(ctx, c.level, locale), reasons=reasons_text(ctx, c.reasons, locale))
        for c in digest.concerns])
    section("concern_messages", [
        ctx.t("digest.concern_messages_row", locale, alias=c.alias, count=c.count,
              categories=categories_text(ctx, c.categories, locale))
        for c in digest.concern_messages])
    section("missed", [
        ctx.t("digest.missed_row", locale, alias=m.alias, missed=m.missed, in_a_row=m.in_a_row)
        for m in digest.missed])
    section("absences", [
        ctx.t("digest.absence_row", locale, alias=a.alias,
              session=absence_text(ctx, Absence(a.start_at, a.timezone), locale))
        for a in digest.absences])
    section("questionnaires", [
        ctx.t("digest.questionnaire_row", locale, mark="⚠️" if q.trend.notable else "•", alias=q.alias,
              latest=questionnaire_latest(ctx, q.trend, locale))
        for q in digest.questionnaires])
    section("blocked", [ctx.t("digest.blocked_row", locale, alias=alias) for _, alias in digest.blocked])
    section("not_sent", [
        ctx.t("digest.not_sent_row", locale, what=optional_text(ctx, f"digest.kind_{kind}", locale) or kind, count=n)
        for kind, n in digest.not_sent.items()])
    return pack_html(sections)
