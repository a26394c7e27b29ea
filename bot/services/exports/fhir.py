"""The export as FHIR R4: one `Bundle` of type "collection".

Per participant:
- a `Patient` with one identifier: `{system: "urn:iopbot:<program>:alias", value: <alias>}` (the
  alias is the only identifier; no name, no Telegram id);
- per completed questionnaire a `QuestionnaireResponse` (status "completed", `authored` the time it
  was completed, `language` the language it was answered in). For an instrument with LOINC codes
  in its content file (PHQ-9, GAD-7) `questionnaire` is LOINC's canonical
  ("http://loinc.org/q/44249-1"), each item's `linkId` is the item's LOINC code ("44250-9"), and
  each answer a `valueCoding` with the LOINC answer code ("LA6569-3"), its display, and the score
  in the ordinalValue extension. An instrument without codes (one an author added) is named by a
  local canonical ("urn:iopbot:<program>:questionnaire:<id>|<version>"), its linkIds are the
  content's item ids and its answers `valueInteger`: never a mix within one instrument;
- per questionnaire an `Observation` of the total: the LOINC total-score code (PHQ-9 44261-6,
  GAD-7 70274-6) or a local one, `valueInteger`, `derivedFrom` the QuestionnaireResponse;
- per daily check-in answer an `Observation` (category "survey"): there is no standard code for
  "mood 0-10", so the code is the question id in the local system "urn:iopbot:<program>:checkin";
  a scale answer is `valueInteger`, a number `valueQuantity` (hours in UCUM "h" for *_hours),
  a choice `valueCodeableConcept` in "urn:iopbot:<program>:checkin-answer", a note `valueString`
  (only with notes).

Alerts and attendance answers are in the CSV and JSON exports only.

Every resource's `fullUrl` is a urn:uuid made from the program, the alias and the stored row
(uuid5), so exporting the same answer twice gives the same id and a record system can tell a
repeat from new data; references inside the Bundle point at these fullUrls.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.content.checkins import QuestionKind
from bot.content.instruments import Instrument
from bot.services.exports.records import (
    Catalog,
    CheckinRecord,
    ParticipantRecord,
    QuestionnaireRecord,
)

LOINC = "http://loinc.org"
LOINC_QUESTIONNAIRE = "http://loinc.org/q/"
UCUM = "http://unitsofmeasure.org"
ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
SURVEY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey",
                      "display": "Survey"}]}
# A fixed namespace for the uuid5 ids: the same row gives the same fullUrl in every export.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:iopbot:export")
# Units of the number questions by the end of their id (the shipped check-in asks sleep_hours).
UNITS = {"_hours": ("h", "h"), "_minutes": ("min", "min")}


def _time(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


class FhirWriter:
    """Builds the Bundle. `base` is the program's local namespace ("urn:iopbot:<program>")."""

    def __init__(self, catalog: Catalog, base: str, identifier_system: str) -> None:
        self.catalog = catalog
        self.base = base
        self.identifier_system = identifier_system

    def _full_url(self, *parts: object) -> str:
        name = "|".join([self.identifier_system, *(str(p) for p in parts)])
        return f"urn:uuid:{uuid.uuid5(NAMESPACE, name)}"

    def bundle(self, records: Sequence[ParticipantRecord], now: datetime) -> dict[str, Any]:
        entries: list[dict[str, Any]] = []
        for record in records:
            entries.extend(self._participant(record))
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "collection", "timestamp": _time(now)}
        if entries:  # FHIR JSON never has an empty array; bdl-1: no `total` outside search and history
            bundle["entry"] = entries
        return bundle

    def _participant(self, record: ParticipantRecord) -> list[dict[str, Any]]:
        patient_url = self._full_url("Patient", record.alias)
        subject = {"reference": patient_url}
        entries = [{"fullUrl": patient_url, "resource": {
            "resourceType": "Patient",
            "identifier": [{"system": self.identifier_system, "value": record.alias}],
        }}]
        for q in record.questionnaires:
            response_url = self._full_url("QuestionnaireResponse", q.response_id)
            entries.append({"fullUrl": response_url, "resource": self._response(q, subject)})
            entries.append({"fullUrl": self._full_url("Observation", "total", q.response_id),
                            "resource": self._total(q, subject, response_url)})
        for c in record.checkins:
            observation = self._checkin(c, subject)
            if observation is not None:
                entries.append({"fullUrl": self._full_url("Observation", "checkin", c.answer_id),
                                "resource": observation})
        return entries

    # --- questionnaires -----------------------------------------------------------------------------

    def _coded(self, q: QuestionnaireRecord) -> Instrument | None:
        """The instrument when LOINC can name it and every answered item (else local names throughout)."""
        instrument = self.catalog.instruments.get(q.instrument)
        if instrument is None or not instrument.coded or any(instrument.item(a.item) is None for a in q.items):
            return None
        return instrument

    def _response(self, q: QuestionnaireRecord, subject: dict[str, str]) -> dict[str, Any]:
        coded = self._coded(q)
        known = self.catalog.instruments.get(q.instrument)
        order = {item.id: n for n, item in enumerate(known.items)} if known is not None else {}
        items = []
        for answer in sorted(q.items, key=lambda a: (order.get(a.item, len(order)), a.item)):
            item = coded.item(answer.item) if coded is not None else None
            option = next((o for o in item.options if o.value == answer.value), None) if item is not None else None
            if item is not None and option is not None and option.loinc:
                value: dict[str, Any] = {"valueCoding": {
                    "extension": [{"url": ORDINAL_VALUE, "valueDecimal": option.value}],
                    "system": LOINC, "code": option.loinc, "display": option.label}}
            else:
                value = {"valueInteger": answer.value}
            items.append({"linkId": item.loinc if item is not None else answer.item, "answer": [value]})
        canonical = (f"{LOINC_QUESTIONNAIRE}{coded.loinc}" if coded is not None
                     else f"{self.base}:questionnaire:{q.instrument}|{q.version}")
        resource: dict[str, Any] = {
            "resourceType": "QuestionnaireResponse",
            "language": q.locale,
            "identifier": {"system": f"{self.base}:questionnaire-response", "value": str(q.response_id)},
            "questionnaire": canonical,
            "status": "completed",
            "subject": subject,
            "authored": _time(q.completed_at),
        }
        if items:
            resource["item"] = items
        return resource

    def _total(self, q: QuestionnaireRecord, subject: dict[str, str], response_url: str) -> dict[str, Any]:
        known = self.catalog.instruments.get(q.instrument)
        title = known.title if known is not None else q.instrument
        coding = ({"system": LOINC, "code": known.loinc_total} if known is not None and known.loinc_total
                  else {"system": f"{self.base}:instrument", "code": f"{q.instrument}-total"})
        return {
            "resourceType": "Observation",
            "identifier": [{"system": f"{self.base}:observation", "value": f"total-{q.response_id}"}],
            "status": "final",
            "category": [SURVEY],
            "code": {"coding": [coding], "text": f"{title} total score"},
            "subject": subject,
            "effectiveDateTime": _time(q.completed_at),
            "valueInteger": q.total,
            "derivedFrom": [{"reference": response_url}],
        }

    # --- check-ins ----------------------------------------------------------------------------------

    def _checkin(self, c: CheckinRecord, subject: dict[str, str]) -> dict[str, Any] | None:
        question = self.catalog.questions.get(c.question)
        value: dict[str, Any]
        if c.number is not None:
            if question is not None and question.kind is QuestionKind.SCALE and float(c.number).is_integer():
                value = {"valueInteger": int(c.number)}
            else:
                quantity: dict[str, Any] = {"value": int(c.number) if float(c.number).is_integer() else c.number}
                unit = next((u for suffix, u in UNITS.items() if c.question.endswith(suffix)), None)
                if unit is not None:
                    quantity |= {"unit": unit[0], "system": UCUM, "code": unit[1]}
                value = {"valueQuantity": quantity}
        elif c.choice is not None:
            value = {"valueCodeableConcept": {"coding": [{"system": f"{self.base}:checkin-answer", "code": c.choice}],
                                              "text": c.choice}}
        elif c.note:
            value = {"valueString": c.note}
        else:
            return None
        return {
            "resourceType": "Observation",
            "identifier": [{"system": f"{self.base}:observation", "value": f"checkin-{c.answer_id}"}],
            "status": "final",
            "category": [SURVEY],
            "code": {"coding": [{"system": f"{self.base}:checkin", "code": c.question}],
                     "text": question.text if question is not None else c.question},
            "subject": subject,
            "effectiveDateTime": _time(c.answered_at),
            **value,
        }


def render_fhir(records: Sequence[ParticipantRecord], catalog: Catalog, now: datetime, *, base: str,
                identifier_system: str) -> bytes:
    bundle = FhirWriter(catalog, base, identifier_system).bundle(records, now)
    return (json.dumps(bundle, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
