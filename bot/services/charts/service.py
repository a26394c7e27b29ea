"""The trend chart as a use case: gather, draw (off the event loop), and say it in words.

`trend_chart(ctx, session, participant, now, locale)` returns the PNG and its caption; the caller
sends it and records the disclosure (`disclose_chart`), because only the caller knows who
receives it: /trend (a clinician), /mytrend (the participant), the pre-session brief.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Sequence
from datetime import date, datetime
from statistics import fmean

from sqlalchemy.ext.asyncio import AsyncSession

from bot.content.instruments import InstrumentContent, load_instruments
from bot.context import AppContext
from bot.db.instrument_models import INSTRUMENT
from bot.db.models import Participant
from bot.flows.engine import FlowEngine
from bot.safety.levels import Level
from bot.services.audit import disclose
from bot.services.charts.data import BandRange, SessionOutcome, TrendData, gather_trend
from bot.services.charts.render import ALL_LEVELS, ChartTexts, render_trend
from bot.services.labels import level_text, optional_text

CAPTION_LIMIT = 1024  # Telegram's limit for a photo's caption
DISCLOSURE_KIND = "chart"


class ChartInstruments:
    """The questionnaires' bands when the questionnaire flow is not installed (a tool, a
    benchmark): read once from the content library."""

    def __init__(self, content: InstrumentContent) -> None:
        self.content = content


def _instrument_content(ctx: AppContext) -> InstrumentContent | None:
    engine = ctx.parts.find(FlowEngine)
    kind = engine.kinds.get(INSTRUMENT) if engine is not None else None
    content = getattr(kind, "content", None)
    if isinstance(content, InstrumentContent):
        return content
    cached = ctx.parts.find(ChartInstruments)
    if cached is None:
        try:
            loaded = load_instruments(ctx.settings.content_dir, (), allow_drafts=ctx.settings.content.allow_drafts)
        except Exception:  # a broken file elsewhere must not cost the chart: it is drawn without bands
            return None
        cached = ctx.parts.add(ChartInstruments(loaded))
    return cached.content


def bands_from_content(ctx: AppContext) -> dict[str, tuple[BandRange, ...]]:
    content = _instrument_content(ctx)
    if content is None:
        return {}
    out: dict[str, tuple[BandRange, ...]] = {}
    for instrument_id in content.ids:
        instrument = content.find(instrument_id, "en")
        if instrument is not None:
            out[instrument_id] = tuple(BandRange(b.id, b.low, b.high) for b in instrument.bands)
    return out


def _plain(ctx: AppContext, key: str, locale: str, **values: object) -> str:
    """A text for the picture: no HTML (ctx.t escapes the values it fills in for Telegram)."""
    return html.unescape(ctx.t(key, locale, **values))


def _day(ctx: AppContext, day: date, locale: str) -> str:
    months = ctx.t("calendar.months", locale).split()
    month = months[day.month - 1] if len(months) == 12 else str(day.month)
    return _plain(ctx, "chart.day", locale, month=month, day=day.day)


def questionnaire_name(ctx: AppContext, instrument_id: str, locale: str) -> str:
    return optional_text(ctx, f"questionnaire.name_{instrument_id}", locale) or instrument_id.upper()


def band_name(ctx: AppContext, band: str, locale: str) -> str:
    return optional_text(ctx, f"questionnaire.band_{band}", locale) or band.replace("_", " ")


def chart_texts(ctx: AppContext, data: TrendData, locale: str, *, own: bool) -> ChartTexts:
    """Every word the picture needs, in `locale`; `own` is the participant's own chart (/mytrend)."""
    first, last = _day(ctx, data.first, locale), _day(ctx, data.last, locale)
    title = (_plain(ctx, "chart.title_own", locale, days=len(data.days), first=first, last=last) if own else
             _plain(ctx, "chart.title_staff", locale, alias=data.alias, days=len(data.days), first=first, last=last))
    instruments = {q.instrument_id for q in data.questionnaires}
    bands = {b.id for q in data.questionnaires for b in q.bands}
    if own:
        levels = {ALL_LEVELS: _plain(ctx, "chart.own_alerts", locale)}
    else:
        levels = {int(level): _plain(ctx, "chart.alert_level", locale, level=level_text(ctx, level, locale))
                  for level in (Level.CONCERN, Level.URGENT, Level.IMMINENT)}
    return ChartTexts(
        title=title,
        months=tuple(ctx.t("calendar.months", locale).split()),
        day_format=ctx.texts.get("chart.day", locale),
        mood_panel=_plain(ctx, "chart.mood_panel", locale),
        mood=_plain(ctx, "chart.mood", locale),
        craving=_plain(ctx, "chart.craving", locale),
        no_checkins=_plain(ctx, "chart.no_checkins", locale),
        sleep_panel=_plain(ctx, "chart.sleep_panel", locale),
        sleep=_plain(ctx, "chart.sleep", locale),
        questionnaire_panel=ctx.texts.get("chart.questionnaire_panel", locale),
        questionnaire_names={i: html.unescape(questionnaire_name(ctx, i, locale)) for i in instruments},
        band_names={b: html.unescape(band_name(ctx, b, locale)) for b in bands},
        events_panel=_plain(ctx, "chart.own_events_panel" if own else "chart.events_panel", locale),
        row_sessions=_plain(ctx, "chart.row_sessions", locale),
        row_missed=_plain(ctx, "chart.own_row_missed" if own else "chart.row_missed", locale),
        row_alerts=_plain(ctx, "chart.own_row_alerts" if own else "chart.row_alerts", locale),
        missed=_plain(ctx, "chart.own_missed" if own else "chart.missed", locale),
        session_outcomes={str(o): _plain(ctx, f"chart.session_{o}", locale) for o in SessionOutcome},
        alert_levels=levels,
        empty_title=_plain(ctx, "chart.empty_title", locale),
        empty_lines=(_plain(ctx, "chart.own_empty_line" if own else "chart.empty_line", locale),),
    )


def _number(value: float) -> str:
    """6.0 → "6", 6.25 → "6.3"."""
    rounded = round(value, 1)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:.1f}"


def _series(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def chart_caption(ctx: AppContext, data: TrendData, locale: str, *, own: bool) -> str:
    """The chart in words (its alt text), for the photo's caption: HTML-safe, at most 1024 characters."""
    first, last, days = _day(ctx, data.first, locale), _day(ctx, data.last, locale), len(data.days)
    if data.empty:
        return (ctx.t("chart.caption_empty_own", locale, days=days) if own else
                ctx.t("chart.caption_empty", locale, alias=data.alias, days=days))
    lines = [ctx.t("chart.caption_title_own", locale, first=first, last=last, days=days) if own else
             ctx.t("chart.caption_title", locale, alias=data.alias, first=first, last=last, days=days)]
    mood = _series([d.mood for d in data.days])
    craving = _series([d.craving for d in data.days])
    sleep = _series([d.sleep for d in data.days])
    lines.append(ctx.t("chart.caption_mood", locale, count=len(mood), missed=data.checkins_missed,
                       last=_number(mood[-1]) if mood else "–", average=_number(fmean(mood)) if mood else "–"))
    if craving:
        lines.append(ctx.t("chart.caption_craving", locale, last=_number(craving[-1]),
                           average=_number(fmean(craving))))
    if sleep:
        lines.append(ctx.t("chart.caption_sleep", locale, count=len(sleep), average=_number(fmean(sleep))))
    for q in data.questionnaires:
        lines.append(ctx.t("chart.caption_questionnaire", locale, name=questionnaire_name(ctx, q.instrument_id, locale),
                           count=len(q.points), total=q.latest.total, band=band_name(ctx, q.latest.band, locale)))
    if data.alerts:
        if own:
            lines.append(ctx.t("chart.caption_alerts_own", locale, count=len(data.alerts)))
        else:
            by_level: dict[int, int] = {}
            for alert in data.alerts:
                by_level[alert.level] = by_level.get(alert.level, 0) + 1
            levels = ", ".join(f"{level_text(ctx, level, locale)} {n}" for level, n in sorted(by_level.items(),
                                                                                          reverse=True))
            lines.append(ctx.t("chart.caption_alerts", locale, count=len(data.alerts), levels=levels))
    if data.sessions:
        lines.append(ctx.t("chart.caption_sessions", locale, held=len(data.sessions),
                           attended=data.sessions_with(SessionOutcome.ATTENDED),
                           absent=data.sessions_with(SessionOutcome.ABSENT),
                           cant=data.sessions_with(SessionOutcome.CANT_ATTEND),
                           unmarked=data.sessions_with(SessionOutcome.NOT_MARKED)))
    caption = "\n".join(lines)
    while len(caption) > CAPTION_LIMIT and len(lines) > 1:  # never cut inside an escaped entity
        lines.pop()
        caption = "\n".join([*lines, "…"])
    return caption


async def trend_data(ctx: AppContext, session: AsyncSession, participant: Participant, now: datetime) -> TrendData:
    bands = bands_from_content(ctx)
    return await gather_trend(session, participant, now, expire_hours=ctx.settings.checkin.expire_hours,
                              bands_of=lambda instrument_id: bands.get(instrument_id, ()))


async def trend_chart(ctx: AppContext, session: AsyncSession, participant: Participant, now: datetime,
                      locale: str, *, own: bool = False) -> tuple[bytes, str]:
    """The participant's last 30 days as a PNG, and its caption (the chart in words), in `locale`.

    Drawing runs in a worker thread (`asyncio.to_thread`): the event loop stays free for crisis
    replies while matplotlib works. `own`: the participant's own chart (their words, no alert
    levels). The caller sends it and records the disclosure (`disclose_chart`).
    """
    data = await trend_data(ctx, session, participant, now)
    png = await asyncio.to_thread(render_trend, data, chart_texts(ctx, data, locale, own=own))
    return png, chart_caption(ctx, data, locale, own=own)


def chart_filename(now: datetime) -> str:
    """No alias in the file name: it shows in the chat's media list."""
    return f"trend-{now:%Y%m%d}.png"


def disclose_chart(session: AsyncSession, now: datetime, participant: Participant, recipient: str) -> None:
    """A chart sent is a disclosure of the participant's data to `recipient` (42 CFR Part 2)."""
    disclose(session, now, participant.id, recipient, DISCLOSURE_KIND)
