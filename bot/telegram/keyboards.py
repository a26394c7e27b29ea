"""Inline keyboards. Callback data stays short (Telegram allows 64 bytes) and never holds text."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

Button = tuple[str, str]  # (label, callback_data)


def keyboard(rows: Sequence[Sequence[Button]]) -> InlineKeyboardMarkup:
    for row in rows:
        for _, data in row:
            if not 1 <= len(data.encode()) <= 64:
                raise ValueError(f"callback data must be 1-64 bytes, got {len(data.encode())}")
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=label, callback_data=data) for label, data in row] for row in rows]
    )


def url_button_row(label: str, url: str) -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(text=label, url=url)]


def in_rows(buttons: Sequence[Button], per_row: int) -> list[list[Button]]:
    return [list(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row)]
