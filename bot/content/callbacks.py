"""How exercise buttons are encoded in Telegram callback data.

Format: `ex:<exercise_id>:<step_id>:<value>`, UTF-8, at most 64 bytes (Telegram's limit). The
value is a choice's value, or `next` for the "go on"/"skip" button of a non-question step.
This is the same string aiogram's `CallbackData` produces for
`class ExerciseCallback(CallbackData, prefix="ex")` with fields exercise, step, value, so the
handlers may use either. Ids and values never contain ':' (the validator enforces it).
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "ex"
SEPARATOR = ":"
MAX_CALLBACK_BYTES = 64
NEXT_VALUE = "next"  # the button of text steps, and the optional skip of pause/free_text steps


@dataclass(frozen=True)
class ExerciseCallback:
    exercise_id: str
    step_id: str
    value: str


def exercise_callback(exercise_id: str, step_id: str, value: str) -> str:
    """The callback data of one exercise button (not checked for length: the validator does)."""
    return SEPARATOR.join((PREFIX, exercise_id, step_id, value))


def callback_bytes(data: str) -> int:
    """Size as Telegram limits it: UTF-8 bytes."""
    return len(data.encode("utf-8"))


def parse_exercise_callback(data: str) -> ExerciseCallback | None:
    """The parts of an exercise button's data, or None if `data` is not one (another handler's)."""
    parts = data.split(SEPARATOR)
    if len(parts) != 4 or parts[0] != PREFIX or not all(parts[1:]):
        return None
    return ExerciseCallback(parts[1], parts[2], parts[3])
