"""Exports for the program's record system: CSV, JSON and FHIR R4."""
