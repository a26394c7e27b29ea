"""The brief's words, in the reader's language (content/<locale>/ui/brief.toml).

One participant (individual and family sessions): everything in `ParticipantFacts`, then the
sections other features add (goals, medication reminders), then what the participant shared for
the session in their own words. A group: one short row per participant, so a facilitator of
twelve reads one message, not twelve; a participant's own words are never in a group brief.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

from bot.content.render import pack_html
from bot.content.store import ContentStore
from bot.context import AppContext
from bot.db.calendar_models import SessionOccurrence
from bot.services.brief.facts import AlertFact, Measure, ParticipantFacts
from bot.services.calendar.reminders import date_text, kind_text, staff_when
from bot.services.caseload_text import number_text, questionnaire_latest
from bot.services.labels import level_text, outcome_text

DASH = "–"


def _measure(ctx: AppContext, m: Measure, locale: str) -> str:
    name = ctx.t(f"brief.{m.name}", locale)
    if m.average is None:
        return ctx.t("brief.measure_none", locale, name=name)
    return ctx.t("brief.measure", locale, name=name, average=number_text(round(m.average, 1)),
                 before=DASH if m.before is None else number_text(round(m.before, 1)))


def _alert(ctx: AppContext, a: AlertFact, zone: ZoneInfo, locale: str) -> str:
    if a.status == "resolved":
        status = ctx.t("brief.alert_resolved", locale, outcome=outcome_text(ctx, a.outcome, locale))
    else:
        status = ctx.t("brief.alert_acknowledged" if a.status == "acknowledged" else "brief.alert_open", locale)
    return ctx.t("brief.alert", locale, level=level_text(ctx, a.level, locale),
                 day=date_text(ctx, a.received_at.astimezone(zone).date(), locale), status=status)


def _reason(ctx: AppContext, code: str, locale: str) -> str:
    key = f"sessions.reason_{code}"
    return ctx.t(key, locale).lower() if code and ctx.texts.has(key) else DASH


def _exercise_name(ctx: AppContext, exercise_id: str, locale: str) -> str:
    """The exercise's title in the reader's language, from the library being served."""
    store = ctx.parts.find(ContentStore)
    exercise = store.library.exercise(exercise_id, locale) if store is not None else None
    return exercise.title if exercise is not None else exercise_id


def participant_brief(ctx: AppContext, facts: ParticipantFacts, occ: SessionOccurrence, locale: str,
                      zone: ZoneInfo, extra: Sequence[str] = ()) -> list[str]:
    """The brief of one participant, as messages (usually one). `extra`: lines other features add."""
    title = ctx.t("brief.title_one", locale, alias=facts.alias, kind=kind_text(ctx, occ.session.kind, locale),
                  when=staff_when(ctx, occ, locale))
    lines = [ctx.t("brief.since", locale, day=date_text(ctx, facts.since.astimezone(zone).date(), locale)),
             ctx.t("brief.checkins", locale, answered=facts.checkins_answered, sent=facts.checkins_sent),
             " · ".join(_measure(ctx, m, locale) for m in facts.measures)]
    if facts.questionnaires:
        lines += [questionnaire_latest(ctx, q, locale) for q in facts.questionnaires]
    else:
        lines.append(ctx.t("brief.no_questionnaires", locale))
    if facts.alerts:
        lines += [_alert(ctx, a, zone, locale) for a in facts.alerts]
    else:
        lines.append(ctx.t("brief.alerts_none", locale))
    lines += list(extra)
    if facts.cant_attend is not None:
        lines.append(ctx.t("brief.cant_attend", locale, reason=_reason(ctx, facts.cant_attend, locale))
                     if facts.cant_attend else ctx.t("brief.cant_attend_no_reason", locale))
    paragraphs = [title, "\n".join(lines)]
    if facts.shared:
        shared = [ctx.t("brief.shared_title", locale, count=len(facts.shared))]
        for record in facts.shared:
            shared.append(ctx.t("brief.shared_record", locale, name=_exercise_name(ctx, record.exercise_id, locale),
                                day=date_text(ctx, record.answered_at.astimezone(zone).date(), locale)))
            shared += [ctx.t("brief.shared_answer", locale, key=key.replace("_", " "), text=text)
                       for key, text in record.answers]
        paragraphs.append("\n".join(shared))
    return pack_html(paragraphs)


def group_brief(ctx: AppContext, members: Sequence[ParticipantFacts], occ: SessionOccurrence, locale: str,
                zone: ZoneInfo, extra: Mapping[int, Sequence[str]] | None = None) -> list[str]:
    """One row (and its marks) per participant expected at a group session."""
    title = ctx.t("brief.title_group", locale, kind=kind_text(ctx, occ.session.kind, locale),
                  when=staff_when(ctx, occ, locale), count=len(members))
    if not members:
        return [title + "\n" + ctx.t("brief.group_empty", locale)]
    since = min(f.since for f in members)
    rows = [ctx.t("brief.since", locale, day=date_text(ctx, since.astimezone(zone).date(), locale))]
    for f in members:
        if f.cant_attend is not None:
            rows.append(ctx.t("brief.group_cant", locale, alias=f.alias, reason=_reason(ctx, f.cant_attend, locale)))
            continue
        measures = {m.name: m for m in f.measures}
        row = [ctx.t("brief.group_row", locale, alias=f.alias, answered=f.checkins_answered, sent=f.checkins_sent,
                     mood=_short(measures["mood"]), craving=_short(measures["craving"]))]
        row += [questionnaire_latest(ctx, q, locale) for q in f.questionnaires]
        row += [_alert(ctx, a, zone, locale) for a in f.alerts]
        row += list((extra or {}).get(f.participant_id, ()))
        if f.shared:
            row.append(ctx.t("brief.group_shared", locale))
        rows.append("\n   ".join(row))
    return pack_html([title, "\n".join(rows)])


def _short(m: Measure) -> str:
    if m.average is None:
        return DASH
    now = number_text(round(m.average, 1))
    return now if m.before is None else f"{now} ({number_text(round(m.before, 1))})"
