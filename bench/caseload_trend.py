"""/caseload and /trend on a full caseload: 200 participants with 90 days of data each.

    python -m bench.caseload_trend [--quick] [--sqlite-only]
    python -m bench --only caseload

One clinician sees all 200 participants. Each has 90 days of daily check-ins (mood, craving,
sleep, medication and the safety question; about one day in eight left unanswered, so a missed
check-in), a PHQ-9 and a GAD-7 every week, a few alerts (some still open), and a group that
meets three times a week (the facilitator marked most sessions; some "can't attend" answers).
The data is written with Core inserts (not measured), then, on a fresh database session each
time as a handler has:

- /caseload: `caseload_rows` + `caseload_messages` (what the handler does), target < 1 s;
- /trend: `trend_chart` for one participant (the 30-day data, the PNG drawn in a worker thread,
  the caption), target < 2 s; the first call (matplotlib imported, fonts loaded) reported apart.

Medians and p95 (nearest rank) of N runs, with the number of SQL statements one call makes.
On SQLite, and on PostgreSQL when one is available (DATABASE_URL or the pgserver wheel).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.support import REPO, load_average, new_database, percentile, postgres_available, seed

PARTICIPANTS = 200
DAYS = 90
CASELOAD_TARGET_S = 1.0
TREND_TARGET_S = 2.0
NOW = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # noon in New York, where the participants live
ZONE = ZoneInfo("America/New_York")
SESSION_WEEKDAYS = (0, 2, 4)  # the group meets Monday, Wednesday and Friday, 18:00 local


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE).astimezone(UTC)


async def build(url: str, participants: int = PARTICIPANTS, days: int = DAYS) -> dict[str, Any]:
    """Seed one clinician with `participants` participants and `days` days of their data."""
    from sqlalchemy import insert

    from bot.db.calendar_models import (
        Attendance,
        GroupMembership,
        ParticipantGroup,
        ProgramSession,
        SessionOccurrence,
        SessionPresence,
    )
    from bot.db.checkin_models import CHECKIN, CheckinAnswer, FlowRun
    from bot.db.engine import make_engine, make_sessionmaker
    from bot.db.instrument_models import INSTRUMENT, InstrumentScore
    from bot.db.models import ActionStatus, Escalation, ParticipantEvent, ScheduledAction

    started = time.perf_counter()
    seeded = await seed(url, participants=participants, staff=1, checkin_time="09:00", timezone=str(ZONE),
                        now=NOW - timedelta(days=days + 1))
    rnd = random.Random(15)  # noqa: S311 - test data, not secrets
    today = NOW.astimezone(ZONE).date()
    first = today - timedelta(days=days - 1)
    runs: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    run_id = 0
    for pid in seeded.participant_ids:
        mood = rnd.uniform(3, 8)
        for offset in range(days):
            day = first + timedelta(days=offset)
            intended = _local(day, 9)
            sent = intended + timedelta(minutes=rnd.randint(0, 5))
            missed = rnd.random() < 0.125
            if offset == days - 1 and sent + timedelta(hours=12) > NOW:
                missed = False  # today's: answered (it could still be answered anyway)
            run_id += 1
            runs.append(dict(id=run_id, participant_id=pid, kind=CHECKIN, flow_id="daily", locale="en", step=None,
                             answers="{}", status="expired" if missed else "finished", level=0, reasons="",
                             local_date=day, action_id=None, started_at=sent, expires_at=sent + timedelta(hours=12),
                             finished_at=None if missed else sent + timedelta(minutes=3)))
            actions.append(dict(kind=CHECKIN, key=f"checkin:{pid}:{day.isoformat()}", due_at=sent, intended_at=intended,
                                status=ActionStatus.SENT if missed else ActionStatus.ANSWERED, attempts=1,
                                participant_id=pid, payload={"date": day.isoformat()}, sent_at=sent,
                                answered_at=None if missed else sent + timedelta(minutes=3), created_at=intended))
            if missed:
                events.append(dict(participant_id=pid, kind="missed_checkin", at=sent + timedelta(hours=12),
                                   detail=f"date={day}"))
                continue
            mood = min(10.0, max(0.0, mood + rnd.uniform(-1.5, 1.5)))
            at = sent + timedelta(minutes=2)
            for question, number, choice in (("mood", round(mood), None), ("craving", rnd.randint(0, 7), None),
                                             ("sleep_hours", rnd.choice([5, 6, 6.5, 7, 7.5, 8, 9]), None),
                                             ("medication", None, "yes"), ("safety", None, "no")):
                answers.append(dict(participant_id=pid, run_id=run_id, local_date=day, question_id=question,
                                    value_number=number, value_choice=choice, value_text=None, answered_at=at))
        for week in range(days // 7):
            day = first + timedelta(days=7 * week + 1)
            for instrument_id, top, minutes in (("phq9", 27, 40), ("gad7", 21, 45)):
                run_id += 1
                at = _local(day, 9, minutes)
                total = rnd.randint(0, top)
                runs.append(dict(id=run_id, participant_id=pid, kind=INSTRUMENT, flow_id=instrument_id, locale="en",
                                 step=None, answers="{}", status="finished", level=0, reasons="", local_date=day,
                                 action_id=None, started_at=at, expires_at=None, finished_at=at))
                scores.append(dict(participant_id=pid, run_id=run_id, instrument_id=instrument_id, version="1",
                                   local_date=day, total=total, band=_band(instrument_id, total), level=0,
                                   reasons="", completed_at=at))
        for _ in range(rnd.randint(0, 3)):
            at = _local(first + timedelta(days=rnd.randrange(days)), rnd.randint(8, 22))
            resolved = rnd.random() < 0.8
            alerts.append(dict(participant_id=pid, level=rnd.choice([2, 2, 3]), categories="", reasons="",
                               status="resolved" if resolved else "open", source="message", message_received_at=at,
                               resolved_at=at + timedelta(hours=1) if resolved else None,
                               outcome="reached_safe" if resolved else None, follow_up_count=0,
                               follow_up_notified=0, unreached_in_a_row=0, created_at=at))

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            for table, rows in ((FlowRun, runs), (CheckinAnswer, answers), (ScheduledAction, actions),
                                (ParticipantEvent, events), (InstrumentScore, scores), (Escalation, alerts)):
                for start in range(0, len(rows), 5000):
                    await s.execute(insert(table), rows[start:start + 5000])
            group_at = _local(first, 8)
            group = (await s.execute(insert(ParticipantGroup).returning(ParticipantGroup.id),
                                     [dict(name="bench-group", created_at=group_at)])).scalar_one()
            await s.execute(insert(GroupMembership), [dict(group_id=group, participant_id=pid, joined_at=group_at)
                                                      for pid in seeded.participant_ids])
            starts = [_local(first + timedelta(days=o), 18) for o in range(days)
                      if (first + timedelta(days=o)).weekday() in SESSION_WEEKDAYS]
            ps = (await s.execute(insert(ProgramSession).returning(ProgramSession.id), [dict(
                uid="bench-group-session", title="Group", kind="group", first_start=starts[0], duration_minutes=90,
                timezone=str(ZONE), rrule="FREQ=WEEKLY;BYDAY=MO,WE,FR", exdates=[], video_link="https://example.org/g",
                facilitator_id=seeded.staff_ids[0], group_id=group, created_at=group_at,
                updated_at=group_at)])).scalar_one()
            occurrences = (await s.execute(insert(SessionOccurrence).returning(SessionOccurrence.id), [dict(
                session_id=ps, original_start=at, start_at=at, duration_minutes=90, created_at=group_at)
                for at in starts])).scalars().all()
            presence, said = [], []
            for occ, at in zip(occurrences, starts, strict=True):
                for pid in seeded.participant_ids:
                    roll = rnd.random()
                    if roll < 0.05:
                        said.append(dict(participant_id=pid, occurrence_id=occ, status="cant_attend",
                                         responded_at=at - timedelta(hours=5), updated_at=at - timedelta(hours=5)))
                    elif roll < 0.85 and at + timedelta(minutes=90) <= NOW:
                        presence.append(dict(occurrence_id=occ, participant_id=pid, present=roll < 0.75,
                                             marked_by=seeded.staff_ids[0], marked_at=at + timedelta(minutes=90)))
            for marks_table, marks in ((Attendance, said), (SessionPresence, presence)):
                for start in range(0, len(marks), 5000):
                    await s.execute(insert(marks_table), marks[start:start + 5000])
            await s.commit()
    finally:
        await engine.dispose()
    return {"staff_id": seeded.staff_ids[0], "participant_ids": seeded.participant_ids,
            "rows": {"checkin_answers": len(answers), "flow_runs": len(runs), "scheduled_actions": len(actions),
                     "questionnaire_scores": len(scores), "alerts": len(alerts),
                     "session_occurrences": len(occurrences), "presence_marks": len(presence)},
            "seed_seconds": round(time.perf_counter() - started, 1)}


def _band(instrument_id: str, total: int) -> str:
    edges = [(4, "minimal"), (9, "mild"), (14, "moderate")]
    edges += [(19, "moderately_severe"), (27, "severe")] if instrument_id == "phq9" else [(21, "severe")]
    return next(name for top, name in edges if total <= top)


@contextlib.contextmanager
def _counting_statements(engine: Any) -> Iterator[list[int]]:
    from sqlalchemy import event

    count = [0]

    def before(*_: Any) -> None:
        count[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield count
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


async def _timed(runs: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        out.append(time.perf_counter() - started)
    return out


def _summary(seconds: list[float]) -> dict[str, Any]:
    return {"runs": len(seconds), "median_ms": round(statistics.median(seconds) * 1000, 1),
            "p95_ms": round((percentile(seconds, 95) or 0) * 1000, 1),
            "max_ms": round(max(seconds) * 1000, 1)}


async def measure(kind: str, workdir: Path, runs: int, participants: int = PARTICIPANTS,
                  days: int = DAYS) -> dict[str, Any]:
    from bot.clock import ManualClock
    from bot.config import load_settings
    from bot.content.i18n import Texts
    from bot.context import AppContext
    from bot.db.engine import make_engine, make_sessionmaker
    from bot.db.models import Participant, Staff
    from bot.services.caseload import caseload_rows
    from bot.services.caseload_text import caseload_messages
    from bot.services.charts import trend_chart
    from bot.services.charts.render import render_trend
    from bot.services.charts.service import chart_texts, trend_data

    url = await new_database(kind, workdir)
    built = await build(url, participants, days)
    settings = load_settings(REPO / "config.toml", env={"BOT_TOKEN": "1:bench"})
    settings = settings.replace(database=dataclasses.replace(settings.database, url=url),
                                content=dataclasses.replace(settings.content, directory=str(REPO / "content")),
                                base_dir=REPO)
    engine = make_engine(url)
    ctx = AppContext(settings=settings, clock=ManualClock(NOW), texts=Texts.load(REPO / "content"),
                     sessionmaker=make_sessionmaker(engine))
    expire = settings.checkin.expire_hours
    out: dict[str, Any] = {"kind": kind, "participants": participants, "days": days, **built}
    try:
        async def caseload() -> int:
            async with ctx.sessionmaker() as s:
                staff = await s.get(Staff, built["staff_id"])
                assert staff is not None
                rows = await caseload_rows(s, staff, NOW, expire_hours=expire)
                messages = caseload_messages(ctx, rows, "en")
                assert len(rows) == participants and messages
                return len(messages)

        one = built["participant_ids"][participants // 2]

        async def trend() -> None:
            async with ctx.sessionmaker() as s:
                participant = await s.get(Participant, one)
                assert participant is not None
                png, caption = await trend_chart(ctx, s, participant, NOW, "en")
                assert png.startswith(b"\x89PNG") and caption

        with _counting_statements(engine) as count:
            out["caseload_messages"] = await caseload()
        out["caseload_statements"] = count[0]
        with _counting_statements(engine) as count:
            cold = await _timed(1, trend)  # matplotlib imported, its fonts and the instruments loaded
        out["trend_statements"] = count[0]
        out["trend_first_ms"] = round(cold[0] * 1000, 1)
        out["caseload"] = _summary(await _timed(runs, caseload))
        out["trend"] = _summary(await _timed(runs, trend))
        async with ctx.sessionmaker() as s:
            participant = await s.get(Participant, one)
            assert participant is not None
            gathered = await _timed(runs, lambda: trend_data(ctx, s, participant, NOW))
            data = await trend_data(ctx, s, participant, NOW)
        texts = chart_texts(ctx, data, "en", own=False)
        out["trend_data"] = _summary(gathered)
        out["trend_render"] = _summary(await _timed(runs, lambda: asyncio.to_thread(render_trend, data, texts)))
        out["trend_points"] = data.point_counts()
    finally:
        await engine.dispose()
    out["caseload_met"] = out["caseload"]["p95_ms"] < CASELOAD_TARGET_S * 1000
    out["trend_met"] = out["trend"]["p95_ms"] < TREND_TARGET_S * 1000
    return out


def run(quick: bool = False, postgres: bool | None = None) -> dict[str, Any]:
    """SQLite, and PostgreSQL when available; `quick` (a smoke test of the harness, figures not
    comparable): 40 participants x 30 days, SQLite only, 5 runs instead of 20."""
    runs = 5 if quick else 20
    size = dict(participants=40, days=30) if quick else {}
    use_pg = (postgres_available() if postgres is None else postgres) and not quick
    out: dict[str, Any] = {"load_before": load_average(), "results": []}
    with tempfile.TemporaryDirectory(prefix="iopbot-bench-caseload-") as tmp:
        for kind in ("sqlite", "postgres") if use_pg else ("sqlite",):
            try:
                out["results"].append(asyncio.run(measure(kind, Path(tmp), runs, **size)))
            except Exception as exc:  # one database's failure must not hide the other's figures
                out["results"].append({"kind": kind, "error": f"{type(exc).__name__}: {exc}"})
    out["load_after"] = load_average()
    return out


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The lines of `python -m bench`'s table."""
    table: list[tuple[str, str, str, str, str]] = []
    for res in r["results"]:
        kind = res["kind"]
        if "error" in res:
            table.append(("caseload", f"{kind}", res["error"][:80], "", "MISSED"))
            continue
        c, t = res["caseload"], res["trend"]
        n = f"{res['participants']} x {res['days']} days"
        table.append(("caseload", f"{kind} /caseload, {n}: median / p95 ms ({res['caseload_statements']} SQL "
                      "statements)", f"{c['median_ms']:g} / {c['p95_ms']:g}", "p95 < 1000",
                      "met" if res["caseload_met"] else "MISSED"))
        table.append(("caseload", f"{kind} /trend (30 days, PNG): median / p95 ms ({res['trend_statements']} SQL; "
                      f"data {res['trend_data']['median_ms']:g}, drawing {res['trend_render']['median_ms']:g}; "
                      f"first {res['trend_first_ms']:g})", f"{t['median_ms']:g} / {t['p95_ms']:g}", "p95 < 2000",
                      "met" if res["trend_met"] else "MISSED"))
    return table




def main() -> None:
    quick = "--quick" in sys.argv
    result = run(quick, postgres=False if "--sqlite-only" in sys.argv else None)
    for res in result["results"]:
        if "error" in res:
            print(f"{res['kind']}: {res['error']}")
            continue
        print(f"{res['kind']}: {res['participants']} participants x {res['days']} days, seeded in "
              f"{res['seed_seconds']} s ({', '.join(f'{v:,} {k}' for k, v in res['rows'].items())})")
        for name, target in (("caseload", CASELOAD_TARGET_S), ("trend", TREND_TARGET_S)):
            f = res[name]
            verdict = "met" if res[f"{name}_met"] else "MISSED"
            print(f"  /{name}: median {f['median_ms']:g} ms, p95 {f['p95_ms']:g} ms, max {f['max_ms']:g} ms "
                  f"over {f['runs']} runs; {res[f'{name}_statements']} SQL statements; target p95 < "
                  f"{target * 1000:g} ms: {verdict}")
        print(f"  /trend parts: data median {res['trend_data']['median_ms']:g} ms, drawing median "
              f"{res['trend_render']['median_ms']:g} ms (p95 {res['trend_render']['p95_ms']:g}); first chart of "
              f"the process {res['trend_first_ms']:g} ms; points {res['trend_points']}")
    print(f"load average {result['load_before']} -> {result['load_after']} (a shared machine)")


if __name__ == "__main__":
    main()
