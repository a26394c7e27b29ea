"""The trend chart as a PNG: matplotlib's object API on the Agg canvas, no pyplot.

Drawn for a phone: 1080 px wide, large type, one panel per kind of measure stacked over one
time axis (the participant's last 30 days). Colours are the Okabe–Ito palette, which people with
the common colour-vision deficiencies can tell apart, and every series also has its own marker
and line style, so colour is never the only cue. No pyplot: its global state is not safe in the
threads `asyncio.to_thread` runs this in; each call builds its own Figure and canvas. Matplotlib
is imported on first use, so a bot that never draws a chart never pays for it.

The number of points each series draws is written into the PNG's text metadata
(`iopbot.points`, JSON) so a test can check the picture it decoded against the data.
"""

from __future__ import annotations

import io
import json
import math
import textwrap
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from bot.services.charts.data import SCALE_TOP, AlertMark, QuestionnaireSeries, SessionOutcome, TrendData

WIDTH_PX = 1080
DPI = 100
POINTS_KEY = "iopbot.points"

# Okabe & Ito (2008), "Color Universal Design".
BLUE = "#0072B2"
VERMILLION = "#D55E00"
BLUISH_GREEN = "#009E73"
REDDISH_PURPLE = "#CC79A7"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
BLACK = "#000000"
GREY = "#6E6E6E"
# Questionnaire lines: colour, marker, line style (the same order every chart).
QUESTIONNAIRE_STYLES = ((REDDISH_PURPLE, "D", "-"), (ORANGE, "v", "-."), (SKY_BLUE, "P", ":"))
# Band shading from the lowest band to the highest: light to darker grey, so the order of the
# bands reads without colour; each band is also named at the right edge.
BAND_GREYS = ("#F4F4F4", "#E6E6E6", "#D6D6D6", "#C4C4C4", "#B0B0B0", "#9C9C9C")
# Alert levels (bot.safety.levels.Level): marker, size, filled.
ALERT_STYLES = {1: ("^", 15, False), 2: ("^", 17, True), 3: ("*", 26, True)}
ALL_LEVELS = 0  # ChartTexts.alert_levels key: one mark and one word for alerts of every level
SESSION_STYLES: dict[SessionOutcome, tuple[str, str, bool]] = {
    SessionOutcome.ATTENDED: ("o", BLUISH_GREEN, True),
    SessionOutcome.ABSENT: ("x", VERMILLION, True),
    SessionOutcome.CANT_ATTEND: ("s", ORANGE, False),
    SessionOutcome.NOT_MARKED: ("o", GREY, False),
}

TITLE_CHARS = 52  # a panel title longer than this wraps
LEGEND_COLUMN_CHARS = 20  # the events legend has 3 columns, or 2 when a label is longer than this
FONT_SIZE = 19  # points at 100 dpi: about 26 px on a 1080 px wide picture
TITLE_SIZE = 24
PANEL_TITLE_SIZE = 21

# matplotlib's font cache and text layout are shared by every figure in a process; drawing one
# chart at a time keeps them consistent (a chart takes a fraction of a second).
_DRAWING = threading.Lock()


@dataclass(frozen=True)
class ChartTexts:
    """Every word on the picture, already in the reader's language (bot/services/charts/service.py
    fills it from content/<locale>/ui/charts.toml)."""

    title: str
    months: tuple[str, ...]  # 12 short month names
    day_format: str  # "{month} {day}"
    mood_panel: str
    mood: str
    craving: str
    no_checkins: str
    sleep_panel: str
    sleep: str
    questionnaire_panel: str  # "{name} (0–{top})"
    questionnaire_names: Mapping[str, str]
    band_names: Mapping[str, str]
    events_panel: str
    row_sessions: str
    row_missed: str
    row_alerts: str
    missed: str
    session_outcomes: Mapping[str, str]
    alert_levels: Mapping[int, str]  # level → its word; or only ALL_LEVELS (a participant's own chart)
    empty_title: str
    empty_lines: tuple[str, ...]


def render_trend(data: TrendData, texts: ChartTexts) -> bytes:
    """The PNG bytes of `data`'s chart; a participant with nothing yet gets a picture that says so."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # the headless backend, explicitly
    from matplotlib.figure import Figure

    with _DRAWING:
        if data.empty:
            fig = Figure(figsize=(WIDTH_PX / DPI, 6.0), dpi=DPI)
            FigureCanvasAgg(fig)
            _draw_empty(fig, texts)
        else:
            panels = ["checkins", "sleep", *(f"q:{q.instrument_id}" for q in data.questionnaires), "events"]
            ratios = [3.4, 2.0, *(2.8 for _ in data.questionnaires), 2.0]
            fig = Figure(figsize=(WIDTH_PX / DPI, 1.4 + sum(ratios) * 1.05), dpi=DPI, layout="constrained")
            FigureCanvasAgg(fig)
            fig.get_layout_engine().set(h_pad=0.12, hspace=0.06, w_pad=0.3)  # type: ignore[union-attr, call-arg]
            axes = fig.subplots(len(panels), 1, sharex=True, gridspec_kw={"height_ratios": ratios})
            fig.suptitle(texts.title, fontsize=TITLE_SIZE, fontweight="bold", x=0.02, ha="left")
            for ax in axes:
                _style(ax, data)
            _draw_checkins(axes[0], data, texts)
            _draw_sleep(axes[1], data, texts)
            for ax, series, style in zip(axes[2:-1], data.questionnaires, _cycle(QUESTIONNAIRE_STYLES), strict=False):
                _draw_questionnaire(ax, data, series, texts, style)
            _draw_events(axes[-1], data, texts)
            _date_axis(axes[-1], data, texts)
        buffer = io.BytesIO()
        # The fastest zlib level: a few more kilobytes, a shorter wait for the chart.
        fig.savefig(buffer, format="png", dpi=DPI, facecolor="white", pil_kwargs={"compress_level": 1},
                    metadata={"Title": "iopbot trend chart",
                              POINTS_KEY: json.dumps(data.point_counts(), sort_keys=True)})
    return buffer.getvalue()


def _cycle(styles: tuple[tuple[str, str, str], ...]) -> Any:
    index = 0
    while True:
        yield styles[index % len(styles)]
        index += 1


def _x(data: TrendData, day: date) -> int:
    return (day - data.first).days


def _style(ax: Any, data: TrendData) -> None:
    ax.tick_params(labelsize=FONT_SIZE, length=6, width=1.2)
    ax.grid(axis="y", color="#DDDDDD", linewidth=1.0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_xlim(-0.7, len(data.days) - 1 + 0.7)


def _panel_title(ax: Any, text: str, *, pad: float = 10) -> None:
    ax.set_title(textwrap.fill(text, TITLE_CHARS), loc="left", fontsize=PANEL_TITLE_SIZE, fontweight="bold",
                 pad=pad)


def _legend(ax: Any) -> None:
    """Under the panel's title, above the data: never over a point."""
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2, frameon=False, fontsize=FONT_SIZE,
              handlelength=2.4, borderaxespad=0.1, borderpad=0.1, columnspacing=1.5)


def _values(data: TrendData, attribute: str) -> list[float]:
    """One value per day, NaN where there is none (the line breaks there)."""
    out = []
    for day in data.days:
        value = getattr(day, attribute)
        out.append(math.nan if value is None else float(value))
    return out


def _draw_checkins(ax: Any, data: TrendData, texts: ChartTexts) -> None:
    xs = list(range(len(data.days)))
    _panel_title(ax, texts.mood_panel, pad=46)
    mood, craving = _values(data, "mood"), _values(data, "craving")
    ax.plot(xs, mood, color=BLUE, linestyle="-", linewidth=3.2, marker="o", markersize=10, label=texts.mood)
    ax.plot(xs, craving, color=VERMILLION, linestyle="--", linewidth=3.2, marker="s", markersize=9,
            label=texts.craving)
    ax.set_ylim(-0.5, SCALE_TOP + 0.5)
    ax.set_yticks([0, 2, 4, 6, 8, 10])
    if all(math.isnan(v) for v in mood + craving):
        ax.text(0.5, 0.5, texts.no_checkins, transform=ax.transAxes, ha="center", va="center",
                fontsize=FONT_SIZE + 2, color=GREY)
    _legend(ax)


def _draw_sleep(ax: Any, data: TrendData, texts: ChartTexts) -> None:
    _panel_title(ax, texts.sleep_panel)
    xs = [i for i, d in enumerate(data.days) if d.sleep is not None]
    hours = [float(d.sleep) for d in data.days if d.sleep is not None]
    ax.bar(xs, hours, width=0.72, color=BLUISH_GREEN, edgecolor=BLACK, linewidth=1.0, hatch="//",
           label=texts.sleep)
    top = max([12.0, *hours])
    ax.set_ylim(0, math.ceil(top / 4) * 4 + 0.5)
    ax.set_yticks(range(0, int(math.ceil(top / 4) * 4) + 1, 4))


def _draw_questionnaire(ax: Any, data: TrendData, series: QuestionnaireSeries, texts: ChartTexts,
                        style: tuple[str, str, str]) -> None:
    name = texts.questionnaire_names.get(series.instrument_id, series.instrument_id.upper())
    top = series.top
    _panel_title(ax, texts.questionnaire_panel.format(name=name, top=top))
    for index, band in enumerate(series.bands):
        ax.axhspan(band.low - 0.5, band.high + 0.5, color=BAND_GREYS[min(index, len(BAND_GREYS) - 1)], linewidth=0,
                   zorder=0)
    colour, marker, line = style
    xs = [_x(data, p.day) for p in series.points]
    totals = [p.total for p in series.points]
    ax.plot(xs, totals, color=colour, linestyle=line, linewidth=3.2, marker=marker, markersize=13,
            markeredgecolor=BLACK, markeredgewidth=1.2, zorder=3)
    for x, total in zip(xs, totals, strict=True):
        ax.annotate(str(total), (x, total), textcoords="offset points", xytext=(0, 12), ha="center",
                    fontsize=FONT_SIZE, fontweight="bold", zorder=4)
    ax.set_ylim(-0.5, top + 0.5 + top * 0.14)
    ax.grid(False)
    if series.bands:
        # The bands' names where the numbers would be (each point shows its total): the reader
        # sees the range at a glance, and the layout makes room for them.
        ax.set_yticks([(b.low + b.high) / 2 for b in series.bands],
                      [texts.band_names.get(b.id, b.id.replace("_", " ")) for b in series.bands])
        ax.tick_params(axis="y", labelsize=FONT_SIZE - 4, length=0)
        for band in series.bands[1:]:
            ax.axhline(band.low - 0.5, color="white", linewidth=1.5, zorder=1)
    else:
        ax.set_yticks([0, top])


def _draw_events(ax: Any, data: TrendData, texts: ChartTexts) -> None:
    """Three rows on one strip: sessions (by what is known of attendance), missed check-ins, alerts."""
    _panel_title(ax, texts.events_panel)
    rows = {"sessions": 2, "missed": 1, "alerts": 0}
    # Several sessions on one day sit side by side.
    per_day: dict[date, int] = {}
    for outcome in SessionOutcome:
        marks = [s for s in data.sessions if s.outcome == outcome]
        if not marks:
            continue
        xs = []
        for mark in marks:
            seen = per_day.get(mark.day, 0)
            per_day[mark.day] = seen + 1
            xs.append(_x(data, mark.day) + (seen * 0.3 - 0.15 if seen else 0.0))
        marker, colour, filled = SESSION_STYLES[outcome]
        label = texts.session_outcomes.get(str(outcome), str(outcome))
        if marker == "x":  # a line-only marker: its colour is the line's
            ax.scatter(xs, [rows["sessions"]] * len(xs), s=230, marker=marker, color=colour, linewidths=3.0,
                       zorder=3, label=label)
        else:
            ax.scatter(xs, [rows["sessions"]] * len(xs), s=230, marker=marker, facecolors=colour if filled else "white",
                       edgecolors=BLACK, linewidths=1.5, zorder=3, label=label)
    missed = [_x(data, d.day) for d in data.days if d.missed]
    if missed:
        ax.scatter(missed, [rows["missed"]] * len(missed), s=260, marker="X", color=VERMILLION, edgecolors=BLACK,
                   linewidths=1.0, zorder=3, label=texts.missed)
    groups: dict[int, list[AlertMark]]
    if ALL_LEVELS in texts.alert_levels:  # one mark for every alert (a participant's own chart)
        groups = {ALL_LEVELS: list(data.alerts)}
    else:
        groups = {level: [a for a in data.alerts if min(max(a.level, 1), 3) == level] for level in ALERT_STYLES}
    for level, flagged in groups.items():
        if not flagged:
            continue
        marker, size, filled = ALERT_STYLES.get(level, ALERT_STYLES[2])
        ax.scatter([_x(data, a.day) for a in flagged], [rows["alerts"]] * len(flagged), s=size * 18, marker=marker,
                   facecolors=VERMILLION if filled else "white", edgecolors=BLACK, linewidths=1.5, zorder=3,
                   label=texts.alert_levels.get(level, str(level)))
    ax.set_ylim(-0.7, 2.7)
    ax.set_yticks([rows["alerts"], rows["missed"], rows["sessions"]],
                  [texts.row_alerts, texts.row_missed, texts.row_sessions])
    ax.grid(axis="x", color="#EEEEEE", linewidth=1.0)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        wide = max(len(label) for label in labels) > LEGEND_COLUMN_CHARS
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), ncols=2 if wide else 3, frameon=False,
                  fontsize=FONT_SIZE - 1, handletextpad=0.3, columnspacing=1.0)


def _date_axis(ax: Any, data: TrendData, texts: ChartTexts) -> None:
    """A tick a week apart, ending on the last day (today), labelled like "Mar 2"."""
    last = len(data.days) - 1
    ticks = sorted({last - 7 * k for k in range(0, last // 7 + 1)})
    ax.set_xticks(ticks, [_day_label(data.days[t].day, texts) for t in ticks])


def _day_label(day: date, texts: ChartTexts) -> str:
    month = texts.months[day.month - 1] if len(texts.months) == 12 else str(day.month)
    return texts.day_format.format(month=month, day=day.day)


def _draw_empty(fig: Any, texts: ChartTexts) -> None:
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.text(0.05, 0.82, texts.title, fontsize=TITLE_SIZE, fontweight="bold", ha="left", va="center",
            transform=ax.transAxes)
    ax.text(0.5, 0.52, texts.empty_title, fontsize=TITLE_SIZE + 6, ha="center", va="center", color=BLUE,
            transform=ax.transAxes)
    for index, line in enumerate(texts.empty_lines):
        ax.text(0.5, 0.34 - index * 0.1, line, fontsize=FONT_SIZE, ha="center", va="center", color="#333333",
                transform=ax.transAxes, wrap=True)


def warm_up() -> None:
    """Import matplotlib and load its fonts ahead of the first chart (about a second, once per
    process): for the wiring to call in a worker thread at start, so the first /trend is as quick
    as the others. Optional; nothing depends on it."""
    from matplotlib import font_manager
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401

    font_manager.findfont("DejaVu Sans")


def point_counts_of(png: bytes) -> dict[str, int]:
    """The point counts written into a chart (for tests and tools): {} if there are none."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        raw = getattr(image, "text", {}).get(POINTS_KEY) or image.info.get(POINTS_KEY)
    return {str(k): int(v) for k, v in json.loads(raw).items()} if raw else {}
