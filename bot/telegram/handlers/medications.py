"""/meds: a participant's medication reminders, and the Taken / Snooze / Skip buttons."""

from __future__ import annotations

from aiogram import Router

router = Router(name="medications")
