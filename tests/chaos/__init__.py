"""Fault-injection suite (pytest -m chaos)."""
