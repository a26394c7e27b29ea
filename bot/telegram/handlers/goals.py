"""/goals for a participant, /goal ALIAS for staff, and the weekly progress prompt's answers."""

from __future__ import annotations

from aiogram import Router

router = Router(name="goals")
