"""How content buttons are encoded in Telegram callback data (UTF-8, at most 64 bytes).

Exercise steps run on the flow engine, so their buttons carry the engine's format
`fl:<run id>:<step id>:<value>` (the same string as `bot.flows.engine.flow_callback`; a test keeps
the two in step). The value is a choice's value, `next` for the button of a text or pause step,
and `-` for the Skip of a free-text step. The run id is only known while the exercise runs, so the
content check measures each button with a 10-digit run id: a program would need ten billion runs
before a button that passed the check could grow past Telegram's limit.

Menu buttons (/learn, /skills, /favorites, "Was this helpful?") carry `ci:<action>:<argument>`,
where the argument is an item id, a topic or a run id. Ids and values never contain ':' (the
validator enforces it), so splitting is unambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass

SEPARATOR = ":"
MAX_CALLBACK_BYTES = 64

FLOW_PREFIX = "fl"  # bot.flows.engine.CALLBACK_PREFIX
NEXT_VALUE = "next"  # the button of text steps and the optional skip of pause steps
SKIP_VALUE = "-"  # the optional skip of free-text steps (bot.flows.engine.SKIP_VALUE)
SAMPLE_RUN_ID = 9_999_999_999  # the longest run id the check assumes (10 digits)

ITEM_PREFIX = "ci"
# Actions of menu buttons: one letter each, so `ci:<action>:<item id>` has room for long ids.
OPEN_SNIPPET = "o"
START_EXERCISE = "x"
CONTINUE_RUN = "c"  # argument: a run id
LEAVE_EXERCISE = "l"
TOPIC = "t"  # argument: a topic
TOPICS = "h"  # argument: unused ("-")
HELPFUL_YES = "y"
HELPFUL_NO = "n"
SAVE = "s"
UNSAVE = "u"


def step_callback(step_id: str, value: str, run_id: int = SAMPLE_RUN_ID) -> str:
    """The callback data of one exercise button as the flow engine sends it."""
    return SEPARATOR.join((FLOW_PREFIX, str(run_id), step_id, value))


def callback_bytes(data: str) -> int:
    """Size as Telegram limits it: UTF-8 bytes."""
    return len(data.encode("utf-8"))


@dataclass(frozen=True)
class ItemCallback:
    action: str
    argument: str


def item_callback(action: str, argument: str) -> str:
    """The callback data of a menu button about one item (or topic, or run)."""
    return SEPARATOR.join((ITEM_PREFIX, action, argument))


def longest_item_callback(item_id: str) -> str:
    """The longest menu button data an item gets (what the content check measures)."""
    return item_callback(OPEN_SNIPPET, item_id)


def parse_item_callback(data: str | None) -> ItemCallback | None:
    """The parts of a menu button's data, or None if `data` is not one (another handler's)."""
    parts = (data or "").split(SEPARATOR, 2)
    if len(parts) != 3 or parts[0] != ITEM_PREFIX or not parts[1] or not parts[2]:
        return None
    return ItemCallback(parts[1], parts[2])
