"""/trend ALIAS for staff and /mytrend for a participant: the chart as a PNG."""

from __future__ import annotations

from aiogram import Router

router = Router(name="charts")
