"""Exports for the program's record system: CSV, JSON and FHIR R4 (`iopbot export`).

- records.py: what is exported, gathered per participant by alias (minimum necessary: no Telegram
  ids, no names; free text only when the operator asks for notes).
- tables.py: CSV (one file per table) and JSON (one document).
- fhir.py: a FHIR R4 Bundle of QuestionnaireResponses (PHQ-9, GAD-7 with their LOINC codes) and
  Observations (questionnaire totals and daily check-in measures).
- service.py: `export`, which renders and writes each participant's disclosure and the audit line.
"""
