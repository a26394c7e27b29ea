"""/message ALIAS for staff, the participant's reply, and /techhelp."""

from __future__ import annotations

from aiogram import Router

router = Router(name="outreach")
