"""Exports for the record system (`iopbot export`), on SQLite and PostgreSQL: the FHIR R4 Bundle
passes a structural R4 check (tests/support/fhir_r4.py) and carries PHQ-9 and GAD-7 with their
LOINC codes; an empty program is an empty Bundle; CSV and JSON give back the stored numbers; free
text only with --include-notes; every participant exported is a disclosure with recipient and
time; and the real command writes files, refuses clearly, and logs nothing it did not write."""

from __future__ import annotations

import asyncio
import copy
import csv
import io
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Text, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cli import main
from bot.clock import OffsetFileClock
from bot.db.calendar_models import Attendance, ProgramSession, SessionOccurrence
from bot.db.checkin_models import CheckinAnswer, FlowRun, FlowStatus
from bot.db.engine import make_engine, make_sessionmaker
from bot.db.instrument_models import InstrumentAnswer, InstrumentScore
from bot.db.models import AuditEntry, Disclosure, Escalation, Participant, ParticipantStatus, Staff
from bot.db.types import configure_encryption
from bot.services.exports.records import Catalog, ExportError
from bot.services.exports.service import Export, ExportFormat, ExportRequest, export
from tests.support import fhir_r4

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 16, 15, 0, tzinfo=UTC)
WEEK1 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
WEEK2 = datetime(2026, 3, 9, 14, 30, tzinfo=UTC)
CHAT_ID = 987_654_321  # must never appear in an export
PHQ9_LOINC = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
GAD7_LOINC = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
ANSWER_CODES = {0: "LA6568-5", 1: "LA6569-3", 2: "LA6570-1", 3: "LA6571-9"}
PHQ9_WEEK1 = [1, 2, 1, 0, 1, 2, 0, 1, 0]  # 8, mild
PHQ9_WEEK2 = [2, 2, 2, 1, 1, 2, 1, 1, 1]  # 13, moderate; item 9 above 0
GAD7_WEEK2 = [1, 1, 2, 0, 1, 0, 1]  # 6, mild, answered in Spanish
NOTE = "=HYPERLINK(\"x\") felt shaky after group"
CATALOG = Catalog.load(REPO / "content")


@dataclass
class Seeded:
    ids: dict[str, int]


async def _questionnaire(s: AsyncSession, p: Participant, instrument: str, locale: str, values: list[int],
                         band: str, at: datetime, level: int = 0) -> None:
    run = FlowRun(participant_id=p.id, kind="instrument", flow_id=instrument, locale=locale, step=None,
                  status=FlowStatus.FINISHED, started_at=at - timedelta(minutes=3), finished_at=at,
                  local_date=at.date())
    s.add(run)
    await s.flush()
    for n, value in enumerate(values, 1):
        s.add(InstrumentAnswer(participant_id=p.id, run_id=run.id, instrument_id=instrument,
                               item_id=f"{instrument}_{n}", value=value, answered_at=at))
    s.add(InstrumentScore(participant_id=p.id, run_id=run.id, instrument_id=instrument, version="1",
                          local_date=at.date(), total=sum(values), band=band, level=level, completed_at=at))


async def seed(url: str) -> Seeded:
    """A therapist; P-1 with two PHQ-9s, a GAD-7 in Spanish, a day's check-in, an alert and an
    attendance answer; P-3 enrolled with nothing yet; P-2 only invited (never exported)."""
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            dr = Staff(alias="dr-a", role="therapist", chat_id=CHAT_ID + 1, created_at=WEEK1)
            s.add(dr)
            await s.flush()

            def person(alias: str, status: str) -> Participant:
                return Participant(alias=alias, status=status, telegram_user_id=CHAT_ID if alias == "P-1" else None,
                                   chat_id=CHAT_ID if alias == "P-1" else None, timezone="America/Chicago",
                                   checkin_time="09:00", quiet_start="22:00", quiet_end="08:00", therapist_id=dr.id,
                                   consent_version="2026-11-01" if status != "invited" else None,
                                   consented_at=WEEK1 if status != "invited" else None, created_at=WEEK1)

            p1, p2, p3 = (person("P-1", ParticipantStatus.ACTIVE), person("P-2", ParticipantStatus.INVITED),
                          person("P-3", ParticipantStatus.ACTIVE))
            s.add_all([p1, p2, p3])
            await s.flush()
            await _questionnaire(s, p1, "phq9", "en", PHQ9_WEEK1, "mild", WEEK1)
            await _questionnaire(s, p1, "phq9", "en", PHQ9_WEEK2, "moderate", WEEK2, level=2)
            await _questionnaire(s, p1, "gad7", "es", GAD7_WEEK2, "mild", WEEK2 + timedelta(minutes=4))

            day = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
            run = FlowRun(participant_id=p1.id, kind="checkin", flow_id="daily", locale="en", step=None,
                          status=FlowStatus.FINISHED, started_at=day, finished_at=day, local_date=day.date())
            s.add(run)
            await s.flush()
            for question, number, choice, text in [("mood", 6.0, None, None), ("craving", 2.0, None, None),
                                                   ("sleep_hours", 6.5, None, None), ("medication", None, "yes", None),
                                                   ("safety", None, "no", None), ("note", None, None, NOTE)]:
                s.add(CheckinAnswer(participant_id=p1.id, run_id=run.id, local_date=day.date(), question_id=question,
                                    value_number=number, value_choice=choice, value_text=text, answered_at=day))

            s.add(Escalation(participant_id=p1.id, level=2, categories="", reasons="phq9_9", status="resolved",
                             source="instrument", message_received_at=WEEK2,
                             acknowledged_at=WEEK2 + timedelta(minutes=7), resolved_at=WEEK2 + timedelta(hours=1),
                             outcome="reached_safe",
                             outcome_note="Called; safe with family tonight", created_at=WEEK2))
            session = ProgramSession(uid="grp-1", title="Evening group", kind="group", first_start=WEEK1,
                                     duration_minutes=90, timezone="America/Chicago", video_link="https://zoom.us/j/1",
                                     created_at=WEEK1, updated_at=WEEK1)
            s.add(session)
            await s.flush()
            occurrence = SessionOccurrence(session_id=session.id, original_start=WEEK2, start_at=WEEK2,
                                           duration_minutes=90, created_at=WEEK1)
            s.add(occurrence)
            await s.flush()
            s.add(Attendance(participant_id=p1.id, occurrence_id=occurrence.id, status="cant_attend",
                             reason="transport", note="bus was late", responded_at=WEEK2 - timedelta(hours=3),
                             updated_at=WEEK2 - timedelta(hours=3)))
            await s.commit()
            return Seeded({"P-1": p1.id, "P-2": p2.id, "P-3": p3.id})
    finally:
        await engine.dispose()


async def run_export(url: str, request: ExportRequest, now: datetime = NOW) -> Export:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            done = await export(s, request, CATALOG, now)
            await s.commit()
            return done
    finally:
        await engine.dispose()


async def logged(url: str) -> tuple[list[Disclosure], list[AuditEntry]]:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            return (list((await s.scalars(select(Disclosure).order_by(Disclosure.id))).all()),
                    list((await s.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()))
    finally:
        await engine.dispose()


def _fhir(done: Export) -> dict[str, Any]:
    (data,) = done.files.values()
    return json.loads(data)


def _request(fmt: str, **kwargs: Any) -> ExportRequest:
    return ExportRequest(ExportFormat(fmt), "EHR import by J. Smith", program_name="Riverside IOP", **kwargs)


# --- FHIR ------------------------------------------------------------------------------------------

async def test_an_empty_program_exports_an_empty_bundle(db_url: str) -> None:
    done = await run_export(db_url, _request("fhir"))
    bundle = _fhir(done)
    assert fhir_r4.problems(bundle) == []
    # No entry at all (FHIR JSON has no empty arrays) and no total (bdl-1: only searchset/history).
    assert bundle == {"resourceType": "Bundle", "type": "collection", "timestamp": "2026-03-16T15:00:00+00:00"}
    assert done.participants == 0
    disclosures, audit = await logged(db_url)
    assert disclosures == []
    assert [(a.actor, a.action) for a in audit] == [("operator", "export:fhir:all:0")]


async def test_the_fhir_bundle_is_valid_r4_with_loinc_codes(db_url: str) -> None:
    await seed(db_url)
    bundle = _fhir(await run_export(db_url, _request("fhir")))
    assert fhir_r4.problems(bundle) == []
    assert bundle["type"] == "collection" and "total" not in bundle

    patients = fhir_r4.resources(bundle, "Patient")
    assert [p["identifier"] for p in patients] == [  # P-2 never consented: not exported
        [{"system": "urn:iopbot:riverside-iop:alias", "value": "P-1"}],
        [{"system": "urn:iopbot:riverside-iop:alias", "value": "P-3"}]]
    assert all(set(p) == {"resourceType", "identifier"} for p in patients)  # no name, no telecom
    urls = {e["resource"].get("resourceType") + ":" + json.dumps(e["resource"].get("identifier")): e["fullUrl"]
            for e in bundle["entry"]}
    p1 = urls['Patient:[{"system": "urn:iopbot:riverside-iop:alias", "value": "P-1"}]']
    assert str(CHAT_ID) not in json.dumps(bundle)

    responses = fhir_r4.resources(bundle, "QuestionnaireResponse")
    phq9 = [r for r in responses if r["questionnaire"] == "http://loinc.org/q/44249-1"]
    gad7 = [r for r in responses if r["questionnaire"] == "http://loinc.org/q/69737-5"]
    assert len(responses) == 3 and len(phq9) == 2 and len(gad7) == 1
    for response, values, at in [(phq9[0], PHQ9_WEEK1, WEEK1), (phq9[1], PHQ9_WEEK2, WEEK2)]:
        assert response["status"] == "completed" and response["subject"] == {"reference": p1}
        assert response["authored"] == at.isoformat()
        assert len(response["item"]) == 9
        assert [i["linkId"] for i in response["item"]] == PHQ9_LOINC
        for item, value in zip(response["item"], values, strict=True):
            (answer,) = item["answer"]
            coding = answer["valueCoding"]
            assert (coding["system"], coding["code"]) == ("http://loinc.org", ANSWER_CODES[value])
            assert coding["extension"] == [{"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue",
                                            "valueDecimal": value}]
    assert gad7[0]["language"] == "es" and [i["linkId"] for i in gad7[0]["item"]] == GAD7_LOINC
    assert [i["answer"][0]["valueCoding"]["extension"][0]["valueDecimal"] for i in gad7[0]["item"]] == GAD7_WEEK2

    observations = fhir_r4.resources(bundle, "Observation")
    totals = {(o["code"]["coding"][0]["system"], o["code"]["coding"][0]["code"], o["valueInteger"])
              for o in observations if o["code"]["coding"][0]["system"] == "http://loinc.org"}
    assert totals == {("http://loinc.org", "44261-6", 8), ("http://loinc.org", "44261-6", 13),
                      ("http://loinc.org", "70274-6", 6)}
    response_urls = {e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "QuestionnaireResponse"}
    assert all(o["derivedFrom"][0]["reference"] in response_urls for o in observations if "derivedFrom" in o)

    checkins = {o["code"]["coding"][0]["code"]: o for o in observations
                if o["code"]["coding"][0]["system"] == "urn:iopbot:riverside-iop:checkin"}
    assert set(checkins) == {"mood", "craving", "sleep_hours", "medication", "safety"}  # the note: no notes asked
    assert checkins["mood"]["valueInteger"] == 6 and checkins["craving"]["valueInteger"] == 2
    assert checkins["sleep_hours"]["valueQuantity"] == {"value": 6.5, "unit": "h", "system": "http://unitsofmeasure.org",
                                                        "code": "h"}
    assert checkins["medication"]["valueCodeableConcept"]["coding"] == [
        {"system": "urn:iopbot:riverside-iop:checkin-answer", "code": "yes"}]
    assert all(o["subject"] == {"reference": p1} and o["status"] == "final"
               and o["effectiveDateTime"] == "2026-03-10T14:00:00+00:00" for o in checkins.values())
    assert "HYPERLINK" not in json.dumps(bundle) and "family" not in json.dumps(bundle)


async def test_the_same_rows_keep_their_ids_and_one_participant_exports_alone(db_url: str) -> None:
    await seed(db_url)
    first = _fhir(await run_export(db_url, _request("fhir", alias="P-1")))
    again = _fhir(await run_export(db_url, _request("fhir", alias="P-1"), NOW + timedelta(days=1)))
    assert [e["fullUrl"] for e in first["entry"]] == [e["fullUrl"] for e in again["entry"]]
    assert [p["identifier"][0]["value"] for p in fhir_r4.resources(first, "Patient")] == ["P-1"]
    with_notes = _fhir(await run_export(db_url, _request("fhir", alias="P-1", include_notes=True)))
    assert fhir_r4.problems(with_notes) == []
    notes = [o["valueString"] for o in fhir_r4.resources(with_notes, "Observation") if "valueString" in o]
    assert notes == [NOTE]  # FHIR carries the text as written (no spreadsheet escaping)


def test_the_checker_finds_what_r4_forbids() -> None:
    """The checker is not vacuous: each broken copy of a valid Bundle is reported."""
    patient_url = "urn:uuid:00000000-0000-4000-8000-000000000001"
    qr_url = "urn:uuid:00000000-0000-4000-8000-000000000002"
    valid: dict[str, Any] = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": patient_url,
         "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "P"}]}},
        {"fullUrl": qr_url, "resource": {
            "resourceType": "QuestionnaireResponse", "questionnaire": "http://loinc.org/q/44249-1",
            "status": "completed",
            "subject": {"reference": patient_url}, "authored": "2026-03-02T14:30:00+00:00",
            "item": [{"linkId": "44250-9", "answer": [{"valueInteger": 1}]}]}},
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000003", "resource": {
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
            "subject": {"reference": patient_url}, "effectiveDateTime": "2026-03-02T14:30:00+00:00",
            "valueInteger": 8}},
    ]}
    assert fhir_r4.problems(valid) == []

    def broken(change: Callable[[dict[str, Any]], None]) -> list[str]:
        bundle = copy.deepcopy(valid)
        change(bundle)
        return fhir_r4.problems(bundle)

    qr = lambda b: b["entry"][1]["resource"]  # noqa: E731
    obs = lambda b: b["entry"][2]["resource"]  # noqa: E731
    cases: list[tuple[Callable[[dict[str, Any]], None], str]] = [
        (lambda b: b.update(total=3), "bdl-1"),
        (lambda b: b.update(type="pile"), "bundle-type"),
        (lambda b: b["entry"][2].update(fullUrl=qr_url), "bdl-7"),
        (lambda b: b["entry"][0].update(fullUrl="urn:uuid:not-a-uuid"), "urn:uuid"),
        (lambda b: qr(b).update(status="done"), "questionnaire-answers-status"),
        (lambda b: qr(b).pop("questionnaire"), "questionnaire"),
        (lambda b: qr(b)["item"][0].pop("linkId"), "linkId"),
        (lambda b: qr(b)["item"].append({"linkId": "44250-9", "answer": [{"valueInteger": 2}]}), "twice"),
        (lambda b: qr(b)["item"][0]["answer"][0].update(valueString="1"), "exactly one value"),
        (lambda b: qr(b)["item"][0]["answer"][0].update(valueInteger="1"), "32-bit integer"),
        (lambda b: qr(b)["item"][0]["answer"][0].update(valueCodeableConcept={"text": "x"}), "cannot be"),
        (lambda b: qr(b)["item"][0].update(item=[{"linkId": "a"}]), "qrs-1"),
        (lambda b: qr(b).update(authored="2026-03-02 14:30"), "dateTime"),
        (lambda b: qr(b).update(subject={"reference": "urn:uuid:00000000-0000-4000-8000-0000000000ff"}), "resolve"),
        (lambda b: obs(b).update(status="done"), "observation-status"),
        (lambda b: obs(b).update(code={"text": "total"}), "coding"),
        (lambda b: obs(b).pop("subject"), "subject"),
        (lambda b: obs(b).update(effectiveDateTime="2026-03-02T14:30:00"), "dateTime"),  # a time needs its zone
        (lambda b: obs(b).update(valueString="8"), "0..1"),
        (lambda b: obs(b).update(dataAbsentReason={"text": "asked"}), "obs-6"),
        (lambda b: obs(b).update(valueQuantity={"value": 8, "code": "h"}), "qty-3"),
        (lambda b: obs(b).update(note=[]), "empty array"),
        (lambda b: obs(b).update(issued=None), "null"),
    ]
    for change, expected in cases:
        found = broken(change)
        assert any(expected in p for p in found), (expected, found)


# --- CSV and JSON ------------------------------------------------------------------------------------

def _csv_rows(files: dict[str, bytes], name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(files[name].decode("utf-8"))))


async def test_csv_and_json_give_back_the_stored_numbers(db_url: str) -> None:
    await seed(db_url)
    files = (await run_export(db_url, _request("csv"))).files
    assert set(files) == {"participants.csv", "checkins.csv", "questionnaires.csv", "questionnaire_items.csv",
                          "alerts.csv", "attendance.csv"}
    assert [r["alias"] for r in _csv_rows(files, "participants.csv")] == ["P-1", "P-3"]
    checkins = {r["question"]: r for r in _csv_rows(files, "checkins.csv")}
    assert {q: float(r["number"]) for q, r in checkins.items() if r["number"]} == {
        "mood": 6.0, "craving": 2.0, "sleep_hours": 6.5}
    assert checkins["medication"]["choice"] == "yes" and "note" not in checkins  # no notes asked
    assert "note" not in _csv_rows(files, "checkins.csv")[0]
    scores = _csv_rows(files, "questionnaires.csv")
    assert [(r["instrument"], int(r["total"]), r["band"], r["safety_level"], r["language"]) for r in scores] == [
        ("phq9", 8, "mild", "none", "en"), ("phq9", 13, "moderate", "urgent", "en"), ("gad7", 6, "mild", "none", "es")]
    items = _csv_rows(files, "questionnaire_items.csv")
    by_response: dict[str, list[int]] = {}
    for row in items:
        by_response.setdefault(row["response_id"], []).append(int(row["value"]))
    assert [by_response[r["response_id"]] for r in scores] == [PHQ9_WEEK1, PHQ9_WEEK2, GAD7_WEEK2]
    assert [r["loinc"] for r in items[:9]] == PHQ9_LOINC
    for r in scores:  # the total is the sum of its items, read back from the files
        assert int(r["total"]) == sum(by_response[r["response_id"]])
    (alert,) = _csv_rows(files, "alerts.csv")
    assert (alert["level"], alert["outcome"], alert["at"]) == ("urgent", "reached_safe", WEEK2.isoformat())
    assert "outcome_note" not in alert
    (absent,) = _csv_rows(files, "attendance.csv")
    assert (absent["status"], absent["reason"]) == ("cant_attend", "transport") and "note" not in absent
    everything = b"".join(files.values()).decode()
    assert str(CHAT_ID) not in everything and "bus was late" not in everything and "HYPERLINK" not in everything

    document = json.loads((await run_export(db_url, _request("json"))).files["export.json"])
    assert document["format"] == "iopbot-export" and document["include_notes"] is False
    p1 = document["participants"][0]
    assert p1["alias"] == "P-1" and [p["alias"] for p in document["participants"]] == ["P-1", "P-3"]
    assert {c["question"]: c["number"] for c in p1["checkins"] if c["number"] is not None} == {
        "mood": 6, "craving": 2, "sleep_hours": 6.5}
    assert [([i["value"] for i in q["items"]], q["total"]) for q in p1["questionnaires"]] == [
        (PHQ9_WEEK1, 8), (PHQ9_WEEK2, 13), (GAD7_WEEK2, 6)]
    assert p1["questionnaires"][0]["items"][8] == {"item": "phq9_9", "loinc": "44260-8", "value": 0}
    assert all("note" not in c for c in p1["checkins"]) and "outcome_note" not in p1["alerts"][0]
    assert str(CHAT_ID) not in json.dumps(document)


async def test_notes_only_when_asked(db_url: str) -> None:
    await seed(db_url)
    files = (await run_export(db_url, _request("csv", include_notes=True))).files
    notes = [r["note"] for r in _csv_rows(files, "checkins.csv") if r["note"]]
    assert notes == ["'" + NOTE]  # a spreadsheet shows it instead of running the formula
    assert _csv_rows(files, "alerts.csv")[0]["outcome_note"] == "Called; safe with family tonight"
    assert _csv_rows(files, "attendance.csv")[0]["note"] == "bus was late"
    document = json.loads((await run_export(db_url, _request("json", include_notes=True))).files["export.json"])
    assert [c["note"] for c in document["participants"][0]["checkins"] if c.get("note")] == [NOTE]


# --- the disclosure log ---------------------------------------------------------------------------------

async def test_every_participant_exported_is_a_disclosure_with_recipient_and_time(db_url: str) -> None:
    seeded = await seed(db_url)
    await run_export(db_url, _request("fhir"))
    await run_export(db_url, _request("csv", alias="P-3", include_notes=True), NOW + timedelta(hours=1))
    disclosures, audit = await logged(db_url)
    assert [(d.participant_id, d.recipient, d.kind, d.reference, d.at) for d in disclosures] == [
        (seeded.ids["P-1"], "EHR import by J. Smith", "export", "fhir", NOW),
        (seeded.ids["P-3"], "EHR import by J. Smith", "export", "fhir", NOW),
        (seeded.ids["P-3"], "EHR import by J. Smith", "export", "csv+notes", NOW + timedelta(hours=1)),
    ]
    assert [(a.actor, a.action, a.participant_id) for a in audit] == [
        ("operator", "export:fhir:all:2", None), ("operator", "export:csv+notes:one:1", seeded.ids["P-3"])]


async def test_since_exports_only_what_came_from_then_on(db_url: str) -> None:
    seeded = await seed(db_url)
    since = datetime(2026, 3, 5, 6, 0, tzinfo=UTC)  # midnight in Chicago
    done = await run_export(db_url, _request("json", alias="P-1", since=since))
    document = json.loads(done.files["export.json"])
    assert document["since"] == "2026-03-05T06:00:00+00:00"
    (p1,) = document["participants"]
    assert [(q["instrument"], q["total"]) for q in p1["questionnaires"]] == [("phq9", 13), ("gad7", 6)]
    assert len(p1["checkins"]) == 5 and len(p1["alerts"]) == 1 and len(p1["attendance"]) == 1
    later = await run_export(db_url, _request("fhir", alias="P-1", since=NOW), NOW + timedelta(minutes=1))
    bundle = _fhir(later)
    assert fhir_r4.problems(bundle) == [] and [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient"]
    disclosures, _ = await logged(db_url)
    assert [(d.participant_id, d.reference) for d in disclosures] == [
        (seeded.ids["P-1"], "json since 2026-03-05T06:00+00:00"),
        (seeded.ids["P-1"], "fhir since 2026-03-16T15:00+00:00")]


async def test_mistakes_are_refused_before_anything_is_logged(db_url: str) -> None:
    await seed(db_url)
    with pytest.raises(ExportError, match="no participant with alias 'P-9'"):
        await run_export(db_url, _request("json", alias="P-9"))
    with pytest.raises(ExportError, match="P-2 has not consented"):
        await run_export(db_url, _request("json", alias="P-2"))
    with pytest.raises(ExportError, match="--recipient is required"):
        await run_export(db_url, ExportRequest(ExportFormat.JSON, "  ", alias="P-1"))
    with pytest.raises(ExportError, match="at most 80"):
        await run_export(db_url, ExportRequest(ExportFormat.JSON, "x" * 81, alias="P-1"))
    assert await logged(db_url) == ([], [])


# --- the real command -----------------------------------------------------------------------------------

@pytest.fixture
def iopbot(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    config = tmp_path / "config.toml"
    config.write_text(f'[program]\nname = "Riverside IOP"\n[database]\nurl = "{db_url}"\n\n'
                      f'[content]\ndirectory = "{REPO / "content"}"\n')
    clock_file = tmp_path / "clock"
    OffsetFileClock.write_offset(clock_file, NOW.timestamp() - time.time())
    monkeypatch.setenv("IOPBOT_CLOCK_FILE", str(clock_file))
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--config", str(config), "export", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_the_export_command(iopbot: Callable[..., tuple[int, str, str]], db_url: str, tmp_path: Path) -> None:
    asyncio.run(seed(db_url))
    recipient = ("--recipient", "EHR import by J. Smith")

    target = tmp_path / "p1.fhir.json"
    code, out, err = iopbot("--participant", "P-1", "--format", "fhir", *recipient, "--out", str(target))
    assert (code, out) == (0, "")
    assert err == (f"Exported 1 participant(s) as fhir to {target}; 1 disclosure(s) to 'EHR import by J. Smith' "
                   "recorded.\n")
    bundle = json.loads(target.read_text())
    assert fhir_r4.problems(bundle) == [] and len(fhir_r4.resources(bundle, "QuestionnaireResponse")) == 3
    assert target.stat().st_mode & 0o777 == 0o600  # readable by the operator only
    assert not list(tmp_path.glob(".*.part"))

    code, out, _ = iopbot("--all", "--format", "json", *recipient)  # stdout: the document and nothing else
    assert code == 0 and [p["alias"] for p in json.loads(out)["participants"]] == ["P-1", "P-3"]
    code, out, err = iopbot("--participant", "P-1", "--format", "json", *recipient, "--since", "2026-03-05")
    assert code == 0 and "since 2026-03-05 to stdout" in err
    assert json.loads(out)["since"] == "2026-03-05T05:00:00+00:00"  # midnight in America/New_York (the default)
    assert [q["total"] for q in json.loads(out)["participants"][0]["questionnaires"]] == [13, 6]

    folder = tmp_path / "csv"
    code, _, err = iopbot("--all", "--format", "csv", *recipient, "--out", str(folder), "--include-notes")
    assert code == 0 and "as csv with notes" in err and "shaky" not in err and "bus" not in err  # never in a log
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["alerts.csv", "attendance.csv", "checkins.csv", "participants.csv", "questionnaire_items.csv",
         "questionnaires.csv"])
    archive = tmp_path / "export.zip"
    assert iopbot("--all", "--format", "csv", *recipient, "--out", str(archive))[0] == 0
    with zipfile.ZipFile(archive) as z:
        assert "questionnaire_items.csv" in z.namelist()
        assert "44260-8" in z.read("questionnaire_items.csv").decode()

    custom = tmp_path / "custom.json"
    assert iopbot("--participant", "P-3", "--format", "fhir", *recipient, "--out", str(custom),
                  "--identifier-system", "https://ehr.example.org/mrn")[0] == 0
    assert fhir_r4.resources(json.loads(custom.read_text()), "Patient")[0]["identifier"] == [
        {"system": "https://ehr.example.org/mrn", "value": "P-3"}]

    disclosed = asyncio.run(_count(db_url))
    # One-line refusals, and nothing more logged for them.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for args, message in [
        (("--participant", "P-1", "--format", "fhir"), 'error: --recipient is required: who receives this data, '
                                                        'e.g. --recipient "EHR import by J. Smith"'),
        (("--participant", "P-1", "--format", "fhir", "--recipient", " "), "error: --recipient is required"),
        (("--participant", "nobody", "--format", "json", *recipient),
         "error: no participant with alias 'nobody'; check the spelling (aliases are case-sensitive)"),
        (("--participant", "P-2", "--format", "json", *recipient),
         "error: P-2 has not consented (invited): nothing is stored to export"),
        (("--all", "--format", "json", *recipient, "--out", str(tmp_path / "missing" / "x.json")),
         f"error: cannot write {tmp_path / 'missing' / 'x.json'}: the folder {tmp_path / 'missing'} does not exist"),
        (("--all", "--format", "json", *recipient, "--out", str(blocker / "x.json")),
         f"error: cannot write {blocker / 'x.json'}: the folder {blocker} does not exist"),
        (("--all", "--format", "json", *recipient, "--out", str(folder)),
         f"error: cannot write {folder}: it is a directory; name a file"),
        (("--all", "--format", "csv", *recipient, "--out", str(blocker)),
         f"error: cannot write {blocker}: it is a file; CSV goes into a directory (or name a .zip file)"),
        (("--all", "--format", "csv", *recipient), "error: CSV is one file per table: give --out DIRECTORY"),
        (("--all", "--format", "fhir", *recipient, "--identifier-system", "our MRN"),
         "error: --identifier-system 'our MRN' is not a URI: give one like https://ehr.example.org/mrn"),
        (("--all", "--format", "json", *recipient, "--since", "last week"),
         "error: --since 'last week' is not a date: write it as YYYY-MM-DD, like 2026-03-01"),
    ]:
        code, out, err = iopbot(*args)
        assert code == 2 and out == "", (args, code, out, err)
        assert err.startswith(message) and err.count("\n") == 1, (args, err)
    assert asyncio.run(_count(db_url)) == disclosed


def test_a_file_that_cannot_be_written_is_not_logged_as_disclosed(
        iopbot: Callable[..., tuple[int, str, str]], db_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(seed(db_url))
    import bot.cli.export as command

    def disk_full(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(command, "_write_private", disk_full)
    code, out, err = iopbot("--all", "--format", "fhir", "--recipient", "EHR", "--out", str(tmp_path / "x.json"))
    assert (code, out) == (1, "")
    assert err == (f"error: cannot write {tmp_path / 'x.json'}: No space left on device; nothing was logged as "
                   "disclosed\n")
    assert asyncio.run(_count(db_url)) == 0


def test_notes_encrypted_at_rest_are_decrypted_only_when_asked(
        iopbot: Callable[..., tuple[int, str, str]], db_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    key = "a long random passphrase for the export test"
    monkeypatch.setenv("IOPBOT_DATA_KEY", key)
    configure_encryption(key)
    try:
        asyncio.run(seed(db_url))
        assert asyncio.run(_raw_note(db_url)).startswith("enc:v2:")  # encrypted at rest
        code, out, _ = iopbot("--participant", "P-1", "--format", "json", "--recipient", "EHR", "--include-notes")
        (p1,) = json.loads(out)["participants"]
        assert code == 0 and [c["note"] for c in p1["checkins"] if c.get("note")] == [NOTE]
        assert p1["alerts"][0]["outcome_note"] == "Called; safe with family tonight"
        code, out, _ = iopbot("--participant", "P-1", "--format", "json", "--recipient", "EHR")
        assert code == 0 and "shaky" not in out and "enc:" not in out
    finally:
        configure_encryption("")  # process-wide: leave it as the other tests expect


async def _raw_note(url: str) -> str:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            raw = type_coerce(CheckinAnswer.value_text, Text)
            return str(await s.scalar(select(raw).where(CheckinAnswer.question_id == "note")))
    finally:
        await engine.dispose()


async def _count(url: str) -> int:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            return int(await s.scalar(select(func.count()).select_from(Disclosure)) or 0)
    finally:
        await engine.dispose()


def test_local_dates_are_plain_dates() -> None:
    """The JSON's dates are ISO dates (YYYY-MM-DD) and its times ISO 8601 with the zone."""
    from bot.services.exports.tables import _time

    assert _time(date(2026, 3, 10)) == "2026-03-10"
    assert _time(NOW) == "2026-03-16T15:00:00+00:00"
